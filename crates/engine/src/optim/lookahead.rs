//! Lookahead (Zhang et al., 2019) around any update rule: every `k` steps of the inner
//! optimiser (the fast weights), slow weights move `alpha` of the way towards the fast ones, and
//! the fast weights start again from them.

use crate::optim::{Optimizer, OptimizerState};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How often and how far the slow weights follow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LookaheadConfig {
    /// Inner steps between synchronisations.
    pub k: u32,
    /// Fraction of the way the slow weights move towards the fast ones.
    pub alpha: f32,
}

impl LookaheadConfig {
    /// Parses the command-line form `K:ALPHA` (e.g. `5:0.5`), or `none` for no lookahead.
    pub fn parse(s: &str) -> Result<Option<LookaheadConfig>, String> {
        if s == "none" {
            return Ok(None);
        }
        let bad = || format!("lookahead '{s}': expected none or K:ALPHA with K ≥ 1 and 0 < ALPHA ≤ 1, e.g. 5:0.5");
        let (k, alpha) = s.split_once(':').ok_or_else(bad)?;
        let config = LookaheadConfig { k: k.parse().map_err(|_| bad())?, alpha: alpha.parse().map_err(|_| bad())? };
        if config.is_valid() { Ok(Some(config)) } else { Err(bad()) }
    }

    /// Whether it returns every K ≥ 1 steps by 0 < ALPHA ≤ 1.
    pub fn is_valid(&self) -> bool {
        self.k >= 1 && self.alpha > 0.0 && self.alpha <= 1.0
    }
}

impl std::fmt::Display for LookaheadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}:{}", self.k, self.alpha)
    }
}

/// An inner optimiser with slow weights that it returns to every `k` steps.
pub struct Lookahead {
    inner: Box<dyn Optimizer>,
    config: LookaheadConfig,
    slow: Vec<f32>,
    steps: i32,
}

impl Lookahead {
    /// `inner` with slow weights starting at `params`.
    pub fn new(inner: Box<dyn Optimizer>, config: LookaheadConfig, params: &[f32]) -> Lookahead {
        Lookahead { inner, config, slow: params.to_vec(), steps: 0 }
    }
}

impl Optimizer for Lookahead {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.inner.step(params, grads);
        self.steps += 1;
        if self.steps % self.config.k as i32 == 0 {
            const BLOCK: usize = 16_384;
            let alpha = self.config.alpha;
            params.par_chunks_mut(BLOCK).zip(self.slow.par_chunks_mut(BLOCK)).for_each(|(params, slow)| {
                for (p, s) in params.iter_mut().zip(slow) {
                    *s += alpha * (*p - *s);
                    *p = *s;
                }
            });
        }
    }

    fn learning_rate(&self) -> f32 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.inner.set_learning_rate(lr);
    }

    /// The inner optimiser's state with the slow weights as one more slot, and the step count.
    fn state(&self) -> OptimizerState {
        let mut state = self.inner.state();
        state.slots.push(self.slow.clone());
        state.step = self.steps;
        state
    }

    fn restore(&mut self, mut state: OptimizerState) -> crate::Result<()> {
        let slow = state.slots.pop().filter(|s| s.len() == self.slow.len()).ok_or_else(|| {
            crate::Error::State(format!("lookahead state must end in a slot of {} slow weights", self.slow.len()))
        })?;
        let steps = state.step;
        self.inner.restore(state)?;
        (self.slow, self.steps) = (slow, steps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::sgd::Sgd;

    fn sgd_lookahead(k: u32, alpha: f32) -> Lookahead {
        Lookahead::new(Box::new(Sgd::new(0.1, 0.0, false, 1)), LookaheadConfig { k, alpha }, &[1.0])
    }

    #[test]
    fn returns_to_the_slow_weights_every_k_steps() {
        let mut opt = sgd_lookahead(2, 0.5);
        let mut p = vec![1.0];
        opt.step(&mut p, &[1.0]);
        assert!((p[0] - 0.9).abs() < 1e-6, "a fast step: {}", p[0]);
        opt.step(&mut p, &[1.0]);
        // fast 0.8; slow 1 + 0.5·(0.8 − 1) = 0.9, and the fast weights restart there
        assert!((p[0] - 0.9).abs() < 1e-6, "synchronised: {}", p[0]);
        opt.step(&mut p, &[1.0]);
        assert!((p[0] - 0.8).abs() < 1e-6, "fast again from the slow weights: {}", p[0]);
    }

    #[test]
    fn state_round_trips_and_resumes_identically() {
        let (mut a, mut p) = (sgd_lookahead(3, 0.5), vec![1.0]);
        for _ in 0..4 {
            a.step(&mut p, &[0.3]);
        }
        let mut b = sgd_lookahead(3, 0.5);
        b.restore(a.state()).unwrap();
        let mut q = p.clone();
        for _ in 0..5 {
            a.step(&mut p, &[0.2]);
            b.step(&mut q, &[0.2]);
        }
        assert_eq!(p, q);
        assert!(b.restore(OptimizerState { step: 1, slots: vec![] }).is_err());
    }

    #[test]
    fn parses_its_command_line_form() {
        assert_eq!(LookaheadConfig::parse("5:0.5"), Ok(Some(LookaheadConfig { k: 5, alpha: 0.5 })));
        assert_eq!(LookaheadConfig::parse("5:0.5").unwrap().unwrap().to_string(), "5:0.5");
        assert_eq!(LookaheadConfig::parse("none"), Ok(None));
        for bad in ["5", "0:0.5", "5:0", "5:1.5", "x:0.5"] {
            assert!(LookaheadConfig::parse(bad).is_err(), "{bad}");
        }
    }
}
