//! advbn-node: the thin napi-rs binding of advbn-core. It converts types, runs heavy work as
//! async tasks on one compute thread, and maps errors; all logic lives in the core crate.

mod batch;
mod dataset;
mod errors;
mod executor;
mod info;
mod model;
mod trainer;
