//! Adam with Keras' defaults and update form: `p -= lr·√(1−β2ᵗ)/(1−β1ᵗ) · m / (√v + ε)`.

use crate::optim::{Optimizer, OptimizerState};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator fuzz.
    pub epsilon: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }
    }
}

/// Adam state: moment estimates and step count.
pub struct Adam {
    config: AdamConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    /// Fresh state for `len` parameters.
    pub fn new(config: AdamConfig, len: usize) -> Adam {
        Adam { config, m: vec![0.0; len], v: vec![0.0; len], t: 0 }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.t += 1;
        let AdamConfig { lr, beta1, beta2, epsilon } = self.config;
        let alpha = lr * (1.0 - beta2.powi(self.t)).sqrt() / (1.0 - beta1.powi(self.t));
        const BLOCK: usize = 16_384;
        params
            .par_chunks_mut(BLOCK)
            .zip(grads.par_chunks(BLOCK))
            .zip(self.m.par_chunks_mut(BLOCK).zip(self.v.par_chunks_mut(BLOCK)))
            .for_each(|((params, grads), (m, v))| {
                for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= alpha * *m / (v.sqrt() + epsilon);
                }
            });
    }

    fn learning_rate(&self) -> f32 {
        self.config.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn state(&self) -> OptimizerState {
        OptimizerState { step: self.t, slots: vec![self.m.clone(), self.v.clone()] }
    }

    fn restore(&mut self, state: OptimizerState) -> crate::Result<()> {
        match <[Vec<f32>; 2]>::try_from(state.slots) {
            Ok([m, v]) if m.len() == self.m.len() && v.len() == self.v.len() => {
                (self.m, self.v, self.t) = (m, v, state.step);
                Ok(())
            }
            _ => Err(crate::Error::State(format!("Adam state must be two slots of {} values", self.m.len()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient_sign() {
        let mut adam = Adam::new(AdamConfig::default(), 3);
        let mut p = vec![1.0, 1.0, 1.0];
        adam.step(&mut p, &[0.5, -2.0, 0.0]);
        assert!((p[0] - 0.999).abs() < 1e-6 && (p[1] - 1.001).abs() < 1e-6 && p[2] == 1.0, "{p:?}");
    }

    #[test]
    fn restored_state_continues_identically() {
        let mut a = Adam::new(AdamConfig::default(), 2);
        let mut p = vec![1.0, 2.0];
        a.step(&mut p, &[0.3, -0.1]);
        let mut b = Adam::new(AdamConfig::default(), 2);
        b.restore(a.state()).unwrap();
        let mut q = p.clone();
        a.step(&mut p, &[0.2, 0.4]);
        b.step(&mut q, &[0.2, 0.4]);
        assert_eq!(p, q);
        assert!(b.restore(OptimizerState { step: 1, slots: vec![vec![0.0; 3]] }).is_err());
    }

    #[test]
    fn minimises_a_quadratic() {
        let mut adam = Adam::new(AdamConfig { lr: 0.1, ..Default::default() }, 2);
        let mut p = vec![3.0, -2.0];
        for _ in 0..500 {
            let g = vec![2.0 * p[0], 2.0 * p[1]];
            adam.step(&mut p, &g);
        }
        assert!(p.iter().all(|v| v.abs() < 1e-2), "{p:?}");
    }
}
