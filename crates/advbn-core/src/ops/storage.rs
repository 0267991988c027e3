//! Reading and writing CPU storage generically over the float dtypes the ops support.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, WithDType};

/// A contiguous view of `storage` as f64 values (ops accumulate in f64 on the CPU).
pub fn to_f64(storage: &CpuStorage, layout: &Layout, what: &str) -> Result<Vec<f64>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{what} must be contiguous");
    };
    fn conv<T: WithDType>(v: &[T]) -> Vec<f64> {
        v.iter().map(|x| x.to_f64()).collect()
    }
    Ok(match storage {
        CpuStorage::F32(v) => conv(&v[start..end]),
        CpuStorage::F64(v) => conv(&v[start..end]),
        CpuStorage::BF16(v) => conv(&v[start..end]),
        CpuStorage::F16(v) => conv(&v[start..end]),
        other => candle_core::bail!("{what}: unsupported dtype {:?}", other.dtype()),
    })
}

/// Storage of the same float dtype as `like`, holding `values`.
pub fn from_f64(values: Vec<f64>, like: &CpuStorage) -> Result<CpuStorage> {
    fn conv<T: WithDType>(v: Vec<f64>) -> Vec<T> {
        v.into_iter().map(T::from_f64).collect()
    }
    Ok(match like {
        CpuStorage::F32(_) => CpuStorage::F32(conv(values)),
        CpuStorage::F64(_) => CpuStorage::F64(conv(values)),
        CpuStorage::BF16(_) => CpuStorage::BF16(conv(values)),
        CpuStorage::F16(_) => CpuStorage::F16(conv(values)),
        other => candle_core::bail!("unsupported dtype {:?}", other.dtype()),
    })
}

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
