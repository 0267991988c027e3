//! A BatchNorm pair (AdvProp-style auxiliary BN): clean inputs use the clean BN, perturbed
//! inputs the adversarial one. The adversarial branch exists only once a fine-tune creates it.

use candle_core::Tensor;

use super::batch_norm::BatchNorm;
use super::mode::{BnBranch, ForwardMode};
use crate::params::ParamStore;

/// Prefix of the adversarial BN copies in the parameter store: `adv.layer2.0.bn1.weight`.
pub const ADV_BN_PREFIX: &str = "adv";

#[derive(Clone)]
pub struct DualBatchNorm {
    name: String,
    clean: BatchNorm,
    adv: Option<BatchNorm>,
}

impl DualBatchNorm {
    pub fn new(name: String, clean: BatchNorm) -> Self {
        Self { name, clean, adv: None }
    }

    pub fn has_adv(&self) -> bool {
        self.adv.is_some()
    }

    /// Creates the adversarial branch as a copy of the clean one (no-op if it exists).
    pub fn ensure_adv(&mut self, store: &ParamStore) -> candle_core::Result<()> {
        if self.adv.is_none() {
            let prefix = format!("{ADV_BN_PREFIX}.{}", self.name);
            self.adv = Some(self.clean.duplicate(&prefix, store)?);
        }
        Ok(())
    }

    /// BN of the branch `mode` selects, followed by a ReLU in the same pass when `relu`.
    pub fn forward(&self, x: &Tensor, mode: ForwardMode, relu: bool) -> candle_core::Result<Tensor> {
        self.branch(mode).forward(x, mode, relu)
    }

    /// ReLU(BN(x) + residual) with the branch `mode` selects.
    pub fn forward_add_relu(&self, x: &Tensor, residual: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        self.branch(mode).forward_add_relu(x, residual, mode)
    }

    /// The eval-mode affine map of the branch `mode` selects (see `BatchNorm::eval_affine`).
    pub fn eval_affine(&self, mode: ForwardMode) -> candle_core::Result<(Tensor, Tensor)> {
        self.branch(mode).eval_affine()
    }

    /// The branch `mode` selects (the clean one while no adversarial branch exists).
    pub fn branch(&self, mode: ForwardMode) -> &BatchNorm {
        // BNs without an adversarial copy (the frozen encoder's) serve both branches:
        // the encoder is shared by clean and perturbed inputs.
        match (mode.branch, &self.adv) {
            (BnBranch::Adv, Some(adv)) => adv,
            _ => &self.clean,
        }
    }
}
