//! Convolution and linear layers initialised like torchvision's ResNet
//! (kaiming-normal fan-out for convs, PyTorch's default uniform for the classifier).

use candle_core::Tensor;
use candle_nn::{Conv2d, Conv2dConfig, Init, Linear, VarBuilder};

/// A bias-free conv named `<prefix>.weight`.
pub fn conv2d(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> candle_core::Result<Conv2d> {
    let fan_out = (out_channels * kernel * kernel) as f64;
    let init = Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() };
    let weight = vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
    let cfg = Conv2dConfig { padding, stride, dilation: 1, groups: 1, cudnn_fwd_algo: None };
    Ok(Conv2d::new(weight, None, cfg))
}

/// The classifier `fc.{weight,bias}`.
pub fn linear(in_features: usize, out_features: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let bound = 1.0 / (in_features as f64).sqrt();
    let init = Init::Uniform { lo: -bound, up: bound };
    let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
    let bias = vb.get_with_hints(out_features, "bias", init)?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Global average pooling, [N, C, H, W] -> [N, C].
pub fn global_avg_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    x.mean((2, 3))
}
