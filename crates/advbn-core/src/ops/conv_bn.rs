//! A conv followed by a training-mode BatchNorm, then optionally a residual and a ReLU, computed
//! outside Candle's graph with what its backward needs kept ([`TrainUnit`]): the unit every
//! ResNet layer is made of, for the CPU training step that back-propagates the network itself
//! (`models::backprop`). Through Candle's graph every intermediate tensor's gradient gets a
//! zero-filled accumulator plus a single-threaded add, about a tenth of a ResNet-18 training step.
//!
//! The arithmetic is that of the separate ops (the same conv, statistics, normalisation and
//! backward kernels in the same order), so results are bit-identical to them.

use candle_core::{Result, Tensor};

use super::batch_norm::{apply_train, backward_for, batch_stats, BnOptions};
use super::conv::{conv2d, input_gradient, uses_cpu_kernels, weight_grad, ConvParams};
use super::gradient::Grad;
use super::storage::stats_dtype;

/// What one unit's backward needs: its input, weight, conv output and BN coefficients (all
/// detached), and its output where a residual joins (the ReLU's mask of the sum).
pub struct TrainUnit {
    x: Tensor,
    w: Tensor,
    params: ConvParams,
    y: Tensor,
    /// [gamma, beta, mean, var] the normalisation used.
    coeffs: Tensor,
    options: BnOptions,
    /// The output, kept when the unit adds a residual.
    z: Option<Tensor>,
}

/// The gradients of one unit from its output's.
pub struct UnitGrads {
    /// The input's, when asked for.
    pub x: Option<Tensor>,
    pub w: Tensor,
    pub gamma: Tensor,
    pub beta: Tensor,
    /// The residual's, for a unit that adds one.
    pub residual: Option<Tensor>,
}

/// Whether [`train_unit`] runs `x`'s convolution (the CPU kernels' dtypes).
pub fn supported(x: &Tensor) -> bool {
    uses_cpu_kernels(x)
}

/// ReLU?(BN(conv(x, w)) + residual?) with the batch's statistics, no graph. A residual comes
/// with the ReLU (a residual block's end). Returns the output, the record for the backward, and
/// the batch mean and biased variance (the caller updates the running statistics).
#[allow(clippy::too_many_arguments)]
pub fn train_unit(
    x: &Tensor,
    w: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    residual: Option<&Tensor>,
    relu: bool,
    params: ConvParams,
    eps: f64,
) -> Result<(Tensor, TrainUnit, Tensor, Tensor)> {
    if !supported(x) {
        candle_core::bail!("train unit: runs on the CPU in float32 or float64, got {:?} on {:?}", x.dtype(), x.device());
    }
    if residual.is_some() && !relu {
        candle_core::bail!("train unit: a residual is added before a ReLU (a residual block's end)");
    }
    let (x, w) = (x.detach().contiguous()?, w.detach().contiguous()?);
    let y = conv2d(&x, &w, params)?;
    let (mean, var) = batch_stats(&y)?;
    let dtype = stats_dtype(y.dtype());
    let coeffs = Tensor::cat(&[gamma.detach().to_dtype(dtype)?, beta.detach().to_dtype(dtype)?, mean.clone(), var.clone()], 0)?;
    let options = BnOptions { eps, relu, train: true };
    let z = apply_train(&y, &coeffs, residual.map(Tensor::detach).as_ref(), options)?;
    let kept = residual.is_some().then(|| z.clone());
    Ok((z, TrainUnit { x, w, params, y, coeffs, options, z: kept }, mean, var))
}

impl TrainUnit {
    /// Every gradient of the unit from `grad`, its output's; the input's only when `need_x`.
    pub fn backward(&self, grad: &Grad, need_x: bool) -> Result<UnitGrads> {
        // With a residual, the ReLU's gradient is the residual's and what the BN (without ReLU)
        // back-propagates.
        let (bn_grad, residual, options) = match &self.z {
            Some(z) => {
                let masked = grad.relu_masked(z)?;
                (masked.clone(), Some(masked), BnOptions { relu: false, ..self.options })
            }
            None => (grad.total()?.contiguous()?, None, self.options),
        };
        let (d_y, d_coeffs) = backward_for(options, &self.y, &self.coeffs, &bn_grad, true, true)?;
        let (d_y, d_coeffs) = match (d_y, d_coeffs) {
            (Some(d_y), Some(d_coeffs)) => (d_y, d_coeffs),
            _ => candle_core::bail!("train unit: internal error, the BN backward skipped a gradient"),
        };
        let c = self.y.dim(1)?;
        Ok(UnitGrads {
            x: need_x.then(|| input_gradient(&self.x, &self.w, &d_y, self.params)).transpose()?,
            w: weight_grad(&self.x, &self.w, &d_y, self.params)?,
            gamma: d_coeffs.narrow(0, 0, c)?,
            beta: d_coeffs.narrow(0, c, c)?,
            residual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::batch_norm::{batch_norm_add_relu, batch_norm_fused};
    use candle_core::{DType, Device, Var};

    fn values(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((((i as u64 + seed) * 2_654_435_761) % 1000) as f32 / 500.0) - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The unit and the separate graph ops give bit-identical outputs, statistics and gradients
    /// for every input (stride 1 and 2, with and without padding; with a ReLU, without, and with
    /// a residual).
    #[test]
    fn matches_the_separate_ops_bit_for_bit() {
        for (params, k) in [(ConvParams { stride: 1, padding: 1 }, 3), (ConvParams { stride: 2, padding: 3 }, 7), (ConvParams { stride: 1, padding: 0 }, 1)] {
            for (relu, with_residual) in [(true, false), (false, false), (true, true)] {
                let x = Var::from_tensor(&values(&[3, 4, 10, 10], 1)).unwrap();
                let w = Var::from_tensor(&values(&[5, 4, k, k], 2).affine(0.3, 0.0).unwrap()).unwrap();
                let gamma = Var::from_tensor(&values(&[5], 3).affine(0.5, 1.0).unwrap()).unwrap();
                let beta = Var::from_tensor(&values(&[5], 4).affine(0.2, 0.0).unwrap()).unwrap();
                let side = params.out_size(10, k).unwrap();
                let r = Var::from_tensor(&values(&[3, 5, side, side], 6)).unwrap();
                let probe = values(&[3, 5, side, side], 5);
                let residual = with_residual.then_some(r.as_tensor());
                let case = format!("{params:?}, relu {relu}, residual {with_residual}");

                let (z, unit, mean, var) = train_unit(&x, &w, &gamma, &beta, residual, relu, params, 1e-5).unwrap();
                assert!(!z.track_op(), "{case}: the unit builds no graph");
                let grads = unit.backward(&Grad::Whole(probe.clone()), true).unwrap();

                let y = conv2d(&x, &w, params).unwrap();
                let (m, v) = batch_stats(&y).unwrap();
                let options = BnOptions { eps: 1e-5, relu, train: true };
                let z2 = match residual {
                    Some(r) => batch_norm_add_relu(&y, &gamma, &beta, &m, &v, r, options).unwrap(),
                    None => batch_norm_fused(&y, &gamma, &beta, &m, &v, options).unwrap(),
                };
                let apart = (z2.clone() * &probe).unwrap().sum_all().unwrap().backward().unwrap();

                assert_eq!(bits(&z), bits(&z2), "output, {case}");
                assert_eq!(bits(&mean), bits(&m));
                assert_eq!(bits(&var), bits(&v));
                let ours = [("x", grads.x.as_ref().unwrap()), ("w", &grads.w), ("gamma", &grads.gamma), ("beta", &grads.beta)];
                for ((name, g), t) in ours.into_iter().zip([x.as_tensor(), w.as_tensor(), gamma.as_tensor(), beta.as_tensor()]) {
                    assert_eq!(bits(g), bits(apart.get(t).unwrap()), "gradient of {name}, {case}");
                }
                match residual {
                    Some(r) => assert_eq!(bits(grads.residual.as_ref().unwrap()), bits(apart.get(r).unwrap()), "residual gradient, {case}"),
                    None => assert!(grads.residual.is_none()),
                }
                assert!(unit.backward(&Grad::Whole(probe.clone()), false).unwrap().x.is_none());
            }
        }
    }

    #[test]
    fn rejects_what_it_does_not_compute() {
        let params = ConvParams { stride: 1, padding: 1 };
        let (x, w) = (values(&[2, 3, 6, 6], 7), values(&[4, 3, 3, 3], 8));
        let (gamma, beta) = (Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(), Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap());
        let bf16 = x.to_dtype(DType::BF16).unwrap();
        assert!(train_unit(&bf16, &w, &gamma, &beta, None, true, params, 1e-5).is_err());
        let r = values(&[2, 4, 6, 6], 9);
        let err = train_unit(&x, &w, &gamma, &beta, Some(&r), false, params, 1e-5).err().unwrap().to_string();
        assert!(err.contains("before a ReLU"), "{err}");
    }
}
