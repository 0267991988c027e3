//! advbn-node: the thin napi-rs binding of advbn-core. It converts types, runs heavy work as
//! async tasks on one compute thread, and maps errors; all logic lives in the core crate.

pub mod batch;
pub mod dataset;
pub mod digits;
pub mod errors;
pub mod executor;
pub mod info;
pub mod metrics;
pub mod model;
pub mod options;
pub mod sources;
pub mod trainer;
pub mod visualize;
