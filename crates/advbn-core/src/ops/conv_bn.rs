//! ReLU(BN(conv(x, w))) in training mode (batch statistics) as one graph node on the CPU: the
//! unit that starts every residual block, and the stem. Through separate ops the conv's output
//! and its gradient are a graph tensor each, and Candle's backward gives every graph tensor's
//! gradient a zero-filled accumulator plus an add, one thread, over the whole activation (about
//! a tenth of a ResNet-18 training step). Here the conv output stays inside the op, and its
//! gradient is a temporary of the op's backward.
//!
//! The arithmetic is that of the separate ops (the same conv, statistics, normalisation and
//! backward kernels in the same order), so results are bit-identical to them.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use super::batch_norm::{backward_for, batch_stats, BnApply, BnOptions};
use super::conv::{conv2d, input_gradient, uses_cpu_kernels, weight_grad, ConvParams};
use super::storage::stats_dtype;

/// The node: (x, w, [gamma, beta]) -> z. The forward ran before the op (with detached inputs);
/// the op keeps what its backward needs.
struct ConvBnRelu {
    params: ConvParams,
    options: BnOptions,
    /// The conv output (detached).
    y: Tensor,
    /// [gamma, beta, mean, var] the normalisation used (detached).
    coeffs: Tensor,
    /// The forward result, moved out by the op's forward so the graph holds one copy of it.
    out: Mutex<Option<CpuStorage>>,
}

impl CustomOp3 for ConvBnRelu {
    fn name(&self) -> &'static str {
        "conv-bn-relu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = self.out.lock().map_err(|_| candle_core::Error::Msg("conv-bn-relu: poisoned lock".into()))?.take();
        let out = out.ok_or_else(|| candle_core::Error::Msg("conv-bn-relu: internal error, the forward ran twice".into()))?;
        Ok((out, self.y.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, gb: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (need_x, need_w, need_gb) = (x.track_op(), w.track_op(), gb.track_op());
        let c = self.y.dim(1)?;
        let (d_y, d_coeffs) = backward_for(self.options, &self.y, &self.coeffs, &grad.contiguous()?, need_x || need_w, need_gb)?;
        // d_coeffs is [d gamma, d beta, 0, 0]; the node's third input is [gamma, beta].
        let d_gb = d_coeffs.map(|d| d.narrow(0, 0, 2 * c)?.to_dtype(gb.dtype())).transpose()?;
        let (d_x, d_w) = match d_y {
            Some(d_y) => {
                (need_x.then(|| input_gradient(x, w, &d_y, self.params)).transpose()?, need_w.then(|| weight_grad(x, w, &d_y, self.params)).transpose()?)
            }
            None => (None, None),
        };
        Ok((d_x, d_w, d_gb))
    }
}

/// Whether [`conv_bn_relu_train`] runs `x`'s convolution (the CPU kernels' dtypes).
pub fn supported(x: &Tensor) -> bool {
    uses_cpu_kernels(x)
}

/// ReLU(BN(conv(x, w))) with the batch's statistics, as one graph node: gradients flow to
/// whichever of x, w, gamma and beta is tracked. Returns (output, batch mean, batch biased
/// variance); the caller updates the running statistics. CPU only (see [`supported`]).
pub fn conv_bn_relu_train(x: &Tensor, w: &Tensor, gamma: &Tensor, beta: &Tensor, params: ConvParams, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
    if !supported(x) {
        candle_core::bail!("conv-bn-relu: runs on the CPU in float32 or float64, got {:?} on {:?}", x.dtype(), x.device());
    }
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    let y = conv2d(&x.detach(), &w.detach(), params)?;
    let (mean, var) = batch_stats(&y)?;
    let dtype = stats_dtype(y.dtype());
    let coeffs = Tensor::cat(&[gamma.detach().to_dtype(dtype)?, beta.detach().to_dtype(dtype)?, mean.clone(), var.clone()], 0)?;
    let options = BnOptions { eps, relu: true, train: true };
    let out = {
        let (ys, yl) = y.storage_and_layout();
        let (cs, cl) = coeffs.storage_and_layout();
        match (&*ys, &*cs) {
            (Storage::Cpu(ys), Storage::Cpu(cs)) => BnApply(options).cpu_fwd(ys, yl, cs, cl)?.0,
            _ => candle_core::bail!("conv-bn-relu: tensors left the CPU"),
        }
    };
    let gb = Tensor::cat(&[gamma, beta], 0)?;
    let op = ConvBnRelu { params, options, y, coeffs, out: Mutex::new(Some(out)) };
    let z = if x.track_op() || w.track_op() || gb.track_op() { x.apply_op3(&w, &gb, op)? } else { x.apply_op3_no_bwd(&w, &gb, &op)? };
    Ok((z, mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::batch_norm::batch_norm_fused;
    use candle_core::{DType, Device, Var};

    fn values(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((((i as u64 + seed) * 2_654_435_761) % 1000) as f32 / 500.0) - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The fused node and the separate ops give bit-identical outputs, statistics and gradients
    /// for every input (stride 1 and 2, with and without padding).
    #[test]
    fn matches_the_separate_ops_bit_for_bit() {
        for (params, k) in [(ConvParams { stride: 1, padding: 1 }, 3), (ConvParams { stride: 2, padding: 3 }, 7), (ConvParams { stride: 1, padding: 0 }, 1)] {
            let x = Var::from_tensor(&values(&[3, 4, 10, 10], 1)).unwrap();
            let w = Var::from_tensor(&values(&[5, 4, k, k], 2).affine(0.3, 0.0).unwrap()).unwrap();
            let gamma = Var::from_tensor(&values(&[5], 3).affine(0.5, 1.0).unwrap()).unwrap();
            let beta = Var::from_tensor(&values(&[5], 4).affine(0.2, 0.0).unwrap()).unwrap();
            let probe = values(&[3, 5, params.out_size(10, k).unwrap(), params.out_size(10, k).unwrap()], 5);

            let (z, mean, var) = conv_bn_relu_train(&x, &w, &gamma, &beta, params, 1e-5).unwrap();
            let fused = (z.clone() * &probe).unwrap().sum_all().unwrap().backward().unwrap();

            let y = conv2d(&x, &w, params).unwrap();
            let (m, v) = batch_stats(&y).unwrap();
            let z2 = batch_norm_fused(&y, &gamma, &beta, &m, &v, BnOptions { eps: 1e-5, relu: true, train: true }).unwrap();
            let apart = (z2.clone() * &probe).unwrap().sum_all().unwrap().backward().unwrap();

            let bits =
                |t: &Tensor| t.flatten_all().unwrap().to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&z), bits(&z2), "output, {params:?}");
            assert_eq!(bits(&mean), bits(&m));
            assert_eq!(bits(&var), bits(&v));
            for (name, t) in [("x", x.as_tensor()), ("w", w.as_tensor()), ("gamma", gamma.as_tensor()), ("beta", beta.as_tensor())] {
                let (a, b) = (fused.get(t).unwrap(), apart.get(t).unwrap());
                assert_eq!(bits(a), bits(b), "gradient of {name}, {params:?}");
            }
        }
    }

    /// Untracked inputs give an output and no graph; a frozen weight gets no gradient.
    #[test]
    fn gradients_go_only_where_tracked() {
        let params = ConvParams { stride: 1, padding: 1 };
        let (x, w) = (values(&[2, 3, 6, 6], 7), values(&[4, 3, 3, 3], 8));
        let (gamma, beta) =
            (Var::from_tensor(&Tensor::ones(4, DType::F32, &Device::Cpu).unwrap()).unwrap(), Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap());
        let (z, _, _) = conv_bn_relu_train(&x, &w, &gamma, &beta, params, 1e-5).unwrap();
        let grads = z.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none() && grads.get(&w).is_none());
        assert!(grads.get(gamma.as_tensor()).is_some());
        let (z, _, _) = conv_bn_relu_train(&x, &w, &gamma.as_tensor().detach(), &beta, params, 1e-5).unwrap();
        assert!(!z.track_op());
        assert!(conv_bn_relu_train(&x.to_dtype(DType::BF16).unwrap(), &w, &gamma, &beta, params, 1e-5).is_err());
    }
}
