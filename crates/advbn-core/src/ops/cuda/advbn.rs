//! Launches of the AdvBN kernels (cuda/advbn.cu), through the launchers it shares with BatchNorm.

use candle_core::{CudaStorage, Layout, Result, Shape};

use super::channels::{self, Flags, Kernel};
use super::f32_slice;

pub(crate) const MODULE: &str = "advbn";

/// AdvBN's kernels read params = [alpha (C), beta (C), mu (C)]; the input gradient also sums = [S1 (C)].
const fn kernel(name: &'static str, what: &'static str, sums: usize) -> Kernel {
    Kernel { module: MODULE, ptx: advbn_kernels::ADVBN, name, what, coeffs: 3, sums }
}

const APPLY: Kernel = kernel("advbn_apply", "advbn", 0);
const GRAD_SUMS: Kernel = kernel("advbn_backward_partials", "advbn gradient sums", 0);
const INPUT_GRAD: Kernel = kernel("advbn_input_grad", "advbn input gradient", 1);

/// AdvBN has no eps and no train mode: its kernels ignore both.
fn flags(relu: bool) -> Flags {
    Flags { eps: 0.0, relu, train: false }
}

pub fn advbn_apply(xs: &CudaStorage, xl: &Layout, ps: &CudaStorage, pl: &Layout, relu: bool) -> Result<(CudaStorage, Shape)> {
    channels::map(&APPLY, xs, xl, f32_slice(ps, pl, "advbn params")?, flags(relu))
}

/// [sum g' (C), sum g' * x (C)], float32.
pub fn advbn_grad_sums(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    ps: &CudaStorage,
    pl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    channels::pair_sums(&GRAD_SUMS, xs, xl, gs, gl, f32_slice(ps, pl, "advbn params")?, flags(relu))
}

/// The input gradient; `cs` = params (3C) ++ [S1 (C)].
pub fn advbn_input_grad(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    cs: &CudaStorage,
    cl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    channels::grad_map(&INPUT_GRAD, xs, xl, gs, gl, f32_slice(cs, cl, "advbn coefficients")?, flags(relu))
}
