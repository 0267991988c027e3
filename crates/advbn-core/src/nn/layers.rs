//! Convolution and linear layers initialised like torchvision's ResNet
//! (kaiming-normal fan-out for convs, PyTorch's default uniform for the classifier).

use candle_core::Tensor;
use candle_nn::{Init, Linear, VarBuilder};

use super::mode::ForwardMode;
use crate::ops::conv::{conv2d as conv2d_op, ConvParams};

/// A bias-free 2-d convolution (dilation 1, groups 1), weight `[out, in, k, k]`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    weight: Tensor,
    params: ConvParams,
}

impl Conv2d {
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn params(&self) -> ConvParams {
        self.params
    }

    pub fn forward(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        conv2d_op(x, &mode.weight(&self.weight), self.params)
    }
}

/// A bias-free conv named `<prefix>.weight`.
pub fn conv2d(in_channels: usize, out_channels: usize, kernel: usize, stride: usize, padding: usize, vb: VarBuilder) -> candle_core::Result<Conv2d> {
    let fan_out = (out_channels * kernel * kernel) as f64;
    let init = Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() };
    let weight = vb.get_with_hints((out_channels, in_channels, kernel, kernel), "weight", init)?;
    Ok(Conv2d { weight, params: ConvParams { stride, padding } })
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
