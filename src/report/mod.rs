//! Evaluation reports as files: the confusion-matrix heat-map, training curves, a grid of
//! misclassified images, the reliability diagram, and `report.json` with every figure behind them.

pub mod canvas;
pub mod confusion;
pub mod curves;
pub mod mistakes;
pub mod ood;
pub mod reliability;
pub mod tb_proto;
pub mod tensorboard;

use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::fsutil;
use crate::model_dir::EpochStats;
use crate::train::metrics::Evaluation;
use canvas::Figure;
use mistakes::Mistake;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Misclassified images drawn in the grid.
pub const MISTAKES_SHOWN: usize = 40;

/// What a report is made from.
pub struct ReportInput<'a> {
    /// The model directory evaluated.
    pub model: &'a Path,
    /// The evaluation.
    pub evaluation: &'a Evaluation,
    /// Class probabilities of every sample (rows of the class count), calibrated.
    pub probabilities: &'a [f32],
    /// The same before calibration (temperature 1).
    pub uncalibrated: &'a [f32],
    /// The model's calibration temperature.
    pub temperature: f32,
    /// Expected calibration error of `probabilities`.
    pub ece: f64,
    /// The same of `uncalibrated`.
    pub ece_uncalibrated: f64,
    /// The evaluated set.
    pub data: &'a Dataset,
    /// The original photo of each image of `data`, for a catalogue whose manifest lists them.
    pub photos: Option<&'a [Option<PathBuf>]>,
    /// Class names.
    pub names: &'a [String],
    /// The model's training history, when its run directory has one.
    pub history: Option<&'a [EpochStats]>,
    /// Whether test-time augmentation was used.
    pub tta: bool,
    /// The out-of-distribution scores of the test set and of each --ood folder (test set first),
    /// and the threshold, when the model has a score.
    pub ood: Option<(Vec<ood::ScoredSet<'a>>, f32)>,
}

/// The `report.json` document.
#[derive(Serialize)]
struct ReportJson<'a> {
    model: String,
    tta: bool,
    evaluation: &'a Evaluation,
    temperature: f32,
    ece: f64,
    ece_uncalibrated: f64,
    confusion_row_percent: Vec<Vec<f64>>,
    /// The calibrated probabilities' reliability bins (count, mean confidence, accuracy).
    reliability: Vec<crate::train::calibration::Bin>,
    misclassified: usize,
    most_confident_mistakes: &'a [Mistake],
    history: Option<&'a [EpochStats]>,
    files: &'a [String],
}

/// Writes the figures and `report.json` into `dir` (each atomically); returns the files written.
pub fn write(dir: &Path, input: &ReportInput) -> Result<Vec<PathBuf>> {
    fsutil::create_dir_all(dir)?;
    let mut figures: Vec<(&str, Figure)> = Vec::new();
    let title =
        format!("confusion matrix, {} samples, accuracy {:.2}%", input.data.len(), 100.0 * input.evaluation.accuracy);
    figures.push(("confusion.png", confusion::confusion_png(&input.evaluation.confusion, input.names, &title)?));
    if let Some(history) = input.history.filter(|h| !h.is_empty()) {
        figures.push(("curves.png", curves::curves_png(history)?));
    }
    let mut wrong = mistakes::mistakes(input.probabilities, &input.data.labels, input.names);
    for m in &mut wrong {
        m.photo = input.photos.and_then(|p| p.get(m.index)?.as_ref()).map(|p| p.display().to_string());
    }
    let shown = &wrong[..wrong.len().min(MISTAKES_SHOWN)];
    figures.push(("mistakes.png", mistakes::mistakes_png(shown, input.data)?));
    let (labels, classes) = (&input.data.labels, input.names.len());
    figures.push((
        "reliability.png",
        reliability::reliability_png(input.uncalibrated, input.probabilities, labels, classes)?,
    ));
    if let Some((sets, threshold)) = &input.ood {
        figures.push(("ood.png", ood::ood_png(sets, *threshold)?));
    }
    let mut written = Vec::new();
    for (name, figure) in &figures {
        let path = dir.join(name);
        fsutil::write_atomic(&path, |out| out.write_all(&figure.png))?;
        written.push(path);
    }
    let files: Vec<String> = figures.iter().map(|(name, _)| name.to_string()).collect();
    let json = ReportJson {
        model: input.model.display().to_string(),
        tta: input.tta,
        evaluation: input.evaluation,
        temperature: input.temperature,
        ece: input.ece,
        ece_uncalibrated: input.ece_uncalibrated,
        confusion_row_percent: input.evaluation.confusion.row_percent(),
        reliability: crate::train::calibration::reliability(
            input.probabilities,
            labels,
            classes,
            crate::train::calibration::ECE_BINS,
        ),
        misclassified: wrong.len(),
        most_confident_mistakes: shown,
        history: input.history,
        files: &files,
    };
    let text = serde_json::to_string_pretty(&json).expect("report serialises");
    let path = dir.join("report.json");
    fsutil::write_atomic(&path, |out| out.write_all(text.as_bytes()))?;
    written.push(path);
    Ok(written)
}
