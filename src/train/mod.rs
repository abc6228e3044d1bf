//! Training: the loop, and the metrics it reports.

pub mod metrics;
pub mod progress;
pub mod trainer;
