//! Data: IDX and CSV readers/writers, the in-memory dataset, and batching.

pub mod augment;
pub mod batch;
pub mod budget;
pub mod convert;
pub mod csv;
pub mod dataset;
pub mod decode;
pub mod idx;
pub mod import;
pub mod labels;
pub mod photo;
pub mod source;
