//! Training: the loop, and the metrics it reports.

pub mod metrics;
pub mod trainer;
