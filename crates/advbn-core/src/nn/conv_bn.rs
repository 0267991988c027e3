//! A conv followed by its BatchNorm, then optionally a residual and a ReLU: the unit every ResNet
//! layer is made of. On the CPU, in eval mode with constant weights (AdvBN's attack steps,
//! evaluation, the frozen encoder) the BN is folded into the conv (`ops::conv_affine`: one pass
//! fewer each way, and one tensor fewer in the graph); the CPU training step records its units
//! outside Candle's graph ([`conv_bn_recorded`]); otherwise the conv op and the BN op.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::layers::Conv2d;
use super::mode::{BnMode, ForwardMode};
use super::DualBatchNorm;
use crate::ops::conv_affine::{conv_affine, supported};
use crate::ops::conv_bn::TrainUnit;

/// ReLU?(BN(conv(x)) + residual?) with the BN branch and statistics `mode` selects.
pub fn conv_bn(conv: &Conv2d, bn: &DualBatchNorm, x: &Tensor, mode: ForwardMode, residual: Option<&Tensor>, relu: bool) -> candle_core::Result<Tensor> {
    if mode.bn == BnMode::Eval && mode.frozen_weights && supported(x) {
        let (scale, shift) = bn.eval_affine(mode)?;
        return conv_affine(x, conv.weight(), &scale, &shift, residual, relu, conv.params());
    }
    let y = conv.forward(x, mode)?;
    match residual {
        Some(r) if relu => bn.forward_add_relu(&y, r, mode),
        Some(r) => bn.forward(&y, mode, false)? + r,
        None => bn.forward(&y, mode, relu),
    }
}

/// A training-mode unit computed outside Candle's graph, with the parameters its gradients are
/// for.
pub struct RecordedUnit {
    unit: TrainUnit,
    weight: Tensor,
    gamma: Tensor,
    beta: Tensor,
}

/// [`conv_bn`] in training mode (batch statistics, running statistics updated) without a graph:
/// the output and the record its backward needs. CPU, float32 or float64
/// (`ops::conv_bn::supported`); a residual comes with the ReLU.
pub fn conv_bn_recorded(
    conv: &Conv2d,
    bn: &DualBatchNorm,
    x: &Tensor,
    mode: ForwardMode,
    residual: Option<&Tensor>,
    relu: bool,
) -> candle_core::Result<(Tensor, RecordedUnit)> {
    if mode.bn != BnMode::Train || mode.frozen_weights {
        candle_core::bail!("recorded units train: batch statistics and trainable weights, got {mode:?}");
    }
    let bn = bn.branch(mode);
    let (z, unit) = bn.train_unit(x, conv.weight(), conv.params(), residual, relu)?;
    let (gamma, beta) = bn.affine_params();
    Ok((z, RecordedUnit { unit, weight: conv.weight().clone(), gamma: gamma.clone(), beta: beta.clone() }))
}

impl RecordedUnit {
    /// Back-propagates `grad` (the output's gradient): adds the weight's, gamma's and beta's
    /// gradients to `grads` and returns the input's (when `need_x`) and the residual's (for a
    /// unit that adds one).
    pub fn backward(&self, grad: &Tensor, need_x: bool, grads: &mut GradStore) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.unit.backward(grad, need_x)?;
        accumulate(grads, &self.weight, g.w)?;
        accumulate(grads, &self.gamma, g.gamma.to_dtype(self.gamma.dtype())?)?;
        accumulate(grads, &self.beta, g.beta.to_dtype(self.beta.dtype())?)?;
        Ok((g.x, g.residual))
    }
}

/// Adds `grad` to `param`'s gradient in `grads` (a parameter shared by two passes, as the conv
/// weights are by AdvBN's clean and adversarial ones, gets the sum, as through Candle's graph).
pub fn accumulate(grads: &mut GradStore, param: &Tensor, grad: Tensor) -> candle_core::Result<()> {
    let sum = match grads.remove(param) {
        Some(previous) => (previous + grad)?,
        None => grad,
    };
    grads.insert(param, sum);
    Ok(())
}
