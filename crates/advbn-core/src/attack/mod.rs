//! The inner maximisation of AdvBN: sign-gradient ascent on the per-channel perturbation
//! (alpha, beta) of the feature statistics, projected onto the box [1 - eps, 1 + eps].

use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::models::ResNet;
use crate::nn::readout::scalar;
use crate::nn::{advbn, BnBranch, BnMode, ForwardMode};
use crate::options;

/// Attack settings; defaults are the reference's (K = 6, step 0.2, eps 1.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttackConfig {
    pub steps: usize,
    pub step_size: f64,
    pub epsilon: f64,
    pub relu_clamp: bool,
}

impl Default for AttackConfig {
    fn default() -> Self {
        Self {
            steps: options::ADVBN_STEPS.default_value() as usize,
            step_size: options::ADVBN_STEP_SIZE.default_value(),
            epsilon: options::ADVBN_EPSILON.default_value(),
            relu_clamp: true,
        }
    }
}

impl AttackConfig {
    pub fn validate(&self) -> Result<()> {
        options::ADVBN_STEPS.check(self.steps as f64)?;
        options::ADVBN_STEP_SIZE.check(self.step_size)?;
        options::ADVBN_EPSILON.check(self.epsilon).map(|_| ())
    }
}

/// The worst case found, and the losses before and after (tail in eval mode, adv BNs).
pub struct AttackResult {
    /// Perturbed features, detached.
    pub features: Tensor,
    pub alpha: Tensor,
    pub beta: Tensor,
    /// Loss of the unperturbed features (alpha = beta = 1).
    pub clean_loss: f64,
    /// Loss of the returned features.
    pub adv_loss: f64,
}

/// Runs K sign-gradient steps on alpha and beta from the identity (no random start).
/// The tail runs in eval mode through its adversarial BNs, so no running statistic moves.
pub fn attack(model: &ResNet, features: &Tensor, labels: &Tensor, cut: usize, cfg: &AttackConfig) -> Result<AttackResult> {
    let features = features.detach();
    let channels = features.dim(1)?;
    let ones = Tensor::ones((1, channels, 1, 1), features.dtype(), features.device())?;
    let alpha = Var::from_tensor(&ones)?;
    let beta = Var::from_tensor(&ones)?;
    let mode = ForwardMode::new(BnMode::Eval, BnBranch::Adv).with_frozen_weights();
    let (lo, hi) = (1.0 - cfg.epsilon, 1.0 + cfg.epsilon);
    let mut clean_loss = None;
    for _ in 0..cfg.steps {
        let y = advbn(&features, alpha.as_tensor(), beta.as_tensor(), cfg.relu_clamp)?;
        let logits = model.forward_tail(&y, cut, mode)?;
        let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
        if clean_loss.is_none() {
            clean_loss = Some(scalar(&loss)?);
        }
        let grads = loss.backward()?;
        for var in [&alpha, &beta] {
            let grad = grads.get(var.as_tensor()).ok_or_else(|| candle_core::Error::Msg("AdvBN attack: no gradient for alpha/beta".into()))?;
            let next = (var.as_tensor() + (grad.sign()? * cfg.step_size)?)?.clamp(lo, hi)?;
            var.set(&next)?;
        }
    }
    let y = advbn(&features, alpha.as_tensor(), beta.as_tensor(), cfg.relu_clamp)?.detach();
    let adv_loss = scalar(&candle_nn::loss::cross_entropy(&model.forward_tail(&y, cut, mode)?, labels)?)?;
    let clean_loss = match clean_loss {
        Some(l) => l,
        None => adv_loss, // K = 0: the "perturbed" features are the clean ones
    };
    Ok(AttackResult { features: y, alpha: alpha.as_tensor().detach(), beta: beta.as_tensor().detach(), clean_loss, adv_loss })
}
