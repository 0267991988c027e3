//! CPU kernels that Candle's CPU backend lacks or runs slowly: convolution as im2col + a
//! multithreaded matrix product.

pub mod conv;
pub mod gemm;
