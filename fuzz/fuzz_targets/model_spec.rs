//! A model spec file: an error, or an architecture that builds, stays within the size limits
//! and runs one image forward.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wardrobe::nn::model::Model;
use wardrobe::nn::spec::ModelSpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = serde_json::from_slice::<ModelSpec>(data)
        && let Ok(model) = Model::new(spec, 10)
    {
        let mut ws = model.workspace(1);
        let pixels = vec![128u8; model.input_size()];
        ws.load_images(&pixels);
        assert_eq!(model.forward(&mut ws, 1, false, 0).len(), 10);
    }
});
