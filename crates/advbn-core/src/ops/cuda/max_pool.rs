//! Launches of the max-pool kernels (cuda/max_pool.cu).

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result};

use super::{plane_grid, push_out, suffix, wrap_output};
use crate::ops::max_pool::PoolGeometry;

pub(crate) const MODULE: &str = "max_pool";

/// The kernels' int arguments: H, W, OH, OW, k, s, p (planes index the grid, in-plane offsets are int).
fn int_args(g: &PoolGeometry) -> Result<[i32; 7]> {
    if g.planes() == 0 || g.planes() > i32::MAX as usize {
        candle_core::bail!("max_pool2d on CUDA: {} planes (N * C) is out of range", g.planes());
    }
    let fits = |v: usize| i32::try_from(v).ok();
    let args = [g.h, g.w, g.oh, g.ow, g.kernel, g.stride, g.padding].map(fits);
    match (args, g.h.checked_mul(g.w).and_then(fits)) {
        ([Some(h), Some(w), Some(oh), Some(ow), Some(k), Some(s), Some(p)], Some(_)) => Ok([h, w, oh, ow, k, s, p]),
        _ => candle_core::bail!("max_pool2d on CUDA: a {}x{} plane is too large for the kernels", g.h, g.w),
    }
}

/// y [N, C, OH, OW] from contiguous x [N, C, H, W] (float32 or bfloat16).
pub fn forward(xs: &CudaStorage, xl: &Layout, g: &PoolGeometry) -> Result<CudaStorage> {
    let dev = &xs.device;
    let args = int_args(g)?;
    let func = dev.get_or_load_custom_func(&format!("max_pool2d_forward_{}", suffix(xs)?), MODULE, advbn_kernels::MAX_POOL)?;
    let grid = plane_grid(g.planes(), g.oh * g.ow)?;
    wrap_output(dev, xs, g.planes() * g.oh * g.ow, |out| {
        with_view!(xs, xl, "max_pool2d input", |x| {
            let mut b = func.builder();
            b.arg(&x);
            push_out(&mut b, out)?;
            for a in &args {
                b.arg(a);
            }
            // SAFETY: the pushed arguments are max_pool2d_forward_<T>'s (x, y, H, W, OH, OW, k, s, p), in order,
            // with T x's dtype, which `wrap_output` allocated y in (N * C * OH * OW elements). `int_args`
            // checked every size fits an int; the grid has N * C block rows and each thread stops at
            // OH * OW within its plane; `window_argmax` clips every window to the H x W plane, and
            // `MaxPool2d::geometry` (padding <= k / 2, H, W >= 1) leaves each window one element at least.
            unsafe { b.launch(grid) }.w()?;
        });
        Ok(())
    })
}

/// dx [N, C, H, W] from x and the output gradient [N, C, OH, OW] (both contiguous, same dtype).
pub fn backward(xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout, g: &PoolGeometry) -> Result<CudaStorage> {
    let dev = &xs.device;
    let args = int_args(g)?;
    if suffix(xs)? != suffix(gs)? {
        candle_core::bail!("max_pool2d backward: input and gradient must share a dtype");
    }
    let func = dev.get_or_load_custom_func(&format!("max_pool2d_backward_{}", suffix(xs)?), MODULE, advbn_kernels::MAX_POOL)?;
    let grid = plane_grid(g.planes(), g.h * g.w)?;
    wrap_output(dev, xs, g.planes() * g.h * g.w, |out| {
        with_view!(xs, xl, "max_pool2d input", |x| {
            with_view!(gs, gl, "max_pool2d gradient", |grad| {
                let mut b = func.builder();
                b.arg(&x);
                b.arg(&grad);
                push_out(&mut b, out)?;
                for a in &args {
                    b.arg(a);
                }
                // SAFETY: the pushed arguments are max_pool2d_backward_<T>'s (x, g, dx, H, W, OH, OW, k, s, p), in
                // order, with x and g of one dtype (checked above) and dx allocated in it by `wrap_output`.
                // `int_args` checked every size fits an int and N * C >= 1; the grid has N * C block rows,
                // each thread stops at H * W within its plane of x and dx, and reads g only at outputs
                // oh < OH, ow < OW of its plane (g has N * C * OH * OW elements: it is this op's output's grad).
                unsafe { b.launch(grid) }.w()?;
            })
        });
        Ok(())
    })
}
