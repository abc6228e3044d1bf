//! The CPU neural-network engine: NHWC f32 tensors, layers with explicit forward and backward,
//! a sequential model with flat parameter storage, and its serialisation.

pub mod activation;
pub mod argmax_pool;
pub mod batchnorm;
pub mod conv2d;
pub mod conv_pool;
pub mod dense;
pub mod direct_conv;
pub mod dropout;
pub mod flatten;
pub mod global_pool;
#[cfg(test)]
pub mod gradcheck;
pub mod implicit_conv;
pub mod infer;
pub mod init;
pub mod layer;
pub mod loss;
pub mod matmul;
pub mod model;
pub mod pool;
pub mod pooled_training;
pub mod spec;
pub mod store;
pub mod tensorfile;
pub mod vector;
pub mod winograd;
pub mod winograd_gradient;
