//! Settings of a training run (what `train`'s recipe flags and a run spec's `training` hold),
//! their validation, and when a run stops early.

use crate::data::augment::Augment;
use crate::model_dir::EpochStats;
use crate::optim::config::OptimizerConfig;
use crate::optim::schedule::Schedule;
use serde::{Deserialize, Serialize};

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch_size: usize,
    /// Optimiser settings (its `lr` is the schedule's base rate).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Augmentation of training images.
    pub augment: Augment,
    /// Label smoothing ε: the targets are (1 − ε)·one-hot + ε/K.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Stop when validation stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The seed notebook's recipe: 10 epochs of Adam (Keras defaults) at batch 64 with a cosine
    /// decay, no augmentation, no early stopping, seed 1.
    fn default() -> TrainConfig {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Cosine { warmup: 0.0 },
            augment: Augment::default(),
            label_smoothing: 0.0,
            early_stopping: None,
            seed: 1,
        }
    }
}

impl TrainConfig {
    /// The settings as the flags that set them, e.g. `--epochs 14 --batch-size 64 --optimizer adam
    /// --lr 0.002 --schedule cosine --augment flip --label-smoothing 0.1`.
    pub fn flags(&self) -> String {
        let o = &self.optimizer;
        let mut flags = format!(
            "--epochs {} --batch-size {} --optimizer {} --lr {} --schedule {} --augment {}",
            self.epochs, self.batch_size, o.kind, o.lr, self.schedule, self.augment
        );
        for (name, value) in [
            ("momentum", o.momentum),
            ("l2", o.l2),
            ("weight-decay", o.weight_decay),
            ("label-smoothing", self.label_smoothing),
        ] {
            if value != 0.0 {
                flags.push_str(&format!(" --{name} {value}"));
            }
        }
        if o.nesterov {
            flags.push_str(" --nesterov");
        }
        if let Some(lookahead) = o.lookahead {
            flags.push_str(&format!(" --lookahead {lookahead}"));
        }
        flags.push_str(&format!(" --seed {}", self.seed));
        flags
    }

    /// Checks that the settings can train: at least one epoch and one image per step, a positive
    /// finite learning rate, finite non-negative momentum and penalties, a lookahead that returns
    /// every K ≥ 1 steps by 0 < ALPHA ≤ 1.
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |m: String| Err(crate::Error::Invalid(m));
        let o = &self.optimizer;
        if self.epochs == 0 {
            return invalid("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("--batch-size must be at least 1".into());
        }
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return invalid(format!("--lr must be a positive number, got {}", o.lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return invalid(format!("--label-smoothing must be in [0, 1), got {}", self.label_smoothing));
        }
        for (name, v) in [("momentum", o.momentum), ("l2", o.l2), ("weight-decay", o.weight_decay)] {
            if !(v >= 0.0 && v.is_finite()) {
                return invalid(format!("--{name} must be a non-negative number, got {v}"));
            }
        }
        if let Some(l) = o.lookahead.filter(|l| !l.is_valid()) {
            return invalid(format!("--lookahead must be K:ALPHA with K ≥ 1 and 0 < ALPHA ≤ 1, got {l}"));
        }
        Ok(())
    }
}

/// The validation metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Validation loss, lower is better.
    ValLoss,
    /// Validation accuracy, higher is better.
    ValAccuracy,
}

impl std::str::FromStr for Monitor {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Monitor> {
        match s {
            "val-loss" => Ok(Monitor::ValLoss),
            "val-accuracy" => Ok(Monitor::ValAccuracy),
            _ => Err(crate::Error::flag("--monitor", s, "expected val-loss or val-accuracy")),
        }
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Monitor::ValLoss => "val-loss",
            Monitor::ValAccuracy => "val-accuracy",
        })
    }
}

impl Monitor {
    /// The watched value of an epoch, oriented so that larger is better.
    pub fn score(self, stats: &EpochStats) -> f64 {
        match self {
            Monitor::ValLoss => -stats.val_loss,
            Monitor::ValAccuracy => stats.val_accuracy,
        }
    }
}

/// Early stopping: end training after `patience` epochs without an improvement of more than
/// `min_delta` in `monitor`, optionally restoring the best epoch's weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Watched metric.
    pub monitor: Monitor,
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights at the end.
    pub restore_best: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::lookahead::LookaheadConfig;

    #[test]
    fn validate_refuses_a_lookahead_a_spec_or_checkpoint_could_carry() {
        let with = |k, alpha| TrainConfig {
            optimizer: OptimizerConfig { lookahead: Some(LookaheadConfig { k, alpha }), ..Default::default() },
            ..Default::default()
        };
        assert!(with(5, 0.5).validate().is_ok());
        for (k, alpha) in [(0, 0.5), (5, 0.0), (5, 1.5), (5, f32::NAN)] {
            let err = with(k, alpha).validate().unwrap_err().to_string();
            assert!(err.contains("--lookahead must be K:ALPHA"), "{k}:{alpha}: {err}");
        }
    }
}
