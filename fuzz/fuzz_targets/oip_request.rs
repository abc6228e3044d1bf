//! An Open Inference Protocol v2 request body: a 4xx error, or images consistent with the shape
//! whose response encodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wardrobe::data::photo::PhotoShape;
use wardrobe::serve::oip::{Computed, decode, response};

fuzz_target!(|data: &[u8]| {
    if let Ok((request, input)) = decode(data, None, PhotoShape::FASHION) {
        assert_eq!(input.pixels.len(), input.count * 784);
        let names: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let probs = vec![0.1; input.count * 10];
        let scores = vec![1.0; input.count];
        let computed = Computed { probabilities: &probs, ood_scores: Some(&scores) };
        let body = serde_json::to_value(response("m", "1", &request, computed, &names)).unwrap();
        assert!(body["outputs"][0]["shape"][0] == input.count);
    }
});
