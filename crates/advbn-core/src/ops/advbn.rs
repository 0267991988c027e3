//! The AdvBN op fused: channel means (one pass, BatchNorm's statistics op), the perturbation (one
//! pass), and a backward that needs two more passes, plus a third only when the input itself needs a gradient
//! (never during the attack: the encoder's features are detached).
//!
//! `params` packs [alpha (C), beta (C), mu (C)] so one op carries everything its backward needs.
//! They are float32 for every input dtype except float64 (kept exact for gradient checks).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::batch_norm::batch_stats;
use super::storage::{from_f64, nchw, stats_dtype, stats_storage, to_f64};

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

fn param_values(storage: &CpuStorage, layout: &Layout) -> Result<Vec<f64>> {
    to_f64(storage, layout, "advbn params")
}

/// Pre-activation exactly as the kernels compute it: beta * x + (alpha - beta) * mu.
#[inline]
fn pre(x: f64, alpha: f64, beta: f64, mu: f64) -> f64 {
    beta * x + (alpha - beta) * mu
}

impl CustomOp2 for AdvBnApply {
    fn name(&self) -> &'static str {
        "advbn-apply"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ps: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        let x = to_f64(xs, xl, "advbn input")?;
        let p = param_values(ps, pl)?;
        let mut y = x;
        for (plane, chunk) in y.chunks_mut(hw).enumerate() {
            let ch = plane % c;
            let (alpha, beta, mu) = (p[ch], p[c + ch], p[2 * c + ch]);
            for v in chunk {
                let out = pre(*v, alpha, beta, mu);
                *v = if self.relu { out.max(0.0) } else { out };
            }
        }
        Ok((from_f64(y, xs)?, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        super::cuda::advbn::advbn_apply(xs, xl, ps, pl, self.relu)
    }

    fn bwd(&self, x: &Tensor, params: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = x.dim(1)?;
        let grad = grad.contiguous()?;
        let sums = x.apply_op3_no_bwd(&grad, params, &AdvBnGradSums { relu: self.relu })?;
        let (sum_g, sum_gx) = (sums.narrow(0, 0, c)?, sums.narrow(0, c, c)?);
        let mu = params.narrow(0, 2 * c, c)?;
        // dL/dalpha = mu * sum g'; dL/dbeta = sum g' (x - mu); mu is a detached input.
        let d_alpha = (&mu * &sum_g)?;
        let d_beta = (sum_gx - (&mu * &sum_g)?)?;
        let d_params = Tensor::cat(&[d_alpha, d_beta, mu.zeros_like()?], 0)?;
        let d_x = if x.track_op() {
            let coeffs = Tensor::cat(&[params, &sum_g], 0)?;
            Some(x.apply_op3_no_bwd(&grad, &coeffs, &AdvBnInputGrad { relu: self.relu })?)
        } else {
            None
        };
        Ok((d_x, Some(d_params)))
    }
}

impl CustomOp3 for AdvBnGradSums {
    fn name(&self) -> &'static str {
        "advbn-grad-sums"
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
        let (x, g, p) = (to_f64(xs, xl, "advbn input")?, to_f64(gs, gl, "advbn grad")?, param_values(ps, pl)?);
        let mut sums = vec![0f64; 2 * c];
        for (plane, (xc, gc)) in x.chunks(hw).zip(g.chunks(hw)).enumerate() {
            let ch = plane % c;
            let (alpha, beta, mu) = (p[ch], p[c + ch], p[2 * c + ch]);
            for (&xv, &gv) in xc.iter().zip(gc) {
                let gv = if self.relu && pre(xv, alpha, beta, mu) <= 0.0 { 0.0 } else { gv };
                sums[ch] += gv;
                sums[c + ch] += gv * xv;
            }
        }
        Ok((stats_storage(sums, xs), Shape::from(2 * c)))
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
        super::cuda::advbn::advbn_grad_sums(xs, xl, gs, gl, ps, pl, self.relu)
    }
}

impl CustomOp3 for AdvBnInputGrad {
    fn name(&self) -> &'static str {
        "advbn-input-grad"
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
        let (n, c, hw) = nchw(xl)?;
        let (x, g, k) = (to_f64(xs, xl, "advbn input")?, to_f64(gs, gl, "advbn grad")?, param_values(cs, cl)?);
        let m = (n * hw) as f64;
        let mut dx = vec![0f64; x.len()];
        for (plane, ((xc, gc), dc)) in x.chunks(hw).zip(g.chunks(hw)).zip(dx.chunks_mut(hw)).enumerate() {
            let ch = plane % c;
            let (alpha, beta, mu, sum_g) = (k[ch], k[c + ch], k[2 * c + ch], k[3 * c + ch]);
            let common = (alpha - beta) * sum_g / m;
            for ((&xv, &gv), d) in xc.iter().zip(gc).zip(dc) {
                let gv = if self.relu && pre(xv, alpha, beta, mu) <= 0.0 { 0.0 } else { gv };
                *d = beta * gv + common;
            }
        }
        Ok((from_f64(dx, xs)?, xl.shape().clone()))
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
        super::cuda::advbn::advbn_input_grad(xs, xl, gs, gl, cs, cl, self.relu)
    }
}

/// The fused AdvBN: x [N, C, H, W] (f32, bf16, f16 or f64), alpha and beta [1, C, 1, 1].
pub fn advbn_fused(x: &Tensor, alpha: &Tensor, beta: &Tensor, relu: bool) -> Result<Tensor> {
    let x = x.contiguous()?;
    let c = x.dim(1)?;
    // The channel means come from BatchNorm's statistics pass (its variance is a by-product).
    let (mu, _) = batch_stats(&x)?;
    let dtype = stats_dtype(x.dtype());
    let params = Tensor::cat(&[alpha.reshape(c)?.to_dtype(dtype)?, beta.reshape(c)?.to_dtype(dtype)?, mu], 0)?;
    x.apply_op2(&params, AdvBnApply { relu })
}
