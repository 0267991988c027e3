//! A conv followed by its BatchNorm, then optionally a residual and a ReLU: the unit every ResNet
//! layer is made of. On the CPU, in eval mode with constant weights (AdvBN's attack steps,
//! evaluation, the frozen encoder) the BN is folded into the conv (`ops::conv_affine`: one pass
//! fewer each way, and one tensor fewer in the graph), and in training mode a unit without a
//! residual is one node (`ops::conv_bn`: the conv output and its gradient stay out of the
//! graph); otherwise the conv op and the BN op.

use candle_core::Tensor;

use super::layers::Conv2d;
use super::mode::{BnMode, ForwardMode};
use super::DualBatchNorm;
use crate::ops::conv_affine::{conv_affine, supported};
use crate::ops::conv_bn;

/// ReLU?(BN(conv(x)) + residual?) with the BN branch and statistics `mode` selects.
pub fn conv_bn(conv: &Conv2d, bn: &DualBatchNorm, x: &Tensor, mode: ForwardMode, residual: Option<&Tensor>, relu: bool) -> candle_core::Result<Tensor> {
    if mode.bn == BnMode::Eval && mode.frozen_weights && supported(x) {
        let (scale, shift) = bn.eval_affine(mode)?;
        return conv_affine(x, conv.weight(), &scale, &shift, residual, relu, conv.params());
    }
    if mode.bn == BnMode::Train && relu && residual.is_none() && conv_bn::supported(x) {
        return bn.conv_relu_train(x, &mode.weight(conv.weight()), conv.params(), mode);
    }
    let y = conv.forward(x, mode)?;
    match residual {
        Some(r) if relu => bn.forward_add_relu(&y, r, mode),
        Some(r) => bn.forward(&y, mode, false)? + r,
        None => bn.forward(&y, mode, relu),
    }
}
