//! Launches of the fused BatchNorm kernels (cuda/batch_norm.cu): the statistics here, the rest
//! through the launchers it shares with AdvBN.

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::channels::{Flags, Kernel};
use super::{alloc_like, channel_grid, int, suffix, sum_chunks, Sizes, THREADS};
use crate::ops::batch_norm::BnOptions;

const MODULE: &str = "batch_norm";

/// Loads kernel `$name` for the dtype of `$storage` (Candle does not export its function type).
macro_rules! func {
    ($storage:expr, $name:literal) => {
        $storage.device.get_or_load_custom_func(&format!(concat!($name, "_{}"), suffix($storage)?), MODULE, advbn_kernels::BATCH_NORM)?
    };
}

fn f32_storage(storage: &CudaStorage, slice: candle_core::cuda_backend::cudarc::driver::CudaSlice<f32>) -> CudaStorage {
    CudaStorage { slice: CudaStorageSlice::F32(slice), device: storage.device.clone() }
}

/// [mean (C), biased var (C)], float32.
pub fn stats(xs: &CudaStorage, xl: &Layout) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    let (n, c) = (size.n, size.c);
    let chunks = sum_chunks(n, c);
    let partial = alloc_like::<f32>(dev, 2 * c * chunks)?;
    let stats = alloc_like::<f32>(dev, 2 * c)?;
    let (n_i, c_i, hw_i, chunks_i, m_i) = (size.n_i, size.c_i, size.hw_i, int("chunks", chunks)?, size.m_i);
    let grid = channel_grid(chunks, c)?;
    let (partials_fn, finalize_fn) = (func!(xs, "bn_stats_partials"), func!(xs, "bn_stats_finalize"));
    with_view!(xs, xl, "batch norm input", |x| {
        let mut b = partials_fn.builder();
        b.arg(&x);
        b.arg(&partial);
        b.arg(&n_i);
        b.arg(&c_i);
        b.arg(&hw_i);
        b.arg(&chunks_i);
        // SAFETY: the pushed arguments are bn_stats_partials_<T>'s (x, partial, N, C, HW, chunks), in order,
        // T being x's dtype. The (chunks, C) grid is what `channel_pair_partials` expects: it reads
        // planes n < N, elements p < HW of x (N * C * HW elements) plus the sample x[c * HW] (N, HW >= 1
        // as for the finalize below), and writes 2 floats per (c, chunk) inside the 2 * C * chunks
        // floats allocated above.
        unsafe { b.launch(grid) }.w()?;
        let mut b = finalize_fn.builder();
        b.arg(&x);
        b.arg(&partial);
        b.arg(&stats);
        b.arg(&c_i);
        b.arg(&hw_i);
        b.arg(&chunks_i);
        b.arg(&m_i);
        // C fits an int (`Sizes`), so its block count fits the grid's x dimension.
        let cfg = LaunchConfig { grid_dim: ((c_i as u32).div_ceil(THREADS), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: the pushed arguments are bn_stats_finalize_<T>'s (x, partial, stats, C, HW, chunks, M), in
        // order. Threads with c >= C return at once; the others read partial below 2 * C * chunks (the
        // allocation above, filled by the launch before on the same stream), write stats[c] and
        // stats[C + c] inside its 2C floats, and read the sample x[c * HW], in range because callers pass
        // N, HW >= 1 (the model checks N >= 1 and H, W >= 8; an empty x is not checked here).
        unsafe { b.launch(cfg) }.w()?;
    });
    Ok((f32_storage(xs, stats), Shape::from(2 * c)))
}

/// BatchNorm's kernels read coeffs = [gamma, beta, mean, var] (4C); the input gradient also
/// sums = [sum g', sum g' * xhat] (2C).
const fn kernel(name: &'static str, what: &'static str, sums: usize) -> Kernel {
    Kernel { module: MODULE, ptx: advbn_kernels::BATCH_NORM, name, what, coeffs: 4, sums }
}

pub(crate) const APPLY: Kernel = kernel("bn_apply", "batch norm", 0);
/// [sum g' (C), sum g' * xhat (C)], float32.
pub(crate) const GRAD_SUMS: Kernel = kernel("bn_backward_partials", "batch norm gradient sums", 0);
/// The input gradient from coeffs (4C) ++ sums (2C).
pub(crate) const INPUT_GRAD: Kernel = kernel("bn_input_grad", "batch norm input gradient", 2);

pub(crate) fn flags(options: BnOptions) -> Flags {
    Flags { eps: options.eps as f32, relu: options.relu, train: options.train }
}
