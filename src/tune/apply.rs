//! Turning a trial's hyper-parameter values into an architecture and training settings.

use super::space::{HParam, Trial};
use crate::data::augment::Augment;
use crate::error::{Error, Result};
use crate::nn::spec::{LayerSpec, ModelSpec};
use crate::optim::schedule::Schedule;
use crate::train::config::TrainConfig;
use std::str::FromStr;

/// `model` and `config` with the trial's values applied (in the trial's order).
pub fn apply(trial: &Trial, model: &ModelSpec, config: &TrainConfig) -> Result<(ModelSpec, TrainConfig)> {
    let (mut model, mut config) = (model.clone(), config.clone());
    for (param, value) in trial {
        set(*param, value, &mut model, &mut config)
            .map_err(|e| Error::Invalid(format!("{}={value}: {e}", param.name())))?;
    }
    Ok((model, config))
}

fn number<T: FromStr>(value: &str) -> crate::Result<T> {
    value.parse().map_err(|_| Error::Invalid(format!("'{value}' is not a valid number here")))
}

fn set(param: HParam, value: &str, model: &mut ModelSpec, config: &mut TrainConfig) -> crate::Result<()> {
    let o = &mut config.optimizer;
    match param {
        HParam::Optimizer => {
            o.kind = value.parse()?;
            o.weight_decay = o.kind.default_weight_decay();
        }
        HParam::Lr => o.lr = positive(number(value)?)?,
        HParam::BatchSize => config.batch_size = number::<usize>(value)?.max(1),
        HParam::Momentum => o.momentum = number(value)?,
        HParam::L2 => o.l2 = number(value)?,
        HParam::WeightDecay => o.weight_decay = number(value)?,
        HParam::Dropout => set_dropout(model, number(value)?)?,
        HParam::Filters => scale_filters(model, number(value)?)?,
        HParam::Schedule => config.schedule = Schedule::parse(value)?,
        HParam::Augment => config.augment = Augment::parse(&value.replace('+', ","))?,
    }
    Ok(())
}

fn positive(v: f32) -> crate::Result<f32> {
    if v > 0.0 && v.is_finite() { Ok(v) } else { Err(crate::Error::Invalid(format!("{v} must be positive"))) }
}

/// Sets the rate of every dropout layer.
fn set_dropout(model: &mut ModelSpec, rate: f32) -> crate::Result<()> {
    let mut found = false;
    for layer in &mut model.layers {
        if let LayerSpec::Dropout { rate: r } = layer {
            (*r, found) = (rate, true);
        }
    }
    if found { Ok(()) } else { Err(crate::Error::Invalid("the architecture has no dropout layer".into())) }
}

/// Gives the first convolution `first` filters and scales the others by the same ratio.
fn scale_filters(model: &mut ModelSpec, first: usize) -> crate::Result<()> {
    let mut convs = model.layers.iter_mut().filter_map(|l| match l {
        LayerSpec::Conv2d { filters, .. } => Some(filters),
        _ => None,
    });
    let Some(head) = convs.next() else {
        return Err(crate::Error::Invalid("the architecture has no convolution".into()));
    };
    let ratio = first as f64 / *head as f64;
    *head = first.max(1);
    convs.for_each(|f| *f = ((*f as f64 * ratio).round() as usize).max(1));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::config::OptimizerKind;
    use crate::tune::space::SearchSpace;

    fn trial(defs: &[&str]) -> Trial {
        SearchSpace::parse(&defs.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap().grid().remove(0)
    }

    fn base() -> TrainConfig {
        TrainConfig {
            epochs: 1,
            batch_size: 64,
            optimizer: Default::default(),
            schedule: Schedule::Constant,
            augment: Augment::default(),
            label_smoothing: 0.0,
            early_stopping: None,
            seed: 1,
        }
    }

    #[test]
    fn values_land_in_the_model_and_settings() {
        let t = trial(&[
            "optimizer=adamw",
            "lr=0.003",
            "batch_size=128",
            "dropout=0.1",
            "filters=16",
            "augment=flip+shift=2",
        ]);
        let (model, config) = apply(&t, &ModelSpec::seed(), &base()).unwrap();
        assert_eq!((config.optimizer.kind, config.optimizer.lr, config.batch_size), (OptimizerKind::Adamw, 0.003, 128));
        assert_eq!(config.optimizer.weight_decay, 0.004);
        assert_eq!(config.augment, Augment::parse("flip,shift=2").unwrap());
        let filters: Vec<usize> = model
            .layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv2d { filters, .. } => Some(*filters),
                _ => None,
            })
            .collect();
        assert_eq!(filters, [16, 32]);
        assert!(model.layers.iter().all(|l| !matches!(l, LayerSpec::Dropout { rate } if *rate != 0.1)));
    }

    #[test]
    fn unusable_values_are_named() {
        let e = apply(&trial(&["lr=fast"]), &ModelSpec::seed(), &base()).unwrap_err().to_string();
        assert_eq!(e, "lr=fast: 'fast' is not a valid number here");
        let e = apply(&trial(&["optimizer=rmsprop"]), &ModelSpec::seed(), &base()).unwrap_err().to_string();
        assert!(e.starts_with("optimizer=rmsprop:"), "{e}");
        let no_dropout = ModelSpec {
            layers: ModelSpec::seed().layers.into_iter().filter(|l| !matches!(l, LayerSpec::Dropout { .. })).collect(),
            ..ModelSpec::seed()
        };
        let e = apply(&trial(&["dropout=0.3"]), &no_dropout, &base()).unwrap_err().to_string();
        assert!(e.contains("no dropout layer"), "{e}");
    }
}
