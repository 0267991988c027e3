//! BatchNorm2d with torchvision semantics (eps 1e-5, momentum 0.1, unbiased running variance),
//! whose mode is chosen per call: AdvBN's attack needs passes that never touch running stats.

use candle_core::{Tensor, Var};
use candle_nn::VarBuilder;

use super::mode::{BnMode, ForwardMode};
use crate::ops::batch_norm::{batch_norm_add_relu, batch_norm_fused, batch_stats, BnOptions};
use crate::ops::conv::ConvParams;
use crate::ops::conv_bn::{train_unit, TrainUnit};
use crate::params::ParamStore;

pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

#[derive(Clone)]
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    channels: usize,
}

/// Builds a BN named like torchvision (`weight`, `bias`, `running_mean`, `running_var`).
pub fn batch_norm(channels: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<BatchNorm> {
    let weight = vb.get_with_hints(channels, "weight", candle_nn::init::ONE)?;
    let bias = vb.get_with_hints(channels, "bias", candle_nn::init::ZERO)?;
    vb.get_with_hints(channels, "running_mean", candle_nn::init::ZERO)?;
    vb.get_with_hints(channels, "running_var", candle_nn::init::ONE)?;
    let var = |suffix: &str| {
        let name = format!("{}.{suffix}", vb.prefix());
        store.var(&name).ok_or_else(|| candle_core::Error::Msg(format!("missing buffer {name}")))
    };
    Ok(BatchNorm { weight, bias, running_mean: var("running_mean")?, running_var: var("running_var")?, channels })
}

impl BatchNorm {
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// A new BN whose tensors are copies of this one's, registered in `store` under `prefix`.
    pub fn duplicate(&self, prefix: &str, store: &ParamStore) -> candle_core::Result<BatchNorm> {
        let weight = store.insert_copy(&format!("{prefix}.weight"), &self.weight)?;
        let bias = store.insert_copy(&format!("{prefix}.bias"), &self.bias)?;
        store.insert_copy(&format!("{prefix}.running_mean"), self.running_mean.as_tensor())?;
        store.insert_copy(&format!("{prefix}.running_var"), self.running_var.as_tensor())?;
        let buffer =
            |suffix: &str| store.var(&format!("{prefix}.{suffix}")).ok_or_else(|| candle_core::Error::Msg(format!("missing buffer {prefix}.{suffix}")));
        Ok(BatchNorm { weight, bias, running_mean: buffer("running_mean")?, running_var: buffer("running_var")?, channels: self.channels })
    }

    /// BN (+ ReLU when `relu`) with the fused op; training mode also updates the running statistics.
    /// `mode.bn` picks the statistics; `mode.frozen_weights` holds gamma and beta constant.
    pub fn forward(&self, x: &Tensor, mode: ForwardMode, relu: bool) -> candle_core::Result<Tensor> {
        let (mean, var, train) = self.statistics(x, mode)?;
        batch_norm_fused(x, &mode.weight(&self.weight), &mode.weight(&self.bias), &mean, &var, BnOptions { eps: BN_EPS, relu, train })
    }

    /// ReLU(BN(x) + residual): a residual block's ending, fused where the device allows.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        let (mean, var, train) = self.statistics(x, mode)?;
        let options = BnOptions { eps: BN_EPS, relu: true, train };
        batch_norm_add_relu(x, &mode.weight(&self.weight), &mode.weight(&self.bias), &mean, &var, residual, options)
    }

    /// ReLU?(BN(conv(x, w)) + residual?) in training mode outside Candle's graph (CPU:
    /// `ops::conv_bn`), updating the running statistics; returns the output and the unit's
    /// record for its backward.
    pub fn train_unit(&self, x: &Tensor, w: &Tensor, params: ConvParams, residual: Option<&Tensor>, relu: bool) -> candle_core::Result<(Tensor, TrainUnit)> {
        let (z, unit, mean, var) = train_unit(x, w, &self.weight, &self.bias, residual, relu, params, BN_EPS)?;
        self.update_running_stats(&z, &mean, &var)?;
        Ok((z, unit))
    }

    /// gamma and beta, the parameters a training unit's `gamma` and `beta` gradients are for.
    pub fn affine_params(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    /// Eval mode as a per-channel affine map: (gamma / sqrt(running_var + eps),
    /// beta - running_mean * scale), detached.
    pub fn eval_affine(&self) -> candle_core::Result<(Tensor, Tensor)> {
        let dtype = self.running_var.dtype();
        let scale = (self.weight.detach().to_dtype(dtype)? * (self.running_var.as_tensor() + BN_EPS)?.sqrt()?.recip()?)?;
        let shift = (self.bias.detach().to_dtype(dtype)? - (self.running_mean.as_tensor() * &scale)?)?;
        Ok((scale, shift))
    }

    /// The statistics `mode` asks for (updating the running ones in training), and whether they
    /// are the batch's.
    fn statistics(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<(Tensor, Tensor, bool)> {
        Ok(match mode.bn {
            BnMode::Train => {
                let (mean, var) = batch_stats(x)?;
                self.update_running_stats(x, &mean, &var)?;
                (mean, var, true)
            }
            BnMode::Eval => (self.running_mean.as_tensor().clone(), self.running_var.as_tensor().clone(), false),
        })
    }

    fn update_running_stats(&self, x: &Tensor, mean: &Tensor, var: &Tensor) -> candle_core::Result<()> {
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f64;
        let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        let dtype = self.running_mean.dtype();
        let rm = self.running_mean.as_tensor().affine(1.0 - BN_MOMENTUM, 0.0)?;
        self.running_mean.set(&(rm + mean.to_dtype(dtype)?.affine(BN_MOMENTUM, 0.0)?)?)?;
        let rv = self.running_var.as_tensor().affine(1.0 - BN_MOMENTUM, 0.0)?;
        self.running_var.set(&(rv + var.to_dtype(dtype)?.affine(BN_MOMENTUM * unbiased, 0.0)?)?)?;
        Ok(())
    }
}

/// Per-channel mean over (N, H, W), shape [1, C, 1, 1].
pub fn channel_mean(x: &Tensor) -> candle_core::Result<Tensor> {
    x.mean_keepdim((0, 2, 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamStore;
    use candle_core::{DType, Device};

    #[test]
    fn train_mode_normalises_and_updates_running_stats_like_pytorch() {
        let store = ParamStore::new(0, DType::F64, &Device::Cpu);
        let bn = batch_norm(2, store.var_builder().pp("bn"), &store).unwrap();
        // Channel 0 holds 1..=8, channel 1 holds 2 * (1..=8) (N = 2, H = 2, W = 2).
        let v: Vec<f64> = (0..16)
            .map(|i| {
                let (n, c, p) = (i / 8, (i / 4) % 2, i % 4);
                ((n * 4 + p + 1) * (c + 1)) as f64
            })
            .collect();
        let x = Tensor::from_vec(v, (2, 2, 2, 2), &Device::Cpu).unwrap();
        let y = bn.forward(&x, ForwardMode::TRAIN_CLEAN, false).unwrap();
        let mean = y.mean_keepdim((0, 2, 3)).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let var = y.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!(mean.iter().all(|m| m.abs() < 1e-12));
        assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-5));
        // torch: running_mean = 0.1 * 4.5, running_var = 0.9 + 0.1 * unbiased var (6.0 for 1..=8).
        let rm = bn.running_mean.as_tensor().to_vec1::<f64>().unwrap();
        let rv = bn.running_var.as_tensor().to_vec1::<f64>().unwrap();
        assert!((rm[0] - 0.45).abs() < 1e-12 && (rm[1] - 0.9).abs() < 1e-12, "{rm:?}");
        assert!((rv[0] - 1.5).abs() < 1e-12 && (rv[1] - (0.9 + 0.1 * 24.0)).abs() < 1e-12, "{rv:?}");
        // Eval mode uses the running statistics and writes nothing.
        let before = bn.running_mean.as_tensor().to_vec1::<f64>().unwrap();
        bn.forward(&x, ForwardMode::EVAL_CLEAN, false).unwrap();
        assert_eq!(before, bn.running_mean.as_tensor().to_vec1::<f64>().unwrap());
    }
}
