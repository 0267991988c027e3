//! The AdvBN kernels (cuda/advbn.cu), launched by the launchers they share with BatchNorm
//! (`channels`).

use super::channels::{Flags, Kernel};

pub(crate) const MODULE: &str = "advbn";

/// AdvBN's kernels read params = [alpha (C), beta (C), mu (C)]; the input gradient also sums = [S1 (C)].
const fn kernel(name: &'static str, what: &'static str, sums: usize) -> Kernel {
    Kernel { module: MODULE, ptx: advbn_kernels::ADVBN, name, what, coeffs: 3, sums }
}

pub(crate) const APPLY: Kernel = kernel("advbn_apply", "advbn", 0);
/// [sum g' (C), sum g' * x (C)], float32.
pub(crate) const GRAD_SUMS: Kernel = kernel("advbn_backward_partials", "advbn gradient sums", 0);
/// The input gradient from params (3C) ++ [S1 (C)].
pub(crate) const INPUT_GRAD: Kernel = kernel("advbn_input_grad", "advbn input gradient", 1);

/// AdvBN has no eps and no train mode: its kernels ignore both.
pub(crate) fn flags(relu: bool) -> Flags {
    Flags { eps: 0.0, relu, train: false }
}
