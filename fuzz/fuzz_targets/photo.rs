//! Arbitrary bytes as an uploaded photo: an error, or exactly the 28×28 pixels the model takes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(pixels) = wardrobe::data::photo::from_bytes(data, Path::new("fuzz.img"), 4_000_000) {
        assert_eq!(pixels.len(), 28 * 28);
    }
});
