//! A run spec file: an architecture together with the training settings and validation split
//! that produced a result, so `wardrobe train --spec FILE` can repeat it exactly. A plain
//! architecture file (a `ModelSpec`) is accepted too.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::spec::ModelSpec;
use crate::train::trainer::TrainConfig;
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
        let text = fsutil::read(path)?;
        let value: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))?;
        let parsed = if value.get("training").is_some() {
            serde_json::from_value(value).map(SpecFile::Run)
        } else {
            serde_json::from_value(value).map(SpecFile::Model)
        };
        parsed.map_err(|e| Error::format(path, format!("invalid spec: {e}")))
    }
}

impl RunSpec {
    /// Writes the spec as pretty JSON (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("run spec serialises");
        fsutil::write_atomic(path, |out| out.write_all(json.as_bytes()))
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
