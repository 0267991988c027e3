//! Launches of the AdvBN kernels (cuda/advbn.cu).

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::{alloc_like, channel_grid, f32_slice, int, plane_grid, push_out, reduce, suffix, sum_chunks, wrap_output, Sizes};

pub(crate) const MODULE: &str = "advbn";

pub fn advbn_apply(xs: &CudaStorage, xl: &Layout, ps: &CudaStorage, pl: &Layout, relu: bool) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    let (n, c, hw) = (size.n, size.c, size.hw);
    let params = f32_slice(ps, pl, "advbn params")?;
    let func = dev.get_or_load_custom_func(&format!("advbn_apply_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let (c_i, hw_i, relu_i) = (size.c_i, size.hw_i, relu as i32);
    let grid = plane_grid(n * c, hw)?;
    let out = wrap_output(dev, xs, n * c * hw, |out| {
        with_view!(xs, xl, "advbn input", |x| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&params);
            push_out(&mut b, out)?;
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&relu_i);
            // SAFETY: the pushed arguments are advbn_apply_<T>'s (x, params, y, C, HW, relu), in order, with T
            // the dtype `suffix` named, which `wrap_output` allocated y in. The grid has N * C block rows
            // and `for_each_in_plane` stops at HW, so x and y (N * C * HW elements each) are indexed in
            // range; params (float32, checked by `f32_slice`) is read at [0, 3C), the 3C floats (alpha,
            // beta, mu) `advbn_fused` built.
            unsafe { b.launch(grid) }.w()?;
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}

pub fn advbn_grad_sums(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    ps: &CudaStorage,
    pl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    let (n, c) = (size.n, size.c);
    let chunks = sum_chunks(n, c);
    let params = f32_slice(ps, pl, "advbn params")?;
    let func = dev.get_or_load_custom_func(&format!("advbn_backward_partials_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let partial = alloc_like::<f32>(dev, 2 * c * chunks)?;
    let (n_i, c_i, hw_i, chunks_i, relu_i) = (size.n_i, size.c_i, size.hw_i, int("chunks", chunks)?, relu as i32);
    let grid = channel_grid(chunks, c)?;
    with_view!(xs, xl, "advbn input", |x| {
        with_view!(gs, gl, "advbn grad", |g| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&g);
            b.arg(&params);
            b.arg(&partial);
            b.arg(&n_i);
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&chunks_i);
            b.arg(&relu_i);
            // SAFETY: the pushed arguments are advbn_backward_partials_<T>'s (x, g, params, partial, N, C, HW,
            // chunks, relu), in order. The (chunks, C) grid is what `channel_pair_partials` expects: it
            // reads planes n < N, elements p < HW of x and g (N * C * HW elements each, g has x's shape and
            // dtype as the gradient of this op's output), and writes partial[(k * C + c) * chunks + chunk]
            // for k < 2, inside the 2 * C * chunks floats allocated above; params is read at [C, 3C), the
            // 3C floats (alpha, beta, mu) `advbn_fused` built.
            unsafe { b.launch(grid) }.w()?;
        })
    });
    let sums = reduce(dev, &partial, 2 * c, chunks, 1.0)?;
    Ok((CudaStorage { slice: CudaStorageSlice::F32(sums), device: dev.clone() }, Shape::from(2 * c)))
}

pub fn advbn_input_grad(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    cs: &CudaStorage,
    cl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    let (n, c, hw) = (size.n, size.c, size.hw);
    let coeffs = f32_slice(cs, cl, "advbn coefficients")?;
    let sums = coeffs.slice(3 * c..4 * c);
    let params = coeffs.slice(0..3 * c);
    let func = dev.get_or_load_custom_func(&format!("advbn_input_grad_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let (c_i, hw_i, m_i, relu_i) = (size.c_i, size.hw_i, size.m_i, relu as i32);
    let grid = plane_grid(n * c, hw)?;
    let out = wrap_output(dev, xs, n * c * hw, |out| {
        with_view!(xs, xl, "advbn input", |x| {
            with_view!(gs, gl, "advbn grad", |g| {
                let mut b = func.builder();
                b.arg(&x);
                b.arg(&g);
                b.arg(&params);
                b.arg(&sums);
                push_out(&mut b, out)?;
                b.arg(&c_i);
                b.arg(&hw_i);
                b.arg(&m_i);
                b.arg(&relu_i);
                // SAFETY: the pushed arguments are advbn_input_grad_<T>'s (x, g, params, sums, dx, C, HW, M, relu),
                // in order, with T the dtype `suffix` named, which `wrap_output` allocated dx in. The grid has
                // N * C block rows and `for_each_in_plane` stops at HW, so x, g and dx (N * C * HW elements: g
                // is the gradient of this op's output, x's shape and dtype) are indexed in range; params and
                // sums are the [0, 3C) and [3C, 4C) views cudarc's `slice` bounds-checked, read at c < C.
                unsafe { b.launch(grid) }.w()?;
            })
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}
