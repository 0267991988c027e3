//! Evaluation of a batch: summed cross-entropy and top-1 hits, without perturbation.

pub mod metrics;

use candle_core::{DType, Tensor};

use crate::error::Result;
use crate::models::ResNet;
use crate::nn::readout::{count_correct, scalar};
use crate::nn::{BnBranch, BnMode, ForwardMode};

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EvalStats {
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
}

impl EvalStats {
    pub fn merge(self, other: EvalStats) -> EvalStats {
        EvalStats { loss_sum: self.loss_sum + other.loss_sum, correct: self.correct + other.correct, count: self.count + other.count }
    }

    pub fn accuracy(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.correct as f64 / self.count as f64
        }
    }
}

/// Logits of the whole network in eval mode with the chosen BN branch, as f32.
pub fn predict(model: &ResNet, images: &Tensor, branch: BnBranch) -> Result<Tensor> {
    model.check_input(images)?;
    check_branch(model, branch)?;
    // Weights are constants here: no autograd graph is recorded.
    let mode = ForwardMode::new(BnMode::Eval, branch).with_frozen_weights();
    crate::threads::run_on(model.device(), || Ok(model.forward(images, mode)?.detach().to_dtype(DType::F32)?))
}

pub fn evaluate_batch(model: &ResNet, images: &Tensor, labels: &Tensor, branch: BnBranch) -> Result<EvalStats> {
    let logits = predict(model, images, branch)?;
    let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
    let count = images.dim(0)?;
    Ok(EvalStats { loss_sum: scalar(&loss)? * count as f64, correct: count_correct(&logits, labels)?, count })
}

fn check_branch(model: &ResNet, branch: BnBranch) -> Result<()> {
    if branch == BnBranch::Adv && !model.has_adv_bn() {
        return Err(crate::Error::invalid_option("bn", "\"adv\"", "this model has no adversarial BN branch yet: fine-tune it with method 'advbn' first"));
    }
    Ok(())
}
