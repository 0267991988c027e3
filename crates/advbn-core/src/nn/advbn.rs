//! The AdvBN operation: y = beta * (x - mu) + alpha * mu, then max(y, 0) when the cut follows a
//! ReLU. mu is the per-channel batch mean over (N, H, W); alpha and beta are [1, C, 1, 1] and
//! shared by the batch. The reference also computes the variance but never divides by it, so
//! the perturbation scales the channel mean by alpha and the channel std by beta.
//!
//! mu stays differentiable here, so the op is a true function of x (its input gradient matches
//! finite differences). In the method x comes from the frozen, detached encoder, so this costs
//! nothing there.

use candle_core::Tensor;

use super::batch_norm::channel_mean;

/// Applies the AdvBN perturbation to a feature batch `x` [N, C, H, W] with the fused op.
pub fn advbn(x: &Tensor, alpha: &Tensor, beta: &Tensor, relu_clamp: bool) -> candle_core::Result<Tensor> {
    crate::ops::advbn::advbn_fused(x, alpha, beta, relu_clamp)
}

/// The same function from Candle's differentiable primitives: the reference the fused op is
/// tested against.
pub fn advbn_reference(x: &Tensor, alpha: &Tensor, beta: &Tensor, relu_clamp: bool) -> candle_core::Result<Tensor> {
    let mu = channel_mean(x)?;
    let centered = x.broadcast_sub(&mu)?;
    let y = centered.broadcast_mul(beta)?.broadcast_add(&mu.broadcast_mul(alpha)?)?;
    if relu_clamp {
        // PyTorch's ReLU passes no gradient at exactly 0 (Candle's passes it). With alpha = beta
        // every zero input maps to exactly 0, so the choice decides the attack's first signs:
        // follow the reference.
        let keep = y.gt(0.0)?.to_dtype(y.dtype())?;
        y * keep
    } else {
        Ok(y)
    }
}
