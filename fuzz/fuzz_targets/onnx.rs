//! An ONNX file: an error, or a model whose probabilities are finite and sum to one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use wardrobe::nn::infer::SingleImage;
use wardrobe::onnx::import::{InputRange, import};
use wardrobe::onnx::proto::ModelProto;

fuzz_target!(|data: &[u8]| {
    let Ok(onnx) = ModelProto::decode(data) else { return };
    if let Ok(imported) = import(&onnx, None, InputRange::Unit) {
        let model = imported.model;
        let pixels = vec![128u8; model.input_size()];
        let probs = SingleImage::new(&model).probabilities(&pixels).to_vec();
        assert_eq!(probs.len(), imported.class_names.len());
        assert!(probs.iter().all(|p| p.is_finite()) && (probs.iter().sum::<f32>() - 1.0).abs() < 1e-3, "{probs:?}");
    }
});
