//! ONNX: wardrobe models out to the format Triton, KServe, ONNX Runtime, OpenVINO, browsers and
//! phones run, and models from Keras, PyTorch and other exporters in.

pub mod export;
pub mod import;
pub mod proto;
