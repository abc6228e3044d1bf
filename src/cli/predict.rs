//! `wardrobe predict`: classify test-set items or photos.

use super::DataArgs;
use clap::Args;
use std::path::PathBuf;
use wardrobe::data::dataset::Split;
use wardrobe::data::decode;
use wardrobe::data::photo;
use wardrobe::model_dir;
use wardrobe::nn::infer::Predictor;
use wardrobe::predict::{Thresholds, top_k};
use wardrobe::{Error, Result};

#[derive(Args)]
pub struct PredictArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Classify test-set item N (repeatable).
    #[arg(long)]
    pub index: Vec<usize>,
    /// Photos (any size; images already of the model's input shape are taken as data-set items as they are).
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// How many classes to list.
    #[arg(long, default_value_t = 3)]
    pub top_k: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Test-time augmentation: average each image with its mirror image.
    #[arg(long)]
    pub tta: bool,
    /// Largest accepted photo in pixels (guards against decompression bombs).
    #[arg(long, default_value_t = decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Verdict `review` below this (calibrated) confidence.
    #[arg(long, default_value_t = wardrobe::predict::DEFAULT_REVIEW_BELOW)]
    pub review_below: f32,
    /// Verdict `unknown` above this out-of-distribution score (default: the model's threshold).
    #[arg(long)]
    pub unknown_above: Option<f32>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    if a.index.is_empty() && a.images.is_empty() {
        return Err(Error::Invalid("give image files or --index N".into()));
    }
    let loaded = model_dir::load(&a.model)?;
    let mut items: Vec<(String, Vec<u8>, Option<u16>)> = Vec::new();
    if !a.index.is_empty() {
        let test = a.data.source().load(Split::Test)?;
        loaded.check_data(&test, "the test set")?;
        for &i in &a.index {
            if i >= test.len() {
                return Err(Error::Invalid(format!("--index {i} is past the test set's {} images", test.len())));
            }
            items.push((format!("test[{i}]"), test.image(i).to_vec(), Some(test.labels[i])));
        }
    }
    if !a.images.is_empty() {
        let shape = loaded.photo_shape()?;
        for path in &a.images {
            if path.is_dir() {
                return Err(Error::Invalid(format!(
                    "{0} is a folder; to classify every photo in it use: wardrobe label --model {1} {0} --out labels.csv",
                    path.display(),
                    a.model.display()
                )));
            }
            items.push((
                path.display().to_string(),
                photo::load_as(path, shape, &decode::Limits::pixels(a.max_pixels))?,
                None,
            ));
        }
    }
    let pixels: Vec<u8> = items.iter().flat_map(|(_, p, _)| p.iter().copied()).collect();
    let mut predictor = Predictor::new(&loaded.model, 64);
    let (probs, features) = predictor.probabilities_and_features(&pixels);
    let scores = loaded.ood.as_ref().map(|o| o.score.scores(&features, &probs, loaded.class_names.len()));
    let probs = if a.tta { predictor.probabilities_tta(&pixels) } else { probs };
    let unknown_above = a.unknown_above.or(loaded.ood.as_ref().map(|o| o.threshold));
    let thresholds = Thresholds { review_below: a.review_below, unknown_above };
    for (i, ((name, _, truth), probs)) in items.iter().zip(probs.chunks_exact(loaded.class_names.len())).enumerate() {
        let ranked = top_k(probs, &loaded.class_names, a.top_k);
        let truth = truth.map(|t| loaded.class_names[t as usize].clone());
        let score = scores.as_ref().map(|s| s[i]);
        let verdict = thresholds.verdict(ranked[0].probability, score);
        if a.json {
            let line = serde_json::json!({ "input": name, "label": ranked[0].label, "top": ranked,
                "true_label": truth, "verdict": verdict, "ood_score": score });
            println!("{line}");
        } else {
            let top: Vec<String> =
                ranked.iter().map(|r| format!("{} {:.1}%", r.label, 100.0 * r.probability)).collect();
            let truth = truth.map(|t| format!("  (true: {t})")).unwrap_or_default();
            let score = score.map(|s| format!(", ood score {s:.2}")).unwrap_or_default();
            println!(
                "{name}: {}{truth}\n    {}\n    verdict: {}{score}",
                ranked[0].label,
                top.join(", "),
                verdict.as_str()
            );
        }
    }
    Ok(())
}
