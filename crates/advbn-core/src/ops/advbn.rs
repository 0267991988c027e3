//! The AdvBN op fused: channel means (one pass, BatchNorm's statistics op), the perturbation (one
//! pass), and a backward that needs two more passes, plus a third only when the input itself needs a gradient
//! (never during the attack: the encoder's features are detached).
//!
//! `params` packs [alpha (C), beta (C), mu (C)] so one op carries everything its backward needs.
//! They are float32 for every input dtype except float64 (kept exact for gradient checks).

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::batch_norm::batch_stats;
use std::mem::MaybeUninit;

use super::cpu::channels::{channel_totals, coefficients, float_slices, map_planes, sum, Elem, Real};
use super::cpu::simd::multiversion;
#[cfg(feature = "cuda")]
use super::gradient_pass::CudaArg;
use super::gradient_pass::{GradientPass, Pass, PassOutput};
use super::storage::{nchw, stats_dtype};

/// y = beta * (x - mu) + alpha * mu, then max(y, 0) if `relu`.
pub struct AdvBnApply {
    pub relu: bool,
}

/// [sum g', sum g' * x] per channel ([2C], float32); g' is g masked by the ReLU.
struct AdvBnGradSums {
    relu: bool,
}

/// dx = beta * g' + (alpha - beta) * sum(g') / M; third argument = params ++ sum(g').
struct AdvBnInputGrad {
    relu: bool,
}

/// Per channel, the perturbation as y = beta * x + offset (offset = (alpha - beta) * mu), in the
/// element's precision.
fn affine<R: Real>(p: &[f64], c: usize, ch: usize) -> (R, R) {
    let (alpha, beta, mu) = (p[ch], p[c + ch], p[2 * c + ch]);
    (R::of(beta), R::of((alpha - beta) * mu))
}

/// The gradient reaching the pre-activation: zero where the clamp at 0 applied.
#[inline(always)]
fn masked<R: Real>(g: R, pre: R, relu: bool) -> R {
    if relu && pre <= R::ZERO {
        R::ZERO
    } else {
        g
    }
}

multiversion! {
    /// out = ReLU?(beta * x + offset) over one plane.
    fn apply_plane<T: Elem>(x: &[T], out: &mut [MaybeUninit<T>], beta: T::R, offset: T::R, relu: bool) -> () {
        for (o, v) in out.iter_mut().zip(x) {
            let pre = beta * v.get() + offset;
            o.write(T::put(if relu { pre.relu() } else { pre }));
        }
    }
}

multiversion! {
    /// Sums of g' and g' * x over one plane (g' masked by the clamp).
    fn grad_sums_plane<T: Elem>(x: &[T], g: &[T], beta: T::R, offset: T::R, relu: bool) -> (f64, f64) {
        sum(x, g, |xv, gv| {
            let xv = xv.get();
            let gv = masked(gv.get(), beta * xv + offset, relu);
            (gv, gv * xv)
        })
    }
}

multiversion! {
    /// dx = beta * g' + common over one plane.
    fn input_grad_plane<T: Elem>(x: &[T], g: &[T], out: &mut [MaybeUninit<T>], beta: T::R, offset: T::R, common: T::R, relu: bool) -> () {
        for ((o, xv), gv) in out.iter_mut().zip(x).zip(g) {
            let gv = masked(gv.get(), beta * xv.get() + offset, relu);
            o.write(T::put(beta * gv + common));
        }
    }
}

fn apply_cpu<T: Elem>(x: &[T], p: &[f64], c: usize, hw: usize, relu: bool) -> CpuStorage {
    // SAFETY: `apply_plane` writes every element of each plane.
    let y = unsafe {
        map_planes(x.len(), c, hw, |q, ch, out| {
            let (beta, offset) = affine::<T::R>(p, c, ch);
            apply_plane(&x[q * hw..][..hw], out, beta, offset, relu)
        })
    };
    T::to_cpu_storage_owned(y)
}

fn grad_sums_cpu<T: Elem>(x: &[T], g: &[T], p: &[f64], c: usize, hw: usize, relu: bool) -> Vec<f64> {
    channel_totals(x.len() / hw.max(1), c, hw, |q, ch| {
        let (beta, offset) = affine::<T::R>(p, c, ch);
        grad_sums_plane(&x[q * hw..][..hw], &g[q * hw..][..hw], beta, offset, relu)
    })
}

fn input_grad_cpu<T: Elem>(x: &[T], g: &[T], k: &[f64], c: usize, hw: usize, relu: bool) -> CpuStorage {
    let m = (x.len() / c.max(1)) as f64;
    // SAFETY: `input_grad_plane` writes every element of each plane.
    let dx = unsafe {
        map_planes(x.len(), c, hw, |q, ch, out| {
            let (beta, offset) = affine::<T::R>(k, c, ch);
            let (alpha_, beta_, sum_g) = (k[ch], k[c + ch], k[3 * c + ch]);
            let common = T::R::of((alpha_ - beta_) * sum_g / m);
            input_grad_plane(&x[q * hw..][..hw], &g[q * hw..][..hw], out, beta, offset, common, relu)
        })
    };
    T::to_cpu_storage_owned(dx)
}

impl CustomOp2 for AdvBnApply {
    fn name(&self) -> &'static str {
        "advbn-apply"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ps: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        let p = coefficients("advbn-apply", ps, pl)?;
        let y = float_slices!("advbn-apply", xs, xl, |x| apply_cpu(x, &p, c, hw, self.relu));
        Ok((y, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, xs: &candle_core::CudaStorage, xl: &Layout, ps: &candle_core::CudaStorage, pl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{advbn, channels};
        channels::map(&advbn::APPLY, (xs, xl), (ps, pl), advbn::flags(self.relu))
    }

    fn bwd(&self, x: &Tensor, params: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (d_alpha, d_beta, sum_g) = self.param_grads(x, params, &grad)?;
        // mu's gradient: it is a detached input.
        let d_params = Tensor::cat(&[&d_alpha, &d_beta, &d_alpha.zeros_like()?], 0)?;
        let d_x = if x.track_op() {
            let coeffs = Tensor::cat(&[params, &sum_g], 0)?;
            Some(x.apply_op3_no_bwd(&grad, &coeffs, &Pass(AdvBnInputGrad { relu: self.relu }))?)
        } else {
            None
        };
        Ok((d_x, Some(d_params)))
    }
}

impl AdvBnApply {
    /// dL/dalpha, dL/dbeta and sum g' per channel ([C] each, the statistics dtype) from the
    /// output's contiguous gradient.
    fn param_grads(&self, x: &Tensor, params: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let c = x.dim(1)?;
        let sums = x.apply_op3_no_bwd(grad, params, &Pass(AdvBnGradSums { relu: self.relu }))?;
        let (sum_g, sum_gx) = (sums.narrow(0, 0, c)?, sums.narrow(0, c, c)?);
        let mu = params.narrow(0, 2 * c, c)?;
        // dL/dalpha = mu * sum g'; dL/dbeta = sum g' (x - mu); mu is a detached input.
        let d_alpha = (&mu * &sum_g)?;
        let d_beta = (sum_gx - (&mu * &sum_g)?)?;
        Ok((d_alpha, d_beta, sum_g))
    }
}

impl GradientPass for AdvBnGradSums {
    const NAME: &'static str = "advbn-grad-sums";

    fn cpu<T: Elem>(&self, x: &[T], g: &[T], coeffs: &[f64], c: usize, hw: usize) -> PassOutput {
        PassOutput::Sums(grad_sums_cpu(x, g, coeffs, c, hw, self.relu))
    }

    #[cfg(feature = "cuda")]
    fn cuda(&self, x: CudaArg, g: CudaArg, coeffs: CudaArg) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{advbn, channels};
        channels::pair_sums(&advbn::GRAD_SUMS, x, g, coeffs, advbn::flags(self.relu))
    }
}

/// `coeffs` = params (3C) ++ [sum g' (C)].
impl GradientPass for AdvBnInputGrad {
    const NAME: &'static str = "advbn-input-grad";

    fn cpu<T: Elem>(&self, x: &[T], g: &[T], coeffs: &[f64], c: usize, hw: usize) -> PassOutput {
        PassOutput::LikeInput(input_grad_cpu(x, g, coeffs, c, hw, self.relu))
    }

    #[cfg(feature = "cuda")]
    fn cuda(&self, x: CudaArg, g: CudaArg, coeffs: CudaArg) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{advbn, channels};
        channels::grad_map(&advbn::INPUT_GRAD, x, g, coeffs, advbn::flags(self.relu))
    }
}

/// The fused AdvBN: x [N, C, H, W] (f32, bf16, f16 or f64), alpha and beta [1, C, 1, 1].
pub fn advbn_fused(x: &Tensor, alpha: &Tensor, beta: &Tensor, relu: bool) -> Result<Tensor> {
    let x = x.contiguous()?;
    // The channel means come from BatchNorm's statistics pass (its variance is a by-product).
    let (mu, _) = batch_stats(&x)?;
    x.apply_op2(&pack(&x, alpha, beta, &mu)?, AdvBnApply { relu })
}

/// Features the attack perturbs K times, with their channel means computed once (the features
/// do not change between its steps).
pub struct AdvBnFeatures {
    x: Tensor,
    mu: Tensor,
}

impl AdvBnFeatures {
    pub fn new(x: &Tensor) -> Result<Self> {
        let x = x.detach().contiguous()?;
        let (mu, _) = batch_stats(&x)?;
        Ok(Self { x, mu })
    }

    /// [`advbn_fused`] outside Candle's graph (the attack's CPU passes, `models::backprop`): the
    /// same output, and what the gradients of alpha and beta need.
    pub fn perturb(&self, alpha: &Tensor, beta: &Tensor, relu: bool) -> Result<(Tensor, AdvBnRecord)> {
        let params = pack(&self.x, &alpha.detach(), &beta.detach(), &self.mu)?;
        let op = AdvBnApply { relu };
        let y = self.x.apply_op2_no_bwd(&params, &op)?;
        let x = self.x.clone();
        Ok((y, AdvBnRecord { op, x, params, alpha: (alpha.shape().clone(), alpha.dtype()), beta: (beta.shape().clone(), beta.dtype()) }))
    }
}

/// What [`AdvBnFeatures::perturb`] keeps: the input, the packed parameters, and alpha's and beta's
/// shapes and dtypes.
pub struct AdvBnRecord {
    op: AdvBnApply,
    x: Tensor,
    params: Tensor,
    alpha: (Shape, candle_core::DType),
    beta: (Shape, candle_core::DType),
}

impl AdvBnRecord {
    /// dL/dalpha and dL/dbeta (alpha's and beta's shapes and dtypes) from the output's
    /// gradient: the values the graph's backward of [`advbn_fused`] gives them.
    pub fn param_grads(&self, grad: &Tensor) -> Result<(Tensor, Tensor)> {
        if grad.shape() != self.x.shape() {
            candle_core::bail!("advbn: gradient {:?} and input {:?} differ in shape", grad.shape(), self.x.shape());
        }
        let (d_alpha, d_beta, _) = self.op.param_grads(&self.x, &self.params, &grad.contiguous()?)?;
        let like = |d: Tensor, (shape, dtype): &(Shape, candle_core::DType)| d.to_dtype(*dtype)?.reshape(shape);
        Ok((like(d_alpha, &self.alpha)?, like(d_beta, &self.beta)?))
    }
}

/// [alpha, beta, mu] ([3C]) in the statistics dtype of `x`.
fn pack(x: &Tensor, alpha: &Tensor, beta: &Tensor, mu: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let dtype = stats_dtype(x.dtype());
    Tensor::cat(&[&alpha.reshape(c)?.to_dtype(dtype)?, &beta.reshape(c)?.to_dtype(dtype)?, mu], 0)
}
