//! advbn-core: Adversarial Batch Normalization (Shu et al., NeurIPS 2021) on Candle.
//!
//! A pretrained classifier is cut into a frozen encoder and a trainable tail; the tail is
//! fine-tuned on both clean features and features whose per-channel statistics were shifted
//! adversarially (see `attack`). No napi here: the Node binding lives in `advbn-node`.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod alloc_cache;
pub mod attack;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod io;
pub mod models;
pub mod nn;
pub mod ops;
pub mod options;
pub mod params;
pub mod selfcheck;
pub mod threads;
pub mod train;
pub mod visualize;

pub use error::{Error, Result};

/// The Candle version this build is pinned to.
pub const CANDLE_VERSION: &str = "0.9.2";
