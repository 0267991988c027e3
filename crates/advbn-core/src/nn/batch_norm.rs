//! BatchNorm2d with torchvision semantics (eps 1e-5, momentum 0.1, unbiased running variance),
//! whose mode is chosen per call: AdvBN's attack needs passes that never touch running stats.

use candle_core::{Tensor, Var};
use candle_nn::VarBuilder;

use super::mode::BnMode;
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
        let buffer = |suffix: &str| {
            store
                .var(&format!("{prefix}.{suffix}"))
                .ok_or_else(|| candle_core::Error::Msg(format!("missing buffer {prefix}.{suffix}")))
        };
        Ok(BatchNorm {
            weight,
            bias,
            running_mean: buffer("running_mean")?,
            running_var: buffer("running_var")?,
            channels: self.channels,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: BnMode) -> candle_core::Result<Tensor> {
        let shape = (1, self.channels, 1, 1);
        let (mean, var) = match mode {
            BnMode::Train => {
                let mean = x.mean_keepdim((0, 2, 3))?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
                self.update_running_stats(x, &mean, &var)?;
                let inv_std = (var + BN_EPS)?.sqrt()?.recip()?;
                let scale = inv_std.broadcast_mul(&self.weight.reshape(shape)?)?;
                return centered.broadcast_mul(&scale)?.broadcast_add(&self.bias.reshape(shape)?);
            }
            BnMode::Eval => (self.running_mean.as_tensor().detach(), self.running_var.as_tensor().detach()),
        };
        // Eval folds the statistics into one scale and shift: two passes over x instead of four.
        let scale = (var + BN_EPS)?.sqrt()?.recip()?.mul(&self.weight)?;
        let shift = self.bias.sub(&mean.mul(&scale)?)?;
        x.broadcast_mul(&scale.reshape(shape)?)?.broadcast_add(&shift.reshape(shape)?)
    }

    fn update_running_stats(&self, x: &Tensor, mean: &Tensor, var: &Tensor) -> candle_core::Result<()> {
        let (n, _, h, w) = x.dims4()?;
        let count = (n * h * w) as f64;
        let unbiased = if count > 1.0 { count / (count - 1.0) } else { 1.0 };
        let mean = mean.detach().flatten_all()?;
        let var = var.detach().flatten_all()?;
        let rm = self.running_mean.as_tensor().affine(1.0 - BN_MOMENTUM, 0.0)?;
        self.running_mean.set(&(rm + mean.affine(BN_MOMENTUM, 0.0)?)?)?;
        let rv = self.running_var.as_tensor().affine(1.0 - BN_MOMENTUM, 0.0)?;
        self.running_var.set(&(rv + var.affine(BN_MOMENTUM * unbiased, 0.0)?)?)?;
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
        let v: Vec<f64> = (0..16).map(|i| { let (n, c, p) = (i / 8, (i / 4) % 2, i % 4); ((n * 4 + p + 1) * (c + 1)) as f64 }).collect();
        let x = Tensor::from_vec(v, (2, 2, 2, 2), &Device::Cpu).unwrap();
        let y = bn.forward(&x, BnMode::Train).unwrap();
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
        bn.forward(&x, BnMode::Eval).unwrap();
        assert_eq!(before, bn.running_mean.as_tensor().to_vec1::<f64>().unwrap());
    }
}
