//! Training: the loop, and the metrics it reports.

pub mod calibration;
pub mod checkpoint;
pub mod history;
pub mod metrics;
pub mod progress;
pub mod run_spec;
pub mod session;
pub mod tb_proto;
pub mod tensorboard;
pub mod trainer;
