//! `wardrobe quantize`: a model's int8 form, calibrated on training images.

use crate::error::{Error, Result};
use crate::model_dir::{self, Loaded};
use crate::nn::int8::Int8Model;
use crate::nn::model::Model;

/// Calibration images `quantize` takes when not told otherwise.
pub const DEFAULT_CALIBRATION: usize = 1_000;

/// Gives the float model `loaded` its int8 form, with activation scales measured on the first
/// `images` of the images `pixels` (u8, `shape` each; training images, not the test set). Saved
/// with `model_dir::save`, the directory keeps the float weights, the score and the scales, so
/// every command that takes a model directory runs it.
pub fn quantize(loaded: &mut Loaded, pixels: &[u8], shape: (usize, usize, usize), images: usize) -> Result<()> {
    if loaded.model.int8().is_some() {
        return Err(Error::model(
            &loaded.dir.join(model_dir::SPEC_FILE),
            "is already quantised; quantise the float model it was made from",
        ));
    }
    quantize_model(&mut loaded.model, pixels, shape, images)
}

/// Gives `model` its int8 form (replacing any), with activation scales measured on the first
/// `images` of the images `pixels` (u8, `shape` each).
pub fn quantize_model(model: &mut Model, pixels: &[u8], shape: (usize, usize, usize), images: usize) -> Result<()> {
    if images == 0 {
        return Err(Error::flag("--calibration", images, "must be at least 1"));
    }
    let input = model.spec.input;
    let (rows, cols, channels) = shape;
    if (rows, cols, channels) != (input.h, input.w, input.c) {
        return Err(Error::Invalid(format!(
            "the model takes {} images, the calibration data has {rows}×{cols}×{channels}",
            input.hwc()
        )));
    }
    let n = images.min(pixels.len() / input.size());
    let int8 = Int8Model::calibrate(model, &pixels[..n * input.size()])?;
    model.set_int8(Some(int8));
    Ok(())
}
