//! CPU kernels that Candle's CPU backend lacks or runs slowly: convolution, directly with SIMD
//! kernels (stride 1, float32) or as im2col + a matrix product.

mod blocked;
pub mod cache;
pub mod channels;
pub mod conv;
pub mod direct;
pub mod filter;
pub mod gemm;
mod phases;
pub mod same;
mod scatter;
pub mod scratch;
pub mod simd;
pub mod staging;
#[cfg(test)]
mod testing;
mod winograd;
