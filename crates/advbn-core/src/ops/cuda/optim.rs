//! Launches of the fused optimiser kernels (cuda/optim.cu): in place on the first argument.

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaViewMut, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result};

use super::{contiguous, THREADS};
use crate::ops::optim::{AdamWMoments, AdamWParam, SgdMomentum, SgdParam};

pub(crate) const MODULE: &str = "optim";

const UNSUPPORTED: &str = "the fused optimizer updates on CUDA support float32 and bfloat16 parameters (state and gradient of the same dtype)";

/// Hyperparameters of every optimiser kernel (the C struct `OptimHyper` in cuda/optim.cu).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct OptimHyper {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    decay: f32,
    inv_bc1: f32,
    inv_bc2: f32,
    mode: i32,
    first: i32,
}

// SAFETY: `#[repr(C)]` with eleven f32 then two i32 fields, the order and types of the C struct
// `OptimHyper` in cuda/optim.cu, so no padding and no pointers: any bit pattern is valid and the
// kernels receive exactly the bytes of this value.
unsafe impl DeviceRepr for OptimHyper {}

fn contiguous_mut<'a, T>(slice: &'a mut CudaSlice<T>, layout: &Layout, what: &str) -> Result<CudaViewMut<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice_mut(start..end)),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// Enough 256-thread blocks for one 16-byte pack per thread, capped (the loops grid-stride).
fn grid(n: usize, pack: usize) -> LaunchConfig {
    let blocks = n.div_ceil(pack).div_ceil(THREADS as usize).clamp(1, 2048) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

/// Launches `kernel_<dtype>(x, a, b, n, h)`; `a` and `b` are element ranges of the read inputs.
fn launch(
    kernel: &str,
    x: &mut CudaStorage,
    xl: &Layout,
    a: (&CudaStorage, &Layout, std::ops::Range<usize>),
    b: (&CudaStorage, &Layout, std::ops::Range<usize>),
    n: usize,
    h: OptimHyper,
) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let dtype = match &x.slice {
        CudaStorageSlice::F32(_) => "f32",
        CudaStorageSlice::BF16(_) => "bf16",
        _ => candle_core::bail!("{kernel}: {UNSUPPORTED}"),
    };
    let dev = x.device.clone();
    let func = dev.get_or_load_custom_func(&format!("{kernel}_{dtype}"), MODULE, advbn_kernels::OPTIM)?;
    let n_u64 = n as u64;
    let what = "optimizer update";
    macro_rules! go {
        ($ty:ty, $xs:expr, $as_:expr, $bs:expr) => {{
            let (av, bv) = (contiguous($as_, a.1, what)?, contiguous($bs, b.1, what)?);
            let (av, bv) = (av.slice(a.2), bv.slice(b.2));
            let mut xv = contiguous_mut($xs, xl, what)?;
            let mut builder = func.builder();
            builder.arg(&mut xv);
            builder.arg(&av);
            builder.arg(&bv);
            builder.arg(&n_u64);
            builder.arg(&h);
            // SAFETY: the pushed arguments are `<kernel>_<T>`'s (T* x, const T* a, const T* b,
            // size_t n, OptimHyper h), in order, and the match below only reaches here when x, a
            // and b all hold T. The kernels grid-stride over i < n and touch x[i], a[i], b[i]
            // (adamw_moments x[i] and x[n + i], its packed m and v); each caller checked with
            // `same_len` that x holds n (2n) elements, and a.2, b.2 are n-element ranges that
            // cudarc's `slice` bounds-checks.
            unsafe { builder.launch(grid(n, 16 / std::mem::size_of::<$ty>())) }.w()?;
        }};
    }
    match (&mut x.slice, &a.0.slice, &b.0.slice) {
        (CudaStorageSlice::F32(xs), CudaStorageSlice::F32(as_), CudaStorageSlice::F32(bs)) => go!(f32, xs, as_, bs),
        (CudaStorageSlice::BF16(xs), CudaStorageSlice::BF16(as_), CudaStorageSlice::BF16(bs)) => go!(half::bf16, xs, as_, bs),
        _ => candle_core::bail!("{kernel}: {UNSUPPORTED}"),
    }
    Ok(())
}

fn same_len(name: &str, x: usize, inputs: &[usize]) -> Result<()> {
    if inputs.iter().any(|&n| n != x) {
        candle_core::bail!("{name}: element counts differ ({x} vs {inputs:?})");
    }
    Ok(())
}

pub fn sgd_momentum(op: &SgdMomentum, buf: &mut CudaStorage, bl: &Layout, g: &CudaStorage, gl: &Layout, p: &CudaStorage, pl: &Layout) -> Result<()> {
    let n = bl.shape().elem_count();
    same_len("sgd-momentum", n, &[gl.shape().elem_count(), pl.shape().elem_count()])?;
    let h = OptimHyper {
        momentum: op.momentum as f32,
        weight_decay: if op.weight_decay > 0.0 { op.weight_decay as f32 } else { 0.0 },
        first: op.first as i32,
        ..Default::default()
    };
    launch("sgd_momentum", buf, bl, (g, gl, 0..n), (p, pl, 0..n), n, h)
}

/// `buf` is `g` again when the update has no momentum (the kernel does not read it then).
pub fn sgd_param(op: &SgdParam, p: &mut CudaStorage, pl: &Layout, g: &CudaStorage, gl: &Layout, buf: &CudaStorage, bl: &Layout) -> Result<()> {
    let n = pl.shape().elem_count();
    same_len("sgd-param", n, &[gl.shape().elem_count(), bl.shape().elem_count()])?;
    let mode = match (op.momentum > 0.0, op.nesterov) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    };
    let h = OptimHyper {
        lr: op.lr as f32,
        weight_decay: if op.weight_decay > 0.0 { op.weight_decay as f32 } else { 0.0 },
        momentum: op.momentum as f32,
        mode,
        ..Default::default()
    };
    launch("sgd_param", p, pl, (g, gl, 0..n), (buf, bl, 0..n), n, h)
}

pub fn adamw_moments(op: &AdamWMoments, mv: &mut CudaStorage, ml: &Layout, g: &CudaStorage, gl: &Layout) -> Result<()> {
    let n = gl.shape().elem_count();
    same_len("adamw-moments", ml.shape().elem_count(), &[2 * n])?;
    let h = OptimHyper {
        beta1: op.beta1 as f32,
        beta2: op.beta2 as f32,
        one_minus_beta1: (1.0 - op.beta1) as f32,
        one_minus_beta2: (1.0 - op.beta2) as f32,
        first: op.first as i32,
        ..Default::default()
    };
    launch("adamw_moments", mv, ml, (g, gl, 0..n), (g, gl, 0..n), n, h)
}

pub fn adamw_param(op: &AdamWParam, p: &mut CudaStorage, pl: &Layout, mv: &CudaStorage, ml: &Layout) -> Result<()> {
    let n = pl.shape().elem_count();
    same_len("adamw-param", 2 * n, &[ml.shape().elem_count()])?;
    let h = OptimHyper {
        lr: op.lr as f32,
        eps: op.eps as f32,
        decay: (1.0 - op.lr * op.weight_decay) as f32,
        inv_bc1: (1.0 / op.bias_correction1) as f32,
        inv_bc2: (1.0 / op.bias_correction2) as f32,
        ..Default::default()
    };
    launch("adamw_param", p, pl, (mv, ml, 0..n), (mv, ml, n..2 * n), n, h)
}
