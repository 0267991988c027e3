//! BatchNorm2d fused (optionally with the ReLU after it): batch statistics in one pass, the
//! normalisation in one pass, and a backward of one pass for the gradients of gamma and beta
//! plus one for the input, each skipped when nothing needs it. Candle's composite BN is ~10
//! kernels and temporaries per call.
//!
//! `coeffs` packs [gamma (C), beta (C), mean (C), var (C)] so one op carries everything its
//! backward needs. The statistics are detached inputs: the input gradient accounts for them
//! itself in training mode. float32 for every input dtype except float64.
//!
//! On the CPU the passes run on the shared per-channel helpers (`ops::cpu::channels`): in the
//! element's precision, multithreaded. There, the residual block's ending, ReLU(BN(x) + r), is one
//! op as well (`batch_norm_add_relu`); on CUDA it is the BN op, an add and a ReLU.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use std::mem::MaybeUninit;

use super::cpu::channels::{channel_totals, coefficients, float_slices, map_planes, sum, Elem, Real};
use super::cpu::simd::multiversion;
use super::gradient::relu_grad;
#[cfg(feature = "cuda")]
use super::gradient_pass::CudaArg;
use super::gradient_pass::{GradientPass, Pass, PassOutput};
use super::storage::{nchw, stats_dtype, stats_storage};

/// Per-channel [mean (C), biased variance (C)] over (N, H, W); no gradient.
pub(crate) struct BnStats;

/// What the fused BatchNorm computes besides the affine map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BnOptions {
    pub eps: f64,
    /// Apply max(y, 0) in the same pass (BN followed by ReLU).
    pub relu: bool,
    /// The statistics are x's own batch statistics, so the input gradient includes their
    /// dependence on x (training-mode BN); otherwise they are constants (eval-mode BN).
    pub train: bool,
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta, then max(y, 0) if `relu`.
pub(crate) struct BnApply(pub BnOptions);

/// [sum g', sum g' * xhat] per channel ([2C]).
pub(crate) struct BnGradSums(pub BnOptions);

/// The input gradient; third argument = coeffs ++ [sum g', sum g' * xhat] (zeros in eval).
pub(crate) struct BnInputGrad(pub BnOptions);

/// Per-channel scale and shift of the affine map before the ReLU, plus the statistics.
#[derive(Clone, Copy)]
struct Channel {
    scale: f64,
    shift: f64,
    mean: f64,
    inv_std: f64,
}

fn channels(coeffs: &[f64], c: usize, eps: f64) -> Vec<Channel> {
    (0..c)
        .map(|ch| {
            let (gamma, beta, mean, var) = (coeffs[ch], coeffs[c + ch], coeffs[2 * c + ch], coeffs[3 * c + ch]);
            let inv_std = 1.0 / (var + eps).sqrt();
            let scale = gamma * inv_std;
            Channel { scale, shift: beta - mean * scale, mean, inv_std }
        })
        .collect()
}

/// The gradient reaching the pre-activation: zero where the ReLU clamped (PyTorch's convention).
#[inline(always)]
fn masked<R: Real>(g: R, pre: R, relu: bool) -> R {
    if relu && pre <= R::ZERO {
        R::ZERO
    } else {
        g
    }
}

/// max(v, 0) when `relu` (NaN gives 0, as f64::max did).
#[inline(always)]
fn relu_of<R: Real>(v: R, relu: bool) -> R {
    if relu {
        v.relu()
    } else {
        v
    }
}

multiversion! {
    /// Sums of (x - s) and (x - s)^2 over one plane.
    fn stats_plane<T: Elem>(p: &[T], s: T::R) -> (f64, f64) {
        sum(p, p, |v, _| {
            let d = v.get() - s;
            (d, d * d)
        })
    }
}

multiversion! {
    /// out = ReLU?(x * scale + shift (+ r)) over one plane.
    fn apply_plane<T: Elem>(x: &[T], residual: Option<&[T]>, out: &mut [MaybeUninit<T>], scale: T::R, shift: T::R, relu: bool) -> () {
        match residual {
            Some(r) => {
                for ((o, v), res) in out.iter_mut().zip(x).zip(r) {
                    o.write(T::put(relu_of(v.get() * scale + shift + res.get(), relu)));
                }
            }
            None => {
                for (o, v) in out.iter_mut().zip(x) {
                    o.write(T::put(relu_of(v.get() * scale + shift, relu)));
                }
            }
        }
    }
}

multiversion! {
    /// Sums of g' and g' * xhat over one plane (g' masked by the ReLU).
    fn grad_sums_plane<T: Elem>(x: &[T], g: &[T], k: Channel, relu: bool) -> (f64, f64) {
        let (scale, shift, mean, inv_std) = (T::R::of(k.scale), T::R::of(k.shift), T::R::of(k.mean), T::R::of(k.inv_std));
        sum(x, g, |xv, gv| {
            let xv = xv.get();
            let gv = masked(gv.get(), xv * scale + shift, relu);
            (gv, gv * ((xv - mean) * inv_std))
        })
    }
}

multiversion! {
    /// dx = scale * (g' - mean_g - (x - mean) * xhat_coeff) over one plane.
    fn input_grad_plane<T: Elem>(x: &[T], g: &[T], out: &mut [MaybeUninit<T>], k: Channel, mean_g: f64, xhat_coeff: f64, relu: bool) -> () {
        let (scale, shift, mean) = (T::R::of(k.scale), T::R::of(k.shift), T::R::of(k.mean));
        let (mean_g, xhat_coeff) = (T::R::of(mean_g), T::R::of(xhat_coeff));
        for ((o, xv), gv) in out.iter_mut().zip(x).zip(g) {
            let xv = xv.get();
            let gv = masked(gv.get(), xv * scale + shift, relu);
            o.write(T::put(scale * (gv - mean_g - (xv - mean) * xhat_coeff)));
        }
    }
}

/// [mean (C), biased variance (C)] in one pass: sums of (x - s) and (x - s)^2 with s the
/// channel's first value, so the variance does not cancel away.
fn stats_cpu<T: Elem>(x: &[T], c: usize, hw: usize) -> Vec<f64> {
    let planes = x.len() / hw.max(1);
    let m = (planes / c.max(1) * hw) as f64;
    let shift: Vec<T::R> = (0..c).map(|ch| x[ch * hw].get()).collect();
    let sums = channel_totals(planes, c, hw, |q, ch| stats_plane(&x[q * hw..][..hw], shift[ch]));
    let mut stats = vec![0f64; 2 * c];
    for ch in 0..c {
        let (mean_d, mean_d2) = (sums[ch] / m, sums[c + ch] / m);
        stats[ch] = shift[ch].wide() + mean_d;
        stats[c + ch] = (mean_d2 - mean_d * mean_d).max(0.0);
    }
    stats
}

fn apply_cpu<T: Elem>(x: &[T], residual: Option<&[T]>, k: &[Channel], hw: usize, relu: bool) -> CpuStorage {
    // SAFETY: `apply_plane` writes every element of each plane.
    let y = unsafe {
        map_planes(x.len(), k.len(), hw, |q, ch, out| {
            let (scale, shift) = (T::R::of(k[ch].scale), T::R::of(k[ch].shift));
            apply_plane(&x[q * hw..][..hw], residual.map(|r| &r[q * hw..][..hw]), out, scale, shift, relu)
        })
    };
    T::to_cpu_storage_owned(y)
}

fn grad_sums_cpu<T: Elem>(x: &[T], g: &[T], k: &[Channel], hw: usize, relu: bool) -> Vec<f64> {
    channel_totals(x.len() / hw.max(1), k.len(), hw, |q, ch| grad_sums_plane(&x[q * hw..][..hw], &g[q * hw..][..hw], k[ch], relu))
}

fn input_grad_cpu<T: Elem>(x: &[T], g: &[T], k: &[Channel], sums: &[f64], hw: usize, relu: bool, train: bool) -> CpuStorage {
    let c = k.len();
    let m = (x.len() / c.max(1)) as f64;
    // SAFETY: `input_grad_plane` writes every element of each plane.
    let dx = unsafe {
        map_planes(x.len(), c, hw, |q, ch, out| {
            let (mean_g, mean_gx) = if train { (sums[ch] / m, sums[c + ch] / m) } else { (0.0, 0.0) };
            input_grad_plane(&x[q * hw..][..hw], &g[q * hw..][..hw], out, k[ch], mean_g, k[ch].inv_std * mean_gx, relu)
        })
    };
    T::to_cpu_storage_owned(dx)
}

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "batch-norm-stats"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(layout)?;
        let stats = float_slices!("batch-norm-stats", storage, layout, |x| stats_cpu(x, c, hw));
        Ok((stats_storage(stats, storage), Shape::from(2 * c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, storage: &candle_core::CudaStorage, layout: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::batch_norm::stats(storage, layout)
    }
}

impl CustomOp2 for BnApply {
    fn name(&self) -> &'static str {
        "batch-norm-apply"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, cs: &CpuStorage, cl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        let k = channels(&coefficients("batch-norm-apply", cs, cl)?, c, self.0.eps);
        let y = float_slices!("batch-norm-apply", xs, xl, |x| apply_cpu(x, None, &k, hw, self.0.relu));
        Ok((y, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, xs: &candle_core::CudaStorage, xl: &Layout, cs: &candle_core::CudaStorage, cl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{batch_norm, channels};
        channels::map(&batch_norm::APPLY, (xs, xl), (cs, cl), batch_norm::flags(self.0))
    }

    fn bwd(&self, x: &Tensor, coeffs: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        backward(self.0, x, coeffs, &grad.contiguous()?)
    }
}

/// Gradients of the BN (+ ReLU) `options` describes w.r.t. x and the packed coefficients, from
/// the gradient of its output.
fn backward(options: BnOptions, x: &Tensor, coeffs: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    backward_for(options, x, coeffs, grad, x.track_op(), coeffs.track_op())
}

/// [`backward`] computing the input's gradient when `need_x` and the coefficients' when
/// `need_coeffs`, whatever the tensors' tracking (for ops that keep x and coeffs detached).
pub(crate) fn backward_for(
    options: BnOptions,
    x: &Tensor,
    coeffs: &Tensor,
    grad: &Tensor,
    need_x: bool,
    need_coeffs: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let c = x.dim(1)?;
    // The sums feed gamma/beta's gradients and, in training, the input's.
    let sums = if need_coeffs || (options.train && need_x) { Some(x.apply_op3_no_bwd(grad, coeffs, &Pass(BnGradSums(options)))?) } else { None };
    let d_coeffs = match (&sums, need_coeffs) {
        (Some(sums), true) => {
            let (sum_g, sum_gx) = (sums.narrow(0, 0, c)?, sums.narrow(0, c, c)?);
            Some(Tensor::cat(&[sum_gx, sum_g, Tensor::zeros(2 * c, coeffs.dtype(), coeffs.device())?], 0)?)
        }
        _ => None,
    };
    let d_x = if need_x {
        let sums = match sums {
            Some(sums) => sums,
            None => Tensor::zeros(2 * c, coeffs.dtype(), coeffs.device())?,
        };
        let packed = Tensor::cat(&[&coeffs.detach(), &sums], 0)?;
        Some(x.apply_op3_no_bwd(grad, &packed, &Pass(BnInputGrad(options)))?)
    } else {
        None
    };
    Ok((d_x, d_coeffs))
}

/// The BN (+ ReLU) of `options` from packed coefficients [gamma, beta, mean, var], or the
/// ReLU of BN(y) plus a residual; no graph (the training units of `ops::conv_bn` keep their own
/// record). The residual form runs on the CPU only.
pub(crate) fn apply_train(y: &Tensor, coeffs: &Tensor, residual: Option<&Tensor>, options: BnOptions) -> Result<Tensor> {
    match residual {
        Some(r) => y.apply_op3_no_bwd(coeffs, &r.contiguous()?, &BnAddRelu(options)),
        None => y.apply_op2_no_bwd(coeffs, &BnApply(options)),
    }
}

/// ReLU(BN(x) + r) (CPU): x, coeffs, r.
struct BnAddRelu(BnOptions);

impl CustomOp3 for BnAddRelu {
    fn name(&self) -> &'static str {
        "batch-norm-add-relu"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, cs: &CpuStorage, cl: &Layout, rs: &CpuStorage, rl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        if rl.shape() != xl.shape() {
            candle_core::bail!("batch-norm-add-relu: residual {:?} and input {:?} differ in shape", rl.shape(), xl.shape());
        }
        let k = channels(&coefficients("batch-norm-add-relu", cs, cl)?, c, self.0.eps);
        let y = float_slices!("batch-norm-add-relu", xs, xl, rs, rl, |x, r| apply_cpu(x, Some(r), &k, hw, true));
        Ok((y, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, coeffs: &Tensor, r: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // The ReLU's gradient is the residual's, and what the BN (without ReLU) backpropagates.
        let masked = relu_grad(grad, res)?;
        let (d_x, d_coeffs) = backward(BnOptions { relu: false, ..self.0 }, x, coeffs, &masked)?;
        Ok((d_x, d_coeffs, r.track_op().then_some(masked)))
    }
}

impl GradientPass for BnGradSums {
    const NAME: &'static str = "batch-norm-grad-sums";

    fn cpu<T: Elem>(&self, x: &[T], g: &[T], coeffs: &[f64], c: usize, hw: usize) -> PassOutput {
        PassOutput::Sums(grad_sums_cpu(x, g, &channels(coeffs, c, self.0.eps), hw, self.0.relu))
    }

    #[cfg(feature = "cuda")]
    fn cuda(&self, x: CudaArg, g: CudaArg, coeffs: CudaArg) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{batch_norm, channels};
        channels::pair_sums(&batch_norm::GRAD_SUMS, x, g, coeffs, batch_norm::flags(self.0))
    }
}

/// `coeffs` = [gamma, beta, mean, var] ++ [sum g', sum g' * xhat].
impl GradientPass for BnInputGrad {
    const NAME: &'static str = "batch-norm-input-grad";

    fn cpu<T: Elem>(&self, x: &[T], g: &[T], coeffs: &[f64], c: usize, hw: usize) -> PassOutput {
        let k = channels(coeffs, c, self.0.eps);
        PassOutput::LikeInput(input_grad_cpu(x, g, &k, &coeffs[4 * c..6 * c], hw, self.0.relu, self.0.train))
    }

    #[cfg(feature = "cuda")]
    fn cuda(&self, x: CudaArg, g: CudaArg, coeffs: CudaArg) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{batch_norm, channels};
        channels::grad_map(&batch_norm::INPUT_GRAD, x, g, coeffs, batch_norm::flags(self.0))
    }
}

/// Batch statistics of x [N, C, H, W]: ([C] mean, [C] biased variance), detached, float32
/// (float64 for float64 inputs).
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
    // The CUDA kernels read each channel's first element: an empty batch has none.
    if x.elem_count() == 0 {
        candle_core::bail!("batch statistics of an empty tensor {:?}: every channel needs at least one value", x.dims());
    }
    let stats = x.contiguous()?.apply_op1_no_bwd(&BnStats)?;
    Ok((stats.narrow(0, 0, c)?, stats.narrow(0, c, c)?))
}

/// The fused BatchNorm (+ ReLU): x [N, C, H, W]; gamma, beta [C] (differentiable); mean, var
/// [C] (constants: detached here).
pub fn batch_norm_fused(x: &Tensor, gamma: &Tensor, beta: &Tensor, mean: &Tensor, var: &Tensor, options: BnOptions) -> Result<Tensor> {
    let x = x.contiguous()?;
    let dtype = stats_dtype(x.dtype());
    let coeffs = Tensor::cat(&[gamma.to_dtype(dtype)?, beta.to_dtype(dtype)?, mean.detach().to_dtype(dtype)?, var.detach().to_dtype(dtype)?], 0)?;
    x.apply_op2(&coeffs, BnApply(options))
}

/// ReLU(BN(x) + residual), the end of a residual block; train/eval and eps from `options`
/// (`options.relu` is ignored: the ReLU is always applied). One fused op on the CPU; on CUDA the
/// BN op followed by an add and a ReLU.
pub fn batch_norm_add_relu(x: &Tensor, gamma: &Tensor, beta: &Tensor, mean: &Tensor, var: &Tensor, residual: &Tensor, options: BnOptions) -> Result<Tensor> {
    if !x.device().is_cpu() {
        return (batch_norm_fused(x, gamma, beta, mean, var, BnOptions { relu: false, ..options })? + residual)?.relu();
    }
    let x = x.contiguous()?;
    let dtype = stats_dtype(x.dtype());
    let coeffs = Tensor::cat(&[gamma.to_dtype(dtype)?, beta.to_dtype(dtype)?, mean.detach().to_dtype(dtype)?, var.detach().to_dtype(dtype)?], 0)?;
    x.apply_op3(&coeffs, &residual.contiguous()?, BnAddRelu(options))
}
