//! `wardrobe quantize`: int8 form of a trained model.

use super::DataArgs;
use clap::Args;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::model_dir::Loaded;
use wardrobe::nn::infer::{INFERENCE_BATCH, Predictor};
use wardrobe::nn::loss::argmax;
use wardrobe::quantize::{self, DEFAULT_CALIBRATION};

#[derive(Args)]
pub struct QuantizeArgs {
    /// Model directory to quantise (one `wardrobe train` wrote).
    pub run: PathBuf,
    /// Directory for the int8 model (every command that takes --model takes it).
    pub out: PathBuf,
    /// Training images the activation ranges are measured on (the first N of the training split).
    #[arg(long, default_value_t = DEFAULT_CALIBRATION)]
    pub calibration: usize,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run(a: QuantizeArgs) -> Result<()> {
    let train = a.data.source().load(Split::Train)?;
    let mut loaded = wardrobe::model_dir::load(&a.run)?;
    // The test split, where the data has one, shows what quantising cost.
    let test = a.data.source().load(Split::Test).ok();
    let before = test.as_ref().map(|test| accuracy(&loaded, test));
    quantize::quantize(&mut loaded, &train.images, train.shape(), a.calibration)?;
    let l = &loaded;
    wardrobe::model_dir::save(&l.model, &l.class_names, l.about.as_ref(), l.ood.as_ref(), &a.out)?;
    let q = loaded.model.int8().expect("a quantised model has its int8 form");
    println!(
        "quantised {} into {}: int8 weights per output channel, activation ranges from {} training images; products run {}",
        a.run.display(),
        a.out.display(),
        q.calibration_images(),
        q.kernel().name()
    );
    if let (Some(test), Some(before)) = (&test, before) {
        let after = accuracy(&loaded, test);
        println!(
            "test accuracy: float {:.2}%, int8 {:.2}% ({:+.2} pt) on {} images",
            100.0 * before,
            100.0 * after,
            100.0 * (after - before),
            test.len()
        );
    }
    Ok(())
}

/// Fraction of `data` the model labels right.
fn accuracy(model: &Loaded, data: &Dataset) -> f64 {
    let probs = Predictor::new(&model.model, INFERENCE_BATCH).probabilities(&data.images);
    let k = model.model.classes();
    let right = probs.chunks_exact(k).zip(&data.labels).filter(|(p, l)| argmax(p) == **l as usize).count();
    right as f64 / data.len().max(1) as f64
}
