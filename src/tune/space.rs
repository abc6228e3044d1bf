//! The search space of `wardrobe tune`: named hyper-parameters, each with the values to try, and
//! the trials drawn from it (the full grid, or a seeded random sample of distinct grid points).

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// A hyper-parameter `tune` can vary. Trials apply them in this order (so an `optimizer` choice
/// sets its default weight decay before an explicit `weight_decay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HParam {
    /// Update rule: adam, adamw, sgd.
    Optimizer,
    /// Base learning rate.
    Lr,
    /// Images per step.
    BatchSize,
    /// SGD momentum.
    Momentum,
    /// L2 penalty on kernels.
    L2,
    /// Decoupled weight decay.
    WeightDecay,
    /// Rate of every dropout layer.
    Dropout,
    /// Filters of the first convolution (later ones scaled alike).
    Filters,
    /// Learning-rate schedule (as `--schedule`).
    Schedule,
    /// Augmentation (as `--augment`, with `+` between parts).
    Augment,
}

/// Every hyper-parameter with its name.
pub const ALL: [(HParam, &str); 10] = [
    (HParam::Optimizer, "optimizer"),
    (HParam::Lr, "lr"),
    (HParam::BatchSize, "batch_size"),
    (HParam::Momentum, "momentum"),
    (HParam::L2, "l2"),
    (HParam::WeightDecay, "weight_decay"),
    (HParam::Dropout, "dropout"),
    (HParam::Filters, "filters"),
    (HParam::Schedule, "schedule"),
    (HParam::Augment, "augment"),
];

impl HParam {
    /// The name used on the command line and in logs.
    pub fn name(self) -> &'static str {
        ALL.iter().find(|(p, _)| *p == self).map(|(_, n)| *n).expect("every parameter is named")
    }

    /// Whether its values are numbers (else words).
    pub fn numeric(self) -> bool {
        !matches!(self, HParam::Optimizer | HParam::Schedule | HParam::Augment)
    }
}

/// One hyper-parameter and the values to try, as typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// The hyper-parameter.
    pub param: HParam,
    /// Its values.
    pub values: Vec<String>,
}

/// One point of the space: a value for each dimension, in dimension order.
pub type Trial = Vec<(HParam, String)>;

/// The dimensions to search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    /// Dimensions, each hyper-parameter at most once.
    pub dims: Vec<Dimension>,
}

/// How trials are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Search {
    /// Grid points in order.
    Grid,
    /// Distinct grid points in a seeded random order.
    Random,
}

impl std::str::FromStr for Search {
    type Err = Error;

    fn from_str(s: &str) -> Result<Search> {
        match s {
            "grid" => Ok(Search::Grid),
            "random" => Ok(Search::Random),
            _ => Err(Error::flag("--search", s, "expected grid or random")),
        }
    }
}

impl std::fmt::Display for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if *self == Search::Grid { "grid" } else { "random" })
    }
}

impl SearchSpace {
    /// Parses `NAME=V1,V2,…` definitions, one per dimension.
    pub fn parse(definitions: &[String]) -> Result<SearchSpace> {
        let mut dims: Vec<Dimension> = Vec::new();
        for definition in definitions {
            let (name, values) = definition
                .split_once('=')
                .ok_or_else(|| Error::flag("--param", definition, "expected NAME=V1,V2,…"))?;
            let param = ALL.iter().find(|(_, n)| *n == name.trim()).map(|(p, _)| *p).ok_or_else(|| {
                let names: Vec<&str> = ALL.iter().map(|(_, n)| *n).collect();
                Error::flag(
                    "--param",
                    definition,
                    format!("unknown hyper-parameter '{name}' (known: {})", names.join(", ")),
                )
            })?;
            if dims.iter().any(|d| d.param == param) {
                return Err(Error::flag("--param", name, "given twice"));
            }
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
            if values.iter().any(String::is_empty) {
                return Err(Error::flag("--param", definition, "empty value"));
            }
            dims.push(Dimension { param, values });
        }
        dims.sort_by_key(|d| d.param);
        Ok(SearchSpace { dims })
    }

    /// The default space: learning rate, batch size, dropout and optimiser.
    pub fn default_space() -> SearchSpace {
        let defs = ["lr=0.0003,0.001,0.003", "batch_size=64,128", "dropout=0.25,0.5", "optimizer=adam,adamw"];
        SearchSpace::parse(&defs.map(String::from)).expect("the default space parses")
    }

    /// Every combination, the last dimension varying fastest.
    pub fn grid(&self) -> Vec<Trial> {
        self.dims.iter().fold(vec![Vec::new()], |trials, dim| {
            trials
                .iter()
                .flat_map(|t| {
                    dim.values.iter().map(move |v| {
                        let mut next = t.clone();
                        next.push((dim.param, v.clone()));
                        next
                    })
                })
                .collect()
        })
    }

    /// Up to `count` distinct trials chosen by `search`.
    pub fn trials(&self, search: Search, count: usize, seed: u64) -> Vec<Trial> {
        let mut grid = self.grid();
        if search == Search::Random {
            grid.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        grid.truncate(count);
        grid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(defs: &[&str]) -> Result<SearchSpace> {
        SearchSpace::parse(&defs.iter().map(|d| d.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn grid_covers_every_combination_and_random_picks_distinct_ones() {
        let s = space(&["lr=1,2,3", "optimizer=adam,sgd"]).unwrap();
        assert_eq!(s.dims[0].param, HParam::Optimizer, "dimensions in application order");
        let grid = s.grid();
        assert_eq!(grid.len(), 6);
        assert_eq!(grid[1], vec![(HParam::Optimizer, "adam".into()), (HParam::Lr, "2".into())]);
        let a = s.trials(Search::Random, 4, 7);
        assert_eq!(a, s.trials(Search::Random, 4, 7), "seeded");
        assert_ne!(a, s.trials(Search::Random, 4, 8));
        let mut distinct = a.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
        assert_eq!(s.trials(Search::Grid, 10, 1), grid);
        assert_eq!(SearchSpace::default_space().grid().len(), 24);
    }

    #[test]
    fn bad_definitions_are_named() {
        assert!(space(&["lr"]).unwrap_err().to_string().contains("expected NAME=V1,V2"));
        assert!(space(&["speed=1"]).unwrap_err().to_string().contains("unknown hyper-parameter 'speed'"));
        assert!(space(&["lr=1", "lr=2"]).unwrap_err().to_string().contains("given twice"));
        assert!(space(&["lr=1,,2"]).unwrap_err().to_string().contains("empty value"));
    }
}
