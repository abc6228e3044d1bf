//! An ONNX file: an error, or what importing guarantees: finite weights, a positive finite
//! temperature and one probability per class (finite weights large enough to overflow f32 in
//! the forward pass are not refused, as for model directories).
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
        assert!(model.params.iter().all(|w| w.is_finite()));
        assert!(model.temperature.is_finite() && model.temperature > 0.0, "{}", model.temperature);
        let probs = SingleImage::new(&model).probabilities(&pixels).to_vec();
        assert_eq!(probs.len(), imported.class_names.len());
    }
});
