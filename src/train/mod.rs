//! Training: the loop, and the metrics it reports.

pub mod calibration;
pub mod checkpoint;
pub mod config;
pub mod history;
pub mod metrics;
pub mod progress;
pub mod replicas;
pub mod run_spec;
pub mod session;
pub mod state;
pub mod trainer;
