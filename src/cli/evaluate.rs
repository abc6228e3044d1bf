//! `wardrobe evaluate`: score a saved model on the test set.

use super::DataArgs;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use wardrobe::Result;
use wardrobe::data::dataset::Split;
use wardrobe::model_dir;
use wardrobe::report::{self, ReportInput};
use wardrobe::train::calibration;
use wardrobe::train::metrics::Evaluation;
use wardrobe::train::trainer;

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
    if let Some(dir) = &a.report {
        let history = wardrobe::train::history::load(&a.model)?;
        let input = ReportInput {
            model: &a.model,
            evaluation: &eval,
            probabilities: &probs,
            uncalibrated: &raw,
            temperature,
            ece,
            ece_uncalibrated,
            data: &test,
            names: &loaded.class_names,
            history: history.as_deref(),
            tta: a.tta,
        };
        for path in report::write(dir, &input)? {
            eprintln!("wrote {}", path.display());
        }
    }
    if a.json {
        let json = EvaluationJson { evaluation: &eval, temperature, ece, ece_uncalibrated };
        println!("{}", serde_json::to_string(&json).expect("evaluation serialises"));
    } else {
        print!("{}", eval.table());
        println!("calibration: temperature {temperature:.3}, ECE {ece:.4} (uncalibrated {ece_uncalibrated:.4})");
    }
    Ok(())
}
