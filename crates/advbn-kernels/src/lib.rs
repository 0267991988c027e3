//! PTX of advbn's CUDA kernels (see `cuda/`), embedded for Candle's custom-op loader.
//! Empty unless the `cuda` feature is on (the PTX needs nvcc at build time).
#![cfg(feature = "cuda")]

/// AdvBN: per-channel sums, the perturbation, and its backward.
pub const ADVBN: &str = include_str!(concat!(env!("OUT_DIR"), "/advbn.ptx"));

/// Max-pooling forward and its deterministic (gather) backward.
pub const MAX_POOL: &str = include_str!(concat!(env!("OUT_DIR"), "/max_pool.ptx"));

/// BatchNorm2d (+ ReLU) fused: statistics, normalisation, and its backward.
pub const BATCH_NORM: &str = include_str!(concat!(env!("OUT_DIR"), "/batch_norm.ptx"));

/// Fused optimiser updates (SGD momentum / Nesterov, AdamW), in place.
pub const OPTIM: &str = include_str!(concat!(env!("OUT_DIR"), "/optim.ptx"));

/// ptxas's resource report (registers, spills) for every kernel, for bench/NOTES.md.
pub const PTXAS_REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/ptxas-report.txt"));
