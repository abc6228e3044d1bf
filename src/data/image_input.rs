//! Single images from files for `predict`: decoded with size limits, converted to 8-bit grey and
//! resized to 28×28 when needed.

use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::Path;

/// Largest width or height accepted, guarding against decompression bombs.
pub const MAX_SIDE: u32 = 16_384;
/// Largest decoder allocation accepted, in bytes.
pub const MAX_ALLOC: u64 = 512 << 20;

/// Decodes an image file with limits, naming the file in any error.
pub fn decode(path: &Path) -> Result<image::DynamicImage> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| Error::format(path, format!("cannot decode image: {e}")))
}

/// Loads an image as 28×28 grey pixels (resizing other sizes with a triangle filter).
pub fn load_28x28(path: &Path) -> Result<Vec<u8>> {
    let grey = decode(path)?.to_luma8();
    let grey =
        if grey.dimensions() == (28, 28) { grey } else { image::imageops::resize(&grey, 28, 28, FilterType::Triangle) };
    Ok(grey.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_and_resize() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let img = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8]));
        img.save(&path).unwrap();
        assert_eq!(load_28x28(&path).unwrap(), img.into_raw());
        let big = dir.path().join("big.png");
        image::GrayImage::from_pixel(100, 50, image::Luma([200])).save(&big).unwrap();
        assert!(load_28x28(&big).unwrap().iter().all(|&p| p == 200));
    }

    #[test]
    fn non_images_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.png");
        std::fs::write(&path, b"this is text").unwrap();
        let err = load_28x28(&path).unwrap_err().to_string();
        assert!(err.contains("fake.png") && err.contains("cannot decode"), "{err}");
    }
}
