//! IDX bytes (raw or gzipped) as images and as labels: an error or a consistent array, never a
//! panic or an allocation the input does not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wardrobe::data::idx::{IMAGES_MAGIC, LABELS_MAGIC, gunzip_if_gzipped, parse};

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    for magic in [IMAGES_MAGIC, LABELS_MAGIC] {
        if let Ok(array) = gunzip_if_gzipped(data.to_vec(), path).and_then(|bytes| parse(bytes, magic, path)) {
            assert_eq!(array.dims.iter().product::<usize>(), array.data.len());
        }
    }
});
