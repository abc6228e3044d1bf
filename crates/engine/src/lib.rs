//! The CPU neural-network engine under wardrobe: NHWC f32 tensors, layers with explicit forward and
//! backward over caller-provided buffers, convolution algorithms chosen by one ordered list per
//! pass, a sequential model with flat parameter storage, optimisers, and the safetensors file
//! format. It knows nothing of where its images come from or where its answers go.

pub mod error;
pub mod fsutil;
pub mod nn;
pub mod optim;
pub mod seed;

pub use error::{Error, Result};
