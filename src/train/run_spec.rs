//! A run spec file: an architecture together with the training settings and validation split
//! that produced a result, so `wardrobe train --spec FILE` can repeat it exactly. A plain
//! architecture file (a `ModelSpec`) is accepted too.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::spec::ModelSpec;
use crate::train::config::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Architecture plus how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The architecture.
    pub model: ModelSpec,
    /// Training settings, seed included.
    pub training: TrainConfig,
    /// Fraction of the training set held out for validation.
    pub val_split: f64,
}

/// What a spec file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpecFile {
    /// Architecture and training settings.
    Run(RunSpec),
    /// Architecture only.
    Model(ModelSpec),
}

impl SpecFile {
    /// Reads a spec file, naming it in errors.
    pub fn load(path: &Path) -> Result<SpecFile> {
        SpecFile::parse(&fsutil::read_at_most(path, fsutil::MAX_JSON_BYTES)?, path)
    }

    /// Parses a spec's JSON text; `path` names it in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<SpecFile> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
        let parsed = if value.get("training").is_some() {
            serde_json::from_value(value).map(SpecFile::Run)
        } else {
            serde_json::from_value(value).map(SpecFile::Model)
        };
        parsed.map_err(|e| Error::format(path, format!("invalid spec: {e}")))
    }
}

/// The recipe of the default preset over `epochs`: Adam with half an epoch of linear warm-up to
/// 4e-3 and a cosine decay, batch 64, mirrored images and label smoothing 0.1 (the best preset
/// alternates the flip by epoch and adds random erasing, decoupled weight decay and lookahead).
fn recipe(epochs: usize) -> TrainConfig {
    let optimizer = crate::optim::config::OptimizerConfig { lr: 4e-3, ..Default::default() };
    TrainConfig {
        epochs,
        optimizer,
        schedule: crate::optim::schedule::Schedule::Cosine { warmup: 0.5 },
        augment: crate::data::augment::Augment { flip: true, ..Default::default() },
        label_smoothing: 0.1,
        ..TrainConfig::default()
    }
}

/// Settings typed on the command line override a spec's: `given(field)` says which were, by
/// the names of [`TrainConfig`]'s fields (and `optimizer`'s: `lr`, `momentum`, `lookahead`, …, and
/// `patience`, `monitor`, `min_delta`, `no_restore_best` for early stopping, `val_split`).
pub type Given<'a> = &'a dyn Fn(&str) -> bool;

impl RunSpec {
    /// A named preset: its architecture (for 28×28 grey images and 10 classes; fit it to the
    /// data with [`ModelSpec::fitted_to`]) with the recipe that trains it best per minute on two
    /// cores (docs/PERFORMANCE.md has the measurements). `seed` is the notebook's model and
    /// recipe.
    pub fn preset(name: &str) -> Result<RunSpec> {
        let model = ModelSpec::preset(name)?;
        let seed = TrainConfig::default();
        let (training, val_split) = match name {
            "default" => (recipe(10), 0.05),
            "best" => {
                let augment =
                    crate::data::augment::Augment { flip: true, alternate: true, erase: 0.5, ..Default::default() };
                let mut training = TrainConfig { augment, ..recipe(32) };
                training.optimizer.kind = crate::optim::config::OptimizerKind::Adamw;
                training.optimizer.weight_decay = 0.1;
                training.optimizer.lookahead = Some(crate::optim::lookahead::LookaheadConfig { k: 5, alpha: 0.5 });
                (training, 0.05)
            }
            _ => (seed, 0.1),
        };
        Ok(RunSpec { model, training, val_split })
    }

    /// This spec with the settings `given` on the command line taken from `flags` and
    /// `val_split` instead.
    pub fn with_overrides(&self, flags: &TrainConfig, val_split: f64, given: Given) -> RunSpec {
        fn pick<T: Clone>(given: bool, flag: &T, spec: T) -> T {
            if given { flag.clone() } else { spec }
        }
        let any = |ids: &[&str]| ids.iter().any(|id| given(id));
        let mut c = self.training.clone();
        let (o, f) = (&mut c.optimizer, &flags.optimizer);
        c.epochs = pick(given("epochs"), &flags.epochs, c.epochs);
        c.batch_size = pick(given("batch_size"), &flags.batch_size, c.batch_size);
        o.kind = pick(given("optimizer"), &f.kind, o.kind);
        o.lr = pick(given("lr"), &f.lr, o.lr);
        o.momentum = pick(given("momentum"), &f.momentum, o.momentum);
        o.nesterov = pick(given("nesterov"), &f.nesterov, o.nesterov);
        o.l2 = pick(given("l2"), &f.l2, o.l2);
        o.weight_decay = pick(any(&["weight_decay", "optimizer"]), &f.weight_decay, o.weight_decay);
        o.lookahead = pick(given("lookahead"), &f.lookahead, o.lookahead);
        c.schedule = pick(given("schedule"), &flags.schedule, c.schedule);
        c.augment = pick(given("augment"), &flags.augment, c.augment);
        c.label_smoothing = pick(given("label_smoothing"), &flags.label_smoothing, c.label_smoothing);
        c.seed = pick(given("seed"), &flags.seed, c.seed);
        let stopping = any(&["patience", "monitor", "min_delta", "no_restore_best"]);
        c.early_stopping = pick(stopping, &flags.early_stopping, c.early_stopping);
        let val_split = pick(given("val_split"), &val_split, self.val_split);
        RunSpec { model: self.model.clone(), training: c, val_split }
    }

    /// Writes the spec as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("run spec serialises");
        Ok(fsutil::write_atomic(path, |out| out.write_all(json.as_bytes()))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::Augment;
    use crate::optim::config::OptimizerConfig;
    use crate::optim::schedule::Schedule;

    #[test]
    fn run_and_model_specs_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunSpec {
            model: ModelSpec::seed(),
            training: TrainConfig {
                epochs: 3,
                batch_size: 128,
                optimizer: OptimizerConfig::default(),
                schedule: Schedule::Constant,
                augment: Augment::parse("flip").unwrap(),
                label_smoothing: 0.0,
                early_stopping: None,
                seed: 9,
            },
            val_split: 0.2,
        };
        let path = dir.path().join("best.json");
        run.save(&path).unwrap();
        assert_eq!(SpecFile::load(&path).unwrap(), SpecFile::Run(run));
        let model_only = dir.path().join("arch.json");
        std::fs::write(&model_only, serde_json::to_string(&ModelSpec::default_preset()).unwrap()).unwrap();
        assert_eq!(SpecFile::load(&model_only).unwrap(), SpecFile::Model(ModelSpec::default_preset()));
        std::fs::write(&path, r#"{"model": {}, "training": {}}"#).unwrap();
        let e = SpecFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("best.json") && e.contains("invalid spec"), "{e}");
        std::fs::write(&path, "{").unwrap();
        assert!(SpecFile::load(&path).unwrap_err().to_string().contains("invalid JSON"));
    }
}
