//! wardrobe: a clothing-photo classifier for Fashion-MNIST's ten classes, with its own CPU
//! neural-network engine. The library does all the work; the `wardrobe` binary parses flags and
//! prints.

pub mod audit;
pub mod bench;
pub mod data;
pub mod error;
pub mod label;
pub mod model_dir;
pub mod onnx;
pub mod ood;
pub mod predict;
pub mod quantize;
pub mod report;
pub mod serve;
pub mod train;
pub mod tune;

pub use error::{Error, Result};
/// The engine's modules, under the names the application has always used for them.
pub use wardrobe_engine::{Error as EngineError, fsutil, nn, optim, seed};
