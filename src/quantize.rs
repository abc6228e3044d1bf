//! `wardrobe quantize`: a model directory's int8 form, calibrated on training images.

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::model_dir::{self, Loaded};
use crate::nn::int8::Int8Model;
use crate::nn::model::Model;
use std::path::Path;

/// Calibration images `quantize` takes when not told otherwise.
pub const DEFAULT_CALIBRATION: usize = 1_000;

/// Quantises the model in `run` with activation scales measured on the first `images` images of
/// `calibration` (its training split), and saves it with its int8 form into `out`: the float
/// weights, the score and the scales, so every command that takes a model directory runs it.
pub fn quantize(run: &Path, out: &Path, calibration: &Dataset, images: usize) -> Result<Loaded> {
    let mut loaded = model_dir::load(run)?;
    if loaded.model.int8().is_some() {
        return Err(Error::model(
            &run.join(model_dir::SPEC_FILE),
            "is already quantised; quantise the float model it was made from",
        ));
    }
    let (rows, cols, channels) = calibration.shape();
    quantize_model(&mut loaded.model, &calibration.images, (rows, cols, channels), images)?;
    model_dir::save(&loaded.model, &loaded.class_names, loaded.about.as_ref(), loaded.ood.as_ref(), out)?;
    model_dir::load(out)
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
    model.set_int8(None);
    let scales = Int8Model::calibrate(model, &pixels[..n * input.size()])?;
    let int8 = Int8Model::new(model, &scales, n)?;
    model.set_int8(Some(int8));
    Ok(())
}
