//! BatchNorm2d fused (optionally with the ReLU after it): batch statistics in one pass, the
//! normalisation in one pass, and a backward of one pass for the gradients of gamma and beta
//! plus one for the input, each skipped when nothing needs it. Candle's composite BN is ~10
//! kernels and temporaries per call.
//!
//! `coeffs` packs [gamma (C), beta (C), mean (C), var (C)] so one op carries everything its
//! backward needs. The statistics are detached inputs: the input gradient accounts for them
//! itself in training mode. float32 for every input dtype except float64.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use super::storage::{nchw, stats_dtype, stats_storage, to_f64};

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
struct BnApply(BnOptions);

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
#[inline]
fn masked(g: f64, x: f64, k: &Channel, relu: bool) -> f64 {
    if relu && x * k.scale + k.shift <= 0.0 {
        0.0
    } else {
        g
    }
}

/// Runs `$body` with `$x` (and `$g`) bound to the contiguous slices of float CPU storages of one dtype.
macro_rules! float_slices {
    ($xs:expr, $xl:expr, |$x:ident| $body:expr) => {{
        let (start, end) = $xl.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("batch norm input must be contiguous".into()))?;
        match $xs {
            CpuStorage::F32(v) => { let $x = &v[start..end]; $body }
            CpuStorage::F64(v) => { let $x = &v[start..end]; $body }
            CpuStorage::BF16(v) => { let $x = &v[start..end]; $body }
            CpuStorage::F16(v) => { let $x = &v[start..end]; $body }
            other => candle_core::bail!("batch norm: unsupported dtype {:?}", other.dtype()),
        }
    }};
    ($xs:expr, $xl:expr, $gs:expr, $gl:expr, |$x:ident, $g:ident| $body:expr) => {{
        let (xa, xb) = $xl.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("batch norm input must be contiguous".into()))?;
        let (ga, gb) = $gl.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("batch norm gradient must be contiguous".into()))?;
        match ($xs, $gs) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => { let ($x, $g) = (&x[xa..xb], &g[ga..gb]); $body }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => { let ($x, $g) = (&x[xa..xb], &g[ga..gb]); $body }
            (CpuStorage::BF16(x), CpuStorage::BF16(g)) => { let ($x, $g) = (&x[xa..xb], &g[ga..gb]); $body }
            (CpuStorage::F16(x), CpuStorage::F16(g)) => { let ($x, $g) = (&x[xa..xb], &g[ga..gb]); $body }
            (x, g) => candle_core::bail!("batch norm: input {:?} and gradient {:?} must share a float dtype", x.dtype(), g.dtype()),
        }
    }};
}

fn stats_cpu<T: WithDType>(x: &[T], c: usize, hw: usize) -> Vec<f64> {
    let mut sums = vec![0f64; 2 * c];
    for (plane, values) in x.chunks(hw).enumerate() {
        let ch = plane % c;
        for v in values {
            sums[ch] += v.to_f64();
        }
    }
    let m = (x.len() / c) as f64;
    sums[..c].iter_mut().for_each(|s| *s /= m);
    // Second pass around the mean: exact enough for gradient checks in f64.
    for (plane, values) in x.chunks(hw).enumerate() {
        let ch = plane % c;
        let mean = sums[ch];
        for v in values {
            let d = v.to_f64() - mean;
            sums[c + ch] += d * d;
        }
    }
    sums[c..].iter_mut().for_each(|s| *s /= m);
    sums
}

fn apply_cpu<T: WithDType>(x: &[T], k: &[Channel], hw: usize, relu: bool) -> CpuStorage {
    let c = k.len();
    let mut y = Vec::with_capacity(x.len());
    for (plane, values) in x.chunks(hw).enumerate() {
        let k = &k[plane % c];
        y.extend(values.iter().map(|v| {
            let out = v.to_f64() * k.scale + k.shift;
            T::from_f64(if relu { out.max(0.0) } else { out })
        }));
    }
    T::to_cpu_storage_owned(y)
}

fn grad_sums_cpu<T: WithDType>(x: &[T], g: &[T], k: &[Channel], hw: usize, relu: bool) -> Vec<f64> {
    let c = k.len();
    let mut sums = vec![0f64; 2 * c];
    for (plane, (xc, gc)) in x.chunks(hw).zip(g.chunks(hw)).enumerate() {
        let ch = plane % c;
        let k = &k[ch];
        for (xv, gv) in xc.iter().zip(gc) {
            let xv = xv.to_f64();
            let gv = masked(gv.to_f64(), xv, k, relu);
            sums[ch] += gv;
            sums[c + ch] += gv * (xv - k.mean) * k.inv_std;
        }
    }
    sums
}

fn input_grad_cpu<T: WithDType>(x: &[T], g: &[T], k: &[Channel], sums: &[f64], hw: usize, relu: bool, train: bool) -> CpuStorage {
    let c = k.len();
    let m = (x.len() / c) as f64;
    let mut dx = Vec::with_capacity(x.len());
    for (plane, (xc, gc)) in x.chunks(hw).zip(g.chunks(hw)).enumerate() {
        let ch = plane % c;
        let k = &k[ch];
        let (mean_g, mean_gx) = if train { (sums[ch] / m, sums[c + ch] / m) } else { (0.0, 0.0) };
        dx.extend(xc.iter().zip(gc).map(|(xv, gv)| {
            let xv = xv.to_f64();
            let gv = masked(gv.to_f64(), xv, k, relu);
            T::from_f64(k.scale * (gv - mean_g - (xv - k.mean) * k.inv_std * mean_gx))
        }));
    }
    T::to_cpu_storage_owned(dx)
}

impl CustomOp1 for BnStats {
    fn name(&self) -> &'static str {
        "batch-norm-stats"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(layout)?;
        let stats = float_slices!(storage, layout, |x| stats_cpu(x, c, hw));
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
        let k = channels(&to_f64(cs, cl, "batch norm coefficients")?, c, self.0.eps);
        let y = float_slices!(xs, xl, |x| apply_cpu(x, &k, hw, self.0.relu));
        Ok((y, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        cs: &candle_core::CudaStorage,
        cl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::batch_norm::apply(xs, xl, cs, cl, self.0)
    }

    fn bwd(&self, x: &Tensor, coeffs: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(1)?;
        let grad = grad.contiguous()?;
        // The sums feed gamma/beta's gradients and, in training, the input's.
        let sums = if coeffs.track_op() || (self.0.train && x.track_op()) {
            Some(x.apply_op3_no_bwd(&grad, coeffs, &BnGradSums(self.0))?)
        } else {
            None
        };
        let d_coeffs = match (&sums, coeffs.track_op()) {
            (Some(sums), true) => {
                let (sum_g, sum_gx) = (sums.narrow(0, 0, c)?, sums.narrow(0, c, c)?);
                Some(Tensor::cat(&[sum_gx, sum_g, Tensor::zeros(2 * c, coeffs.dtype(), coeffs.device())?], 0)?)
            }
            _ => None,
        };
        let d_x = if x.track_op() {
            let sums = match sums {
                Some(sums) => sums,
                None => Tensor::zeros(2 * c, coeffs.dtype(), coeffs.device())?,
            };
            let packed = Tensor::cat(&[&coeffs.detach(), &sums], 0)?;
            Some(x.apply_op3_no_bwd(&grad, &packed, &BnInputGrad(self.0))?)
        } else {
            None
        };
        Ok((d_x, d_coeffs))
    }
}

impl CustomOp3 for BnGradSums {
    fn name(&self) -> &'static str {
        "batch-norm-grad-sums"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        let k = channels(&to_f64(cs, cl, "batch norm coefficients")?, c, self.0.eps);
        let sums = float_slices!(xs, xl, gs, gl, |x, g| grad_sums_cpu(x, g, &k, hw, self.0.relu));
        Ok((stats_storage(sums, xs), Shape::from(2 * c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        cs: &candle_core::CudaStorage,
        cl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::batch_norm::grad_sums(xs, xl, gs, gl, cs, cl, self.0)
    }
}

impl CustomOp3 for BnInputGrad {
    fn name(&self) -> &'static str {
        "batch-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        let packed = to_f64(ps, pl, "batch norm coefficients")?;
        let k = channels(&packed, c, self.0.eps);
        let sums = &packed[4 * c..6 * c];
        let dx = float_slices!(xs, xl, gs, gl, |x, g| input_grad_cpu(x, g, &k, sums, hw, self.0.relu, self.0.train));
        Ok((dx, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::batch_norm::input_grad(xs, xl, gs, gl, ps, pl, self.0)
    }
}

/// Batch statistics of x [N, C, H, W]: ([C] mean, [C] biased variance), detached, float32
/// (float64 for float64 inputs).
pub fn batch_stats(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let c = x.dim(1)?;
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
