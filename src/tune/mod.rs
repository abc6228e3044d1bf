//! `wardrobe tune`: hyper-parameter search over a base run spec, scored on the validation split,
//! logged for TensorBoard's HParams dashboard, the best configuration saved as a run spec.

pub mod apply;
pub mod hparams_log;
pub mod output;
pub mod space;
pub mod tuner;
