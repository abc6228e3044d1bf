//! The optimiser choice of a run, with L2 regularisation (a loss term: its gradient `2λw` is
//! added before the update) and decoupled weight decay (`w −= lr·wd·w` after the update), both on
//! kernels only, never biases. The two coincide only for plain SGD, as the seed notebook notes.

use crate::optim::Optimizer;
use crate::optim::adam::{Adam, AdamConfig};
use crate::optim::lookahead::{Lookahead, LookaheadConfig};
use crate::optim::sgd::Sgd;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Update rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Keras defaults).
    Adam,
    /// Adam with decoupled weight decay (default decay 0.004, as Keras).
    Adamw,
    /// SGD with optional (Nesterov) momentum.
    Sgd,
}

impl std::str::FromStr for OptimizerKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<OptimizerKind> {
        match s.to_ascii_lowercase().as_str() {
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::Adamw),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => Err(crate::Error::value("optimizer", s, "expected adam, adamw or sgd")),
        }
    }
}

impl std::fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
            OptimizerKind::Sgd => "sgd",
        })
    }
}

impl OptimizerKind {
    /// Decoupled weight decay when none is given: 0.004 for AdamW (as Keras), else none.
    pub fn default_weight_decay(self) -> f32 {
        if self == OptimizerKind::Adamw { 0.004 } else { 0.0 }
    }
}

/// Optimiser settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Base learning rate.
    pub lr: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// SGD Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty λ on kernels (loss term λ·Σw²).
    pub l2: f32,
    /// Decoupled weight decay on kernels.
    pub weight_decay: f32,
    /// Lookahead around the update rule (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<LookaheadConfig>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.0,
            nesterov: false,
            l2: 0.0,
            weight_decay: 0.0,
            lookahead: None,
        }
    }
}

impl OptimizerConfig {
    /// Builds the update rule for the parameters `params` (their starting values are
    /// lookahead's first slow weights).
    pub fn build(&self, params: &[f32]) -> Box<dyn Optimizer> {
        let len = params.len();
        let inner: Box<dyn Optimizer> = match self.kind {
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                Box::new(Adam::new(AdamConfig { lr: self.lr, ..Default::default() }, len))
            }
            OptimizerKind::Sgd => Box::new(Sgd::new(self.lr, self.momentum, self.nesterov, len)),
        };
        match self.lookahead {
            Some(config) => Box::new(Lookahead::new(inner, config, params)),
            None => inner,
        }
    }

    /// Adds the L2 penalty's gradient for the kernels in `kernels`.
    pub fn add_l2_gradient(&self, params: &[f32], grads: &mut [f32], kernels: &[Range<usize>]) {
        if self.l2 > 0.0 {
            for r in kernels {
                grads[r.clone()].iter_mut().zip(&params[r.clone()]).for_each(|(g, &w)| *g += 2.0 * self.l2 * w);
            }
        }
    }

    /// Applies decoupled weight decay to the kernels at learning rate `lr`.
    pub fn decay_weights(&self, params: &mut [f32], lr: f32, kernels: &[Range<usize>]) {
        if self.weight_decay > 0.0 {
            let keep = 1.0 - lr * self.weight_decay;
            kernels.iter().for_each(|r| params[r.clone()].iter_mut().for_each(|w| *w *= keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l2_and_decay_touch_kernels_only() {
        let cfg = OptimizerConfig { l2: 0.5, weight_decay: 0.1, ..Default::default() };
        let mut params = vec![2.0, 2.0, 2.0];
        let mut grads = vec![0.0; 3];
        cfg.add_l2_gradient(&params, &mut grads, &[Range { start: 0, end: 2 }]);
        assert_eq!(grads, vec![2.0, 2.0, 0.0]);
        cfg.decay_weights(&mut params, 0.5, &[Range { start: 1, end: 2 }]);
        assert_eq!(params, vec![2.0, 1.9, 2.0]);
    }

    #[test]
    fn l2_and_weight_decay_differ_under_adam() {
        let run = |cfg: OptimizerConfig| {
            let mut opt = cfg.build(&[1.0]);
            let mut p = vec![1.0];
            for _ in 0..3 {
                let mut g = vec![0.1];
                cfg.add_l2_gradient(&p, &mut g, &[Range { start: 0, end: 1 }]);
                opt.step(&mut p, &g);
                cfg.decay_weights(&mut p, cfg.lr, &[Range { start: 0, end: 1 }]);
            }
            p[0]
        };
        let base = OptimizerConfig { lr: 0.1, ..Default::default() };
        let l2 = run(OptimizerConfig { l2: 0.05, ..base });
        let wd = run(OptimizerConfig { weight_decay: 0.1, ..base });
        assert!((l2 - wd).abs() > 1e-3, "{l2} vs {wd}");
    }
}
