//! Fused operations as Candle custom ops: a CPU implementation (the portable path, and the
//! reference the GPU is tested against) and, with the `cuda` feature, our CUDA kernels.

pub mod advbn;
pub mod batch_norm;
pub mod conv;
pub mod conv_affine;
pub mod conv_bn;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
pub mod gradient;
mod gradient_pass;
pub mod max_pool;
pub mod optim;
mod storage;
