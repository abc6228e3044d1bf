//! `wardrobe evaluate`: score a saved model on the test set.

use super::DataArgs;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use wardrobe::data::dataset::{Dataset, Split};
use wardrobe::data::labels::find_images;
use wardrobe::data::{decode, photo};
use wardrobe::model_dir::{self, Loaded};
use wardrobe::nn::infer::{INFERENCE_BATCH, Predictor};
use wardrobe::ood::{Separation, separation};
use wardrobe::predict::{DEFAULT_REVIEW_BELOW, Thresholds, Verdict};
use wardrobe::report::ood::ScoredSet;
use wardrobe::report::{self, ReportInput};
use wardrobe::train::calibration;
use wardrobe::train::metrics::Evaluation;
use wardrobe::train::trainer;
use wardrobe::{Error, Result};

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Test-time augmentation: average each image with its mirror image.
    #[arg(long)]
    pub tta: bool,
    /// Also write figures (confusion matrix, training curves, misclassified images, reliability diagram) and
    /// report.json into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Folders of photos that are not of the model's categories (repeatable): how well the
    /// out-of-distribution score tells each from the test set.
    #[arg(long)]
    pub ood: Vec<PathBuf>,
    /// The largest photo accepted from the --ood folders, in pixels.
    #[arg(long, default_value_t = decode::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

/// What `--json` prints: the evaluation and its calibration.
#[derive(Serialize)]
struct EvaluationJson<'a> {
    #[serde(flatten)]
    evaluation: &'a Evaluation,
    /// The model's softmax temperature.
    temperature: f32,
    /// Expected calibration error (15 bins) of the calibrated probabilities.
    ece: f64,
    /// The same at temperature 1.
    ece_uncalibrated: f64,
    /// How the temperature was chosen at training (models saved since the choice is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration: Option<&'a wardrobe::model_dir::Calibration>,
    /// Share of the test set called `unknown` (when the model has an out-of-distribution score).
    #[serde(skip_serializing_if = "Option::is_none")]
    test_unknown_fraction: Option<f64>,
    /// Each --ood folder against the test set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ood: Vec<Separation>,
}

pub fn run(a: EvaluateArgs) -> Result<()> {
    let mut loaded = model_dir::load(&a.model)?;
    let test = a.data.source().load(Split::Test)?;
    loaded.check_data(&test, "the test set")?;
    let temperature = std::mem::replace(&mut loaded.model.temperature, 1.0);
    let classes = loaded.class_names.len();
    let raw = trainer::probabilities(&loaded.model, &test, a.tta);
    let probs = calibration::rescale(&raw, classes, temperature);
    let eval = Evaluation::from_probabilities(&probs, &test.labels, &loaded.class_names);
    let (ece, ece_uncalibrated) =
        (calibration::ece(&probs, &test.labels, classes), calibration::ece(&raw, &test.labels, classes));
    // The score was fitted on calibrated probabilities.
    loaded.model.temperature = temperature;
    let measured = separations(&a, &loaded, &test)?;
    let (test_unknown_fraction, ood) = measured.as_ref().map(|m| (m.unknown, m.folders.clone())).unzip();
    let ood = ood.unwrap_or_default();
    if let Some(dir) = &a.report {
        let history = wardrobe::train::history::load(&a.model)?;
        let photos = match &a.data.test_csv {
            Some(_) => None,
            None => wardrobe::data::import::photo_paths(&a.data.data, Split::Test, test.len())?,
        };
        let input = ReportInput {
            model: &a.model,
            evaluation: &eval,
            probabilities: &probs,
            uncalibrated: &raw,
            temperature,
            ece,
            ece_uncalibrated,
            data: &test,
            photos: photos.as_deref(),
            names: &loaded.class_names,
            history: history.as_deref(),
            tta: a.tta,
            ood: measured.as_ref().zip(loaded.ood.as_ref()).map(|(m, o)| {
                let test_set = ScoredSet { name: "test set".into(), scores: &m.test_scores };
                let folders = m.folders.iter().zip(&m.folder_scores);
                let sets = folders.map(|(f, scores)| ScoredSet { name: f.folder.clone(), scores });
                (std::iter::once(test_set).chain(sets).collect(), o.threshold)
            }),
        };
        for path in report::write(dir, &input)? {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.json {
        let calibration = loaded.about.as_ref().and_then(|a| a.calibration.as_ref());
        let json = EvaluationJson {
            evaluation: &eval,
            temperature,
            ece,
            ece_uncalibrated,
            calibration,
            test_unknown_fraction,
            ood,
        };
        println!("{}", serde_json::to_string(&json).expect("evaluation serialises"));
    } else {
        print!("{}", eval.table());
        println!("calibration: temperature {temperature:.3}, ECE {ece:.4} (uncalibrated {ece_uncalibrated:.4})");
        if let Some(choice) = loaded.about.as_ref().and_then(|a| a.calibration.as_ref()) {
            println!("  chosen at training: {}", choice.line());
        }
        if let (Some(share), Some(o)) = (test_unknown_fraction, &loaded.ood) {
            println!(
                "unknown: {:.1}% of the test set (threshold {:.3}, chosen to keep {:.0}% of photos like the validation split)",
                100.0 * share,
                o.threshold,
                100.0 * o.kept
            );
        }
        for s in &ood {
            println!(
                "not ours: {}  photos {}  AUROC {:.4}  FPR at 95% TPR {:.4}  labelled {:.1}%  unknown {:.1}%",
                s.folder,
                s.count,
                s.auroc,
                s.fpr_at_95_tpr,
                100.0 * s.labelled_fraction,
                100.0 * s.unknown_fraction
            );
        }
    }
    Ok(())
}

/// The out-of-distribution scores of the test set and the --ood folders, and what they measure.
struct Measured {
    /// The share of the test set called unknown.
    unknown: f64,
    /// Each folder against the test set.
    folders: Vec<Separation>,
    /// The test set's scores.
    test_scores: Vec<f32>,
    /// Each folder's scores.
    folder_scores: Vec<Vec<f32>>,
}

/// The --ood folders measured against the test set (none when the model has no score and no
/// folder was given).
fn separations(a: &EvaluateArgs, loaded: &Loaded, test: &Dataset) -> Result<Option<Measured>> {
    if a.ood.is_empty() && loaded.ood.is_none() {
        return Ok(None);
    }
    let ood = loaded.ood.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no out-of-distribution score (trained before it existed): train it again to measure --ood",
            a.model.display()
        ))
    })?;
    let thresholds = Thresholds { review_below: DEFAULT_REVIEW_BELOW, unknown_above: Some(ood.threshold) };
    let mut predictor = Predictor::new(&loaded.model, INFERENCE_BATCH);
    let classes = loaded.class_names.len();
    let (probs, features) = predictor.probabilities_and_features(&test.images);
    let inside = ood.score.scores(&features, &probs, classes);
    let (shape, limits) = (loaded.photo_shape()?, decode::Limits::pixels(a.max_pixels));
    let (mut out, mut folder_scores) = (Vec::new(), Vec::new());
    for folder in &a.ood {
        let photos = find_images(folder)?;
        let converted: Vec<_> = photos.iter().map(|p| photo::load_as(p, shape, &limits)).collect();
        let failed = converted.iter().filter(|c| c.is_err()).count();
        let pixels: Vec<u8> = converted.into_iter().flatten().flatten().collect();
        let (probs, features) = predictor.probabilities_and_features(&pixels);
        let scores = ood.score.scores(&features, &probs, classes);
        let scored: Vec<(f32, Verdict)> = probs
            .chunks_exact(classes)
            .zip(scores.iter().copied())
            .map(|(p, s)| (s, thresholds.verdict(p.iter().copied().fold(0.0, f32::max), Some(s))))
            .collect();
        out.push(separation(folder.display().to_string(), &inside, &scored, failed));
        folder_scores.push(scores);
    }
    let unknown = inside.iter().filter(|&&s| s > ood.threshold).count() as f64 / inside.len().max(1) as f64;
    Ok(Some(Measured { unknown, folders: out, test_scores: inside, folder_scores }))
}
