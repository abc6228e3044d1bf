//! Optimisers: one step updates the flat parameter buffer from the flat gradient buffer.

pub mod adam;
pub mod config;
pub mod lookahead;
pub mod schedule;
pub mod sgd;

use serde::{Deserialize, Serialize};

/// An optimiser's internal state, for checkpoints: its step count and per-parameter slots.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: i32,
    /// Per-parameter buffers (e.g. Adam's first and second moments).
    #[serde(skip)]
    pub slots: Vec<Vec<f32>>,
}

/// A parameter update rule.
pub trait Optimizer: Send {
    /// Applies one update with gradients `grads` (same layout as `params`).
    fn step(&mut self, params: &mut [f32], grads: &[f32]);
    /// Current learning rate.
    fn learning_rate(&self) -> f32;
    /// Sets the learning rate for the following steps.
    fn set_learning_rate(&mut self, lr: f32);
    /// A copy of the internal state.
    fn state(&self) -> OptimizerState;
    /// Replaces the internal state with a saved one (same slot count and lengths).
    fn restore(&mut self, state: OptimizerState) -> crate::Result<()>;
}
