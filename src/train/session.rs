//! A training session in a run directory: checkpoints after every epoch (and on interrupt), the
//! metrics history, and the final model, calibrated on the validation split.

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::model_dir::{self, About};
use crate::nn::infer::{INFERENCE_BATCH, Predictor};
use crate::nn::model::Model;
use crate::ood::{self, Ood, Score};
use crate::train::calibration;
use crate::train::checkpoint::{self, Resume, checkpoint_dir};
use crate::train::config::TrainConfig;
use crate::train::history;
use crate::train::state::{FitEnd, TrainObserver};
use crate::train::trainer::{Trainer, probabilities};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs (or, given a checkpoint, continues) training, keeping `run_dir` up to date: a checkpoint
/// and `history.{json,csv}` after every epoch, the checkpoint on interrupt, and the final model
/// (`model.json` + `model.safetensors`) at the end, its temperature fitted on the validation
/// data (1 when there is none). `about` records where the model came from; the session adds the
/// data's sizes, the seed and the last epoch.
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &mut Model,
    mut about: About,
    config: TrainConfig,
    resume: Option<Resume>,
    data: (&Dataset, &Dataset),
    run_dir: &Path,
    observer: &mut dyn TrainObserver,
    interrupt: &AtomicBool,
) -> Result<FitEnd> {
    let classes = &data.0.classes;
    let seed = config.seed;
    let mut trainer = Trainer::new(model, config);
    if let Some(r) = resume {
        trainer
            .resume(r.state, r.optimizer, r.best)
            .map_err(|m| Error::model(&checkpoint_dir(run_dir), m.to_string()))?;
    }
    let ck_dir = checkpoint_dir(run_dir);
    let mut after_epoch = |t: &Trainer| {
        checkpoint::save(&ck_dir, t, classes, &about)?;
        history::save(run_dir, &t.state().history)
    };
    let end = trainer.fit(data.0, data.1, observer, interrupt, &mut after_epoch)?;
    if end == FitEnd::Interrupted {
        checkpoint::save(&ck_dir, &trainer, classes, &about)?;
        return Ok(end);
    }
    let final_epoch = trainer.state().history.last().cloned();
    drop(trainer);
    about.wardrobe_version = env!("CARGO_PKG_VERSION").into();
    about.created = model_dir::now_utc();
    about.data.train = data.0.len();
    about.data.validation = data.1.len();
    about.data.classes = classes.len();
    about.seed = seed;
    about.epochs = final_epoch.as_ref().map_or(0, |e| e.epoch);
    about.final_epoch = final_epoch;
    model.temperature = 1.0;
    let raw = probabilities(model, data.1, false);
    let choice = calibration::choose_temperature(&raw, &data.1.labels, model.classes());
    model.temperature = choice.temperature();
    about.calibration = Some(choice);
    let ood = fit_ood(model, data)?;
    model_dir::save(model, classes, Some(&about), Some(&ood), run_dir)?;
    Ok(end)
}

/// Training images the out-of-distribution score is fitted on, at most.
const OOD_FIT_IMAGES: usize = 20_000;

/// Fits the out-of-distribution score on (up to [`OOD_FIT_IMAGES`] of) the training images and
/// its threshold on the validation images (the training images when there are none), so that
/// at least [`ood::DEFAULT_KEPT`] of photos like them are not called unknown.
pub fn fit_ood(model: &Model, (train, val): (&Dataset, &Dataset)) -> Result<Ood> {
    let fit = train.slice(0..train.len().min(OOD_FIT_IMAGES));
    let mut predictor = Predictor::new(model, INFERENCE_BATCH);
    let (_, features) = predictor.probabilities_and_features(&fit.images);
    let held_out = if val.is_empty() { &fit } else { val };
    let (probs, held_out_features) = predictor.probabilities_and_features(&held_out.images);
    let score =
        Score::fit((&features, &fit.labels), model.feature_groups(), model.classes(), (&held_out_features, &probs))?;
    let held_out_scores = score.scores(&held_out_features, &probs, model.classes());
    let threshold = ood::unknown_threshold(&held_out_scores, ood::DEFAULT_KEPT);
    Ok(Ood { score, threshold, kept: ood::DEFAULT_KEPT })
}
