//! Launches of the fused BatchNorm kernels (cuda/batch_norm.cu).

use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::{alloc_like, channel_grid, f32_slice, int, plane_grid, push_out, reduce, suffix, sum_chunks, wrap_output, Sizes, THREADS};
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

pub fn apply(xs: &CudaStorage, xl: &Layout, cs: &CudaStorage, cl: &Layout, options: BnOptions) -> Result<(CudaStorage, Shape)> {
    let size = Sizes::of(xl)?;
    let (n, c, hw) = (size.n, size.c, size.hw);
    let coeffs = f32_slice(cs, cl, "batch norm coefficients")?;
    let f = func!(xs, "bn_apply");
    let (c_i, hw_i, eps, relu) = (size.c_i, size.hw_i, options.eps as f32, options.relu as i32);
    let grid = plane_grid(n * c, hw)?;
    let out = wrap_output(&xs.device, xs, n * c * hw, |out| {
        with_view!(xs, xl, "batch norm input", |x| {
            let mut b = f.builder();
            b.arg(&x);
            b.arg(&coeffs);
            push_out(&mut b, out)?;
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&eps);
            b.arg(&relu);
            // SAFETY: the pushed arguments are bn_apply_<T>'s (x, coeffs, y, C, HW, eps, relu), in order, with T
            // the dtype `suffix` named, which `wrap_output` allocated y in. The grid has N * C block rows
            // and `for_each_in_plane` stops at HW, so x and y (N * C * HW elements each) are indexed in
            // range; coeffs (float32, checked by `f32_slice`) is the 4C-float [gamma, beta, mean, var]
            // that `batch_norm_fused` built, read at c < C.
            unsafe { b.launch(grid) }.w()?;
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}

/// [sum g' (C), sum g' * xhat (C)], float32.
pub fn grad_sums(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    cs: &CudaStorage,
    cl: &Layout,
    options: BnOptions,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    let (n, c) = (size.n, size.c);
    let chunks = sum_chunks(n, c);
    let coeffs = f32_slice(cs, cl, "batch norm coefficients")?;
    let f = func!(xs, "bn_backward_partials");
    let partial = alloc_like::<f32>(dev, 2 * c * chunks)?;
    let (n_i, c_i, hw_i, chunks_i) = (size.n_i, size.c_i, size.hw_i, int("chunks", chunks)?);
    let grid = channel_grid(chunks, c)?;
    let (eps, relu) = (options.eps as f32, options.relu as i32);
    with_view!(xs, xl, "batch norm input", |x| {
        with_view!(gs, gl, "batch norm gradient", |g| {
            let mut b = f.builder();
            b.arg(&x);
            b.arg(&g);
            b.arg(&coeffs);
            b.arg(&partial);
            b.arg(&n_i);
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&chunks_i);
            b.arg(&eps);
            b.arg(&relu);
            // SAFETY: the pushed arguments are bn_backward_partials_<T>'s (x, g, coeffs, partial, N, C, HW,
            // chunks, eps, relu), in order. The (chunks, C) grid is what `channel_pair_partials` expects:
            // it reads planes n < N, elements p < HW of x and g (N * C * HW elements each, g has x's shape
            // and dtype as the gradient of this op's output) and writes 2 floats per (c, chunk) inside the
            // 2 * C * chunks allocated above; coeffs is the 4C-float [gamma, beta, mean, var] that
            // `batch_norm_fused` built, read at c < C.
            unsafe { b.launch(grid) }.w()?;
        })
    });
    let sums = reduce(dev, &partial, 2 * c, chunks, 1.0)?;
    Ok((f32_storage(xs, sums), Shape::from(2 * c)))
}

/// The input gradient; `packed` = coeffs (4C) ++ sums (2C).
pub fn input_grad(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    ps: &CudaStorage,
    pl: &Layout,
    options: BnOptions,
) -> Result<(CudaStorage, Shape)> {
    let size = Sizes::of(xl)?;
    let (n, c, hw) = (size.n, size.c, size.hw);
    let packed = f32_slice(ps, pl, "batch norm coefficients")?;
    let (coeffs, sums) = (packed.slice(0..4 * c), packed.slice(4 * c..6 * c));
    let f = func!(xs, "bn_input_grad");
    let (c_i, hw_i, m_i) = (size.c_i, size.hw_i, size.m_i);
    let (eps, relu, train) = (options.eps as f32, options.relu as i32, options.train as i32);
    let grid = plane_grid(n * c, hw)?;
    let out = wrap_output(&xs.device, xs, n * c * hw, |out| {
        with_view!(xs, xl, "batch norm input", |x| {
            with_view!(gs, gl, "batch norm gradient", |g| {
                let mut b = f.builder();
                b.arg(&x);
                b.arg(&g);
                b.arg(&coeffs);
                b.arg(&sums);
                push_out(&mut b, out)?;
                b.arg(&c_i);
                b.arg(&hw_i);
                b.arg(&m_i);
                b.arg(&eps);
                b.arg(&relu);
                b.arg(&train);
                // SAFETY: the pushed arguments are bn_input_grad_<T>'s (x, g, coeffs, sums, dx, C, HW, M, eps, relu,
                // train), in order, with T the dtype `suffix` named, which `wrap_output` allocated dx in. The
                // grid has N * C block rows and `for_each_in_plane` stops at HW, so x, g and dx (N * C * HW
                // elements; g is the gradient of this op's output, x's shape and dtype) are indexed in range;
                // coeffs and sums are the [0, 4C) and [4C, 6C) views cudarc's `slice` bounds-checked.
                unsafe { b.launch(grid) }.w()?;
            })
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}
