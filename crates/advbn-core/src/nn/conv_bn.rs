//! A conv followed by its BatchNorm, then optionally a residual and a ReLU: the unit every ResNet
//! layer is made of. On the CPU, in eval mode with constant weights (AdvBN's attack steps,
//! evaluation, the frozen encoder) the BN is folded into the conv (`ops::conv_affine`: one pass
//! fewer each way, and one tensor fewer in the graph); the CPU training step and the attack's
//! passes record their units outside Candle's graph ([`conv_bn_recorded`]); otherwise the conv
//! op and the BN op.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::layers::Conv2d;
use super::mode::{BnMode, ForwardMode};
use super::DualBatchNorm;
use crate::ops::conv_affine::{conv_affine, conv_affine_recorded, supported, FrozenUnit};
use crate::ops::conv_bn::TrainUnit;
use crate::ops::gradient::Grad;

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

/// A unit computed outside Candle's graph: a training-mode one with the parameters its
/// gradients are for, or a frozen eval-mode one (the attack's), which gives only its input's.
pub enum RecordedUnit {
    Train { unit: TrainUnit, weight: Tensor, gamma: Tensor, beta: Tensor },
    Frozen(FrozenUnit),
}

/// [`conv_bn`] without a graph, in the two modes the CPU records: training (batch statistics,
/// running statistics updated; float32 or float64, `ops::conv_bn::supported`, a residual comes
/// with the ReLU) and eval with frozen weights (the folded conv). The output and the record its
/// backward needs.
pub fn conv_bn_recorded(
    conv: &Conv2d,
    bn: &DualBatchNorm,
    x: &Tensor,
    mode: ForwardMode,
    residual: Option<&Tensor>,
    relu: bool,
) -> candle_core::Result<(Tensor, RecordedUnit)> {
    match (mode.bn, mode.frozen_weights) {
        (BnMode::Train, false) => {
            let bn = bn.branch(mode);
            let (z, unit) = bn.train_unit(x, conv.weight(), conv.params(), residual, relu)?;
            let (gamma, beta) = bn.affine_params();
            Ok((z, RecordedUnit::Train { unit, weight: conv.weight().clone(), gamma: gamma.clone(), beta: beta.clone() }))
        }
        (BnMode::Eval, true) => {
            let (scale, shift) = bn.eval_affine(mode)?;
            let (z, unit) = conv_affine_recorded(x, conv.weight(), &scale, &shift, residual, relu, conv.params())?;
            Ok((z, RecordedUnit::Frozen(unit)))
        }
        _ => candle_core::bail!("recorded units train (batch statistics, trainable weights) or run frozen in eval mode, got {mode:?}"),
    }
}

impl RecordedUnit {
    /// Back-propagates `grad` (the output's gradient): adds a training unit's weight, gamma and
    /// beta gradients to `grads` and returns the input's (when `need_x`) and the residual's (for
    /// a unit that adds one).
    pub fn backward(&self, grad: &Grad, need_x: bool, grads: &mut GradStore) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        match self {
            RecordedUnit::Train { unit, weight, gamma, beta } => {
                let g = unit.backward(grad, need_x)?;
                accumulate(grads, weight, g.w)?;
                accumulate(grads, gamma, g.gamma.to_dtype(gamma.dtype())?)?;
                accumulate(grads, beta, g.beta.to_dtype(beta.dtype())?)?;
                Ok((g.x, g.residual))
            }
            RecordedUnit::Frozen(unit) => unit.backward(grad, need_x),
        }
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
