//! The CPU neural-network engine: NHWC f32 tensors, layers with explicit forward and backward,
//! a sequential model with flat parameter storage, and its serialisation.

pub mod activation;
pub mod batchnorm;
pub mod conv;
pub mod conv2d;
pub mod dense;
pub mod dropout;
pub mod flatten;
pub mod global_pool;
#[cfg(test)]
pub mod gradcheck;
pub mod infer;
pub mod init;
pub mod int8;
pub mod layer;
pub mod loss;
pub mod matmul;
pub mod model;
pub mod plan;
pub mod pool;
pub mod spec;
pub mod tensorfile;
pub mod vector;
