//! A training session in a run directory: checkpoints after every epoch (and on interrupt), the
//! metrics history, and the final model.

use crate::data::dataset::{CLASS_NAMES, Dataset};
use crate::error::{Error, Result};
use crate::nn::model::Model;
use crate::nn::store;
use crate::train::checkpoint::{self, Resume, checkpoint_dir};
use crate::train::history;
use crate::train::trainer::{FitEnd, TrainConfig, TrainObserver, Trainer};
use std::path::Path;
use std::sync::atomic::AtomicBool;

/// Runs (or, given a checkpoint, continues) training, keeping `run_dir` up to date: a checkpoint
/// and `history.{json,csv}` after every epoch, the checkpoint on interrupt, and the final model
/// (`model.json` + `model.safetensors`) at the end.
pub fn run(
    model: &mut Model,
    config: TrainConfig,
    resume: Option<Resume>,
    data: (&Dataset, &Dataset),
    run_dir: &Path,
    observer: &mut dyn TrainObserver,
    interrupt: &AtomicBool,
) -> Result<FitEnd> {
    let mut trainer = Trainer::new(model, config);
    if let Some(r) = resume {
        trainer
            .resume(r.state, r.optimizer, r.best)
            .map_err(|m| Error::model(&checkpoint_dir(run_dir), m.to_string()))?;
    }
    let ck_dir = checkpoint_dir(run_dir);
    let mut after_epoch = |t: &Trainer| {
        checkpoint::save(&ck_dir, t)?;
        history::save(run_dir, &t.state().history)
    };
    let end = trainer.fit(data.0, data.1, observer, interrupt, &mut after_epoch)?;
    if end == FitEnd::Interrupted {
        checkpoint::save(&ck_dir, &trainer)?;
    } else {
        store::save(trainer.model(), &CLASS_NAMES, run_dir)?;
    }
    Ok(end)
}
