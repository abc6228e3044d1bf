//! Optimisers: one step updates the flat parameter buffer from the flat gradient buffer.

pub mod adam;
pub mod schedule;

/// A parameter update rule.
pub trait Optimizer: Send {
    /// Applies one update with gradients `grads` (same layout as `params`).
    fn step(&mut self, params: &mut [f32], grads: &[f32]);
    /// Current learning rate.
    fn learning_rate(&self) -> f32;
    /// Sets the learning rate for the following steps.
    fn set_learning_rate(&mut self, lr: f32);
}
