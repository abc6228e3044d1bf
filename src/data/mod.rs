//! Data: IDX and CSV readers/writers, the in-memory dataset, and batching.

pub mod batch;
pub mod csv;
pub mod dataset;
pub mod idx;
