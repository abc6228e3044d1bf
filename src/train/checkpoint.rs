//! Training checkpoints: everything needed to continue a run exactly — weights, optimiser state,
//! the best weights so far, the run state (epoch, step, partial totals, history) and the training
//! configuration. A checkpoint is written into a fresh sibling directory and swapped in by
//! renames, so a crash at any moment leaves a complete earlier checkpoint.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model_dir::{self, About};
use crate::nn::model::Model;
use crate::nn::tensorfile;
use crate::optim::OptimizerState;
use crate::train::config::TrainConfig;
use crate::train::state::RunState;
use crate::train::trainer::Trainer;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const TRAINER_FILE: &str = "trainer.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const FORMAT: &str = "wardrobe-checkpoint/1";

/// `trainer.json`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainerFile {
    format: String,
    config: TrainConfig,
    state: RunState,
    optimizer_step: i32,
}

/// What a trainer needs, beyond model and configuration, to continue a run.
pub struct Resume {
    /// Where the run stood.
    pub state: RunState,
    /// Optimiser state.
    pub optimizer: OptimizerState,
    /// Best weights so far, when early stopping restores them.
    pub best: Option<Vec<f32>>,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The model with the checkpoint's weights.
    pub model: Model,
    /// The run's configuration.
    pub config: TrainConfig,
    /// The trainer's state.
    pub resume: Resume,
    /// Where the model came from, as the run recorded it when it started.
    pub about: Option<About>,
}

/// The checkpoint directory inside a run directory.
pub fn checkpoint_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoint")
}

/// Whether the run directory `run_dir` holds a checkpoint (or the previous one of a cut-off save).
pub fn exists(run_dir: &Path) -> bool {
    let dir = checkpoint_dir(run_dir);
    dir.exists() || sibling(&dir, ".old").exists()
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(from, e))
}

/// Saves the trainer's current state (its model's outputs named `classes`, the run's record
/// `about`) as the checkpoint in `dir`.
pub fn save(dir: &Path, trainer: &Trainer, classes: &[String], about: &About) -> Result<()> {
    let (fresh, old) = (sibling(dir, ".new"), sibling(dir, ".old"));
    remove_dir_if_present(&fresh)?;
    model_dir::save(trainer.model(), classes, Some(about), None, &fresh)?;
    let (state, optimizer, best) = trainer.snapshot();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> =
        optimizer.slots.iter().enumerate().map(|(i, s)| (format!("slot{i}"), vec![s.len()], &s[..])).collect();
    if let Some(best) = best {
        tensors.push(("best".into(), vec![best.len()], best));
    }
    tensorfile::write(&fresh.join(OPTIMIZER_FILE), &tensors)?;
    let file =
        TrainerFile { format: FORMAT.into(), config: trainer.config().clone(), state, optimizer_step: optimizer.step };
    let json = serde_json::to_string_pretty(&file).expect("trainer state serialises");
    fsutil::write_atomic(&fresh.join(TRAINER_FILE), |out| out.write_all(json.as_bytes()))?;
    remove_dir_if_present(&old)?;
    if dir.exists() {
        rename(dir, &old)?;
    }
    rename(&fresh, dir)?;
    remove_dir_if_present(&old)
}

/// Checks that a run state's fields are in range: an epoch from 1, one finished epoch in the
/// history per epoch before it, numbered in order, and a best epoch among them.
fn check_state(state: &RunState, path: &Path) -> Result<()> {
    let finished = state.history.len();
    let numbered = state.history.iter().enumerate().all(|(i, e)| e.epoch == i + 1);
    let problem = if state.epoch == 0 || state.epoch != finished + 1 {
        Some(format!("epoch {} after {finished} finished epochs", state.epoch))
    } else if !numbered {
        Some("the history's epochs are not 1, 2, 3, …".to_string())
    } else {
        state.best_epoch.filter(|&b| b == 0 || b > finished).map(|b| format!("best epoch {b} of {finished}"))
    };
    problem.map_or(Ok(()), |p| Err(Error::format(path, format!("invalid checkpoint state: {p}"))))
}

/// Loads the checkpoint in `dir` (or the previous one, if a save was cut off mid-swap).
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let old = sibling(dir, ".old");
    let dir = if !dir.exists() && old.exists() { old.as_path() } else { dir };
    let loaded = model_dir::load(dir)?;
    let path = dir.join(TRAINER_FILE);
    let file: TrainerFile = serde_json::from_slice(&fsutil::read_at_most(&path, fsutil::MAX_JSON_BYTES)?)
        .map_err(|e| Error::format(&path, format!("invalid checkpoint state: {e}")))?;
    if file.format != FORMAT {
        return Err(Error::format(&path, format!("format is '{}', expected '{FORMAT}'", file.format)));
    }
    check_state(&file.state, &path)?;
    file.config.validate().map_err(|e| Error::format(&path, format!("invalid checkpoint settings: {e}")))?;
    // At most three optimiser slots (two of Adam's, lookahead's slow weights) and the best
    // weights, each as long as the parameters.
    let mut tensors = tensorfile::read(&dir.join(OPTIMIZER_FILE), 4 * loaded.model.params.len())?;
    let best = tensors.remove("best").map(|t| t.values);
    let slots =
        (0..tensors.len()).map(|i| tensors.remove(&format!("slot{i}")).map(|t| t.values)).collect::<Option<Vec<_>>>();
    let slots = slots.ok_or_else(|| Error::format(&dir.join(OPTIMIZER_FILE), "optimizer slots are not slot0…slotN"))?;
    let params = loaded.model.params.len();
    if let Some(len) = slots.iter().chain(&best).map(Vec::len).find(|&len| len != params) {
        let message = format!("an optimizer tensor holds {len} values, the model has {params} parameters");
        return Err(Error::format(&dir.join(OPTIMIZER_FILE), message));
    }
    Ok(Checkpoint {
        model: loaded.model,
        about: loaded.about,
        config: file.config,
        resume: Resume { state: file.state, optimizer: OptimizerState { step: file.optimizer_step, slots }, best },
    })
}
