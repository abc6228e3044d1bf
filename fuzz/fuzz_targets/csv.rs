//! Kaggle-style CSV text: an error naming the line, or a data set of whole square images with
//! labels 0–9 (the 28×28 check belongs to the data source, one level up).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(set) = wardrobe::data::csv::parse(text, Path::new("fuzz.csv"))
    {
        assert_eq!(set.images.len(), set.labels.len() * set.rows * set.cols);
        assert_eq!(set.rows, set.cols);
        assert!(set.labels.iter().all(|&l| l < 10));
    }
});
