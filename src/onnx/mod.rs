//! ONNX: wardrobe models out to the format Triton, KServe, ONNX Runtime, OpenVINO, browsers and
//! phones run.

pub mod export;
pub mod proto;
