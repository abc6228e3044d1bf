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

/// The settings [`TrainConfig::set`] takes by name (as `train`'s flags, `-` written `_`), in the
/// order they are applied: `optimizer` before `weight_decay` (it resets it to the rule's default),
/// `patience` before the early-stopping settings it turns on.
pub const SETTINGS: &[&str] = &[
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "l2",
    "weight_decay",
    "lookahead",
    "schedule",
    "augment",
    "label_smoothing",
    "seed",
    "patience",
    "monitor",
    "min_delta",
    "restore_best",
];

impl TrainConfig {
    /// Sets one setting by its name in [`SETTINGS`] from its command-line text (`"adamw"`,
    /// `"cosine:1"`, `"flip,shift=2"`, `"true"`), as `train`'s flag of that name would; callers
    /// apply several in the order of [`SETTINGS`]. The early-stopping settings need `patience`.
    pub fn set(&mut self, name: &str, value: &str) -> crate::Result<()> {
        fn number<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> crate::Result<T> {
            value.parse().map_err(|_| crate::Error::Invalid(format!("{name} '{value}': expected {what}")))
        }
        fn flag(value: &str, name: &str) -> crate::Result<bool> {
            match value {
                "true" | "True" | "1" => Ok(true),
                "false" | "False" | "0" => Ok(false),
                _ => Err(crate::Error::Invalid(format!("{name} '{value}': expected true or false"))),
            }
        }
        fn stopping<'c>(c: &'c mut Option<EarlyStopping>, name: &str) -> crate::Result<&'c mut EarlyStopping> {
            c.as_mut().ok_or_else(|| crate::Error::Invalid(format!("{name} needs patience (early stopping is off)")))
        }
        let o = &mut self.optimizer;
        match name {
            "epochs" => self.epochs = number(name, value, "a whole number")?,
            "batch_size" => self.batch_size = number(name, value, "a whole number")?,
            "optimizer" => {
                o.kind = value.parse()?;
                o.weight_decay = o.kind.default_weight_decay();
            }
            "lr" => o.lr = number(name, value, "a number")?,
            "momentum" => o.momentum = number(name, value, "a number")?,
            "nesterov" => o.nesterov = flag(value, name)?,
            "l2" => o.l2 = number(name, value, "a number")?,
            "weight_decay" => o.weight_decay = number(name, value, "a number")?,
            "lookahead" => {
                o.lookahead = crate::optim::lookahead::LookaheadConfig::parse(value)
                    .map_err(|e| crate::Error::Invalid(format!("lookahead '{value}': {e}")))?;
            }
            "schedule" => self.schedule = Schedule::parse(value)?,
            "augment" => self.augment = Augment::parse(value)?,
            "label_smoothing" => self.label_smoothing = number(name, value, "a number")?,
            "seed" => self.seed = number(name, value, "a whole number")?,
            "patience" => {
                let patience = number(name, value, "a whole number")?;
                let defaults =
                    EarlyStopping { monitor: Monitor::ValLoss, patience, min_delta: 0.0, restore_best: true };
                self.early_stopping = Some(EarlyStopping { patience, ..self.early_stopping.unwrap_or(defaults) });
            }
            "monitor" => stopping(&mut self.early_stopping, name)?.monitor = value.parse()?,
            "min_delta" => stopping(&mut self.early_stopping, name)?.min_delta = number(name, value, "a number")?,
            "restore_best" => stopping(&mut self.early_stopping, name)?.restore_best = flag(value, name)?,
            _ => {
                return Err(crate::Error::Invalid(format!(
                    "unknown training setting '{name}'; the settings are {}",
                    SETTINGS.join(", ")
                )));
            }
        }
        Ok(())
    }

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
    fn settings_by_name_set_what_the_flags_of_the_same_name_set() {
        let mut c = TrainConfig::default();
        for (name, value) in [
            ("epochs", "3"),
            ("optimizer", "adamw"),
            ("lr", "0.004"),
            ("schedule", "cosine:0.5"),
            ("augment", "flip,shift=2"),
            ("lookahead", "5:0.5"),
            ("label_smoothing", "0.1"),
            ("patience", "2"),
            ("monitor", "val-accuracy"),
            ("restore_best", "False"),
        ] {
            c.set(name, value).unwrap();
        }
        assert_eq!(
            c.flags(),
            "--epochs 3 --batch-size 64 --optimizer adamw --lr 0.004 --schedule cosine:0.5 --augment shift=2,flip \
             --weight-decay 0.004 --label-smoothing 0.1 --lookahead 5:0.5 --seed 1"
        );
        let stopping = c.early_stopping.unwrap();
        assert_eq!((stopping.patience, stopping.monitor, stopping.restore_best), (2, Monitor::ValAccuracy, false));
        let mut plain = TrainConfig::default();
        assert!(plain.set("monitor", "val-loss").unwrap_err().to_string().contains("needs patience"));
        assert!(plain.set("learning_rate", "1").unwrap_err().to_string().contains("the settings are epochs,"));
        assert!(
            plain.set("epochs", "many").unwrap_err().to_string().contains("epochs 'many': expected a whole number")
        );
    }

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
