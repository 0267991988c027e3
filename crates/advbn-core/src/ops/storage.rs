//! Dtype and storage of the ops' per-channel statistics, and NCHW dimensions.

use candle_core::{CpuStorage, DType, Layout, Result};

/// Dtype of per-channel statistics and sums for inputs of dtype `x`: f64 for f64 (exact gradient
/// checks), else f32.
pub fn stats_dtype(x: DType) -> DType {
    if x == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// CPU storage of `stats_dtype` for inputs stored like `like`.
pub fn stats_storage(values: Vec<f64>, like: &CpuStorage) -> CpuStorage {
    match like {
        CpuStorage::F64(_) => CpuStorage::F64(values),
        _ => CpuStorage::F32(values.into_iter().map(|v| v as f32).collect()),
    }
}

/// (N, C, HW) of a 4-d layout.
pub fn nchw(layout: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    Ok((n, c, h * w))
}
