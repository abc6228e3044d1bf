//! Stochastic gradient descent with optional momentum and Nesterov momentum, in Keras' form:
//! `v = μ·v − lr·g`, then `p += v` (classic) or `p += μ·v − lr·g` (Nesterov).

use crate::optim::{Optimizer, OptimizerState};

/// SGD state.
pub struct Sgd {
    lr: f32,
    momentum: f32,
    nesterov: bool,
    velocity: Vec<f32>,
    t: i32,
}

impl Sgd {
    /// Fresh state for `len` parameters.
    pub fn new(lr: f32, momentum: f32, nesterov: bool, len: usize) -> Sgd {
        Sgd { lr, momentum, nesterov, velocity: vec![0.0; len], t: 0 }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        self.t += 1;
        let (lr, mu) = (self.lr, self.momentum);
        for ((p, &g), v) in params.iter_mut().zip(grads).zip(&mut self.velocity) {
            *v = mu * *v - lr * g;
            *p += if self.nesterov { mu * *v - lr * g } else { *v };
        }
    }

    fn learning_rate(&self) -> f32 {
        self.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn state(&self) -> OptimizerState {
        OptimizerState { step: self.t, slots: vec![self.velocity.clone()] }
    }

    fn restore(&mut self, state: OptimizerState) -> crate::Result<()> {
        match <[Vec<f32>; 1]>::try_from(state.slots) {
            Ok([v]) if v.len() == self.velocity.len() => {
                (self.velocity, self.t) = (v, state.step);
                Ok(())
            }
            _ => Err(crate::Error::State(format!("SGD state must be one slot of {} values", self.velocity.len()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sgd_is_p_minus_lr_g() {
        let mut sgd = Sgd::new(0.1, 0.0, false, 2);
        let mut p = vec![1.0, -1.0];
        sgd.step(&mut p, &[2.0, -4.0]);
        assert_eq!(p, vec![0.8, -0.6]);
    }

    #[test]
    fn momentum_and_nesterov_by_hand() {
        let mut m = Sgd::new(0.1, 0.9, false, 1);
        let mut p = vec![0.0];
        m.step(&mut p, &[1.0]); // v = -0.1, p = -0.1
        m.step(&mut p, &[1.0]); // v = -0.19, p = -0.29
        assert!((p[0] + 0.29).abs() < 1e-6);
        let mut n = Sgd::new(0.1, 0.9, true, 1);
        let mut q = vec![0.0];
        n.step(&mut q, &[1.0]); // v = -0.1, p = 0.9·(−0.1) − 0.1 = −0.19
        assert!((q[0] + 0.19).abs() < 1e-6);
        // A fresh optimiser given the saved velocity continues exactly where `n` would.
        let mut r = Sgd::new(0.1, 0.9, true, 1);
        r.restore(n.state()).unwrap();
        let (mut from_n, mut from_r) = (q.clone(), q.clone());
        n.step(&mut from_n, &[0.5]);
        r.step(&mut from_r, &[0.5]);
        assert_eq!(from_n, from_r);
        // Without the velocity (a fresh optimiser), the same step lands elsewhere.
        let mut fresh = Sgd::new(0.1, 0.9, true, 1);
        let mut from_fresh = q.clone();
        fresh.step(&mut from_fresh, &[0.5]);
        assert_ne!(from_fresh, from_r);
        assert!(r.restore(OptimizerState { step: 0, slots: vec![] }).is_err());
    }
}
