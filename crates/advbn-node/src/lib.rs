//! advbn-node: the thin napi-rs binding of advbn-core. It converts types, runs heavy work as
//! async tasks on one compute thread, and maps errors; all logic lives in the core crate.

/// Freed large blocks are kept for the next tensor of their size (`advbn_core::alloc_cache`):
/// a training step allocates the same tensors every step.
#[global_allocator]
static GLOBAL: advbn_core::alloc_cache::Allocator = advbn_core::alloc_cache::Allocator;

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
