//! Benchmarks: the engine on this machine (`wardrobe bench`), a load generator against a running
//! server (`wardrobe bench --serve`), and the machine's own steadiness to read them against.

pub mod engine;
pub mod jitter;
pub mod load;
pub mod proc;
