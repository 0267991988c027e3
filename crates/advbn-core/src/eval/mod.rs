//! Evaluation of a batch: summed cross-entropy and top-1 hits, without perturbation; with
//! [`evaluate_batch_top_k`], also each sample's k best classes (top-5 accuracy, confusion matrix).

pub mod files;
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

/// One batch evaluated with each sample's best classes: what top-k accuracy, per-class accuracy
/// and a confusion matrix are counted from.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKEval {
    /// Loss and top-1 hits; `correct` counts the rows whose first entry of `top_k` is the label.
    pub stats: EvalStats,
    /// Classes per row in `top_k`: `min(k, num_classes)`.
    pub k: usize,
    /// Row-major `[count, k]`: each sample's `k` best classes, best first.
    pub top_k: Vec<u32>,
    /// The labels, one per sample.
    pub labels: Vec<u32>,
}

/// [`evaluate_batch`] plus each sample's `k` best classes (`k` is capped at the class count).
pub fn evaluate_batch_top_k(model: &ResNet, images: &Tensor, labels: &Tensor, branch: BnBranch, k: usize) -> Result<TopKEval> {
    let logits = predict(model, images, branch)?;
    let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
    let count = images.dim(0)?;
    let (top_k, k) = top_k_classes(&logits, k)?;
    let labels: Vec<u32> = labels.to_dtype(DType::U32)?.to_vec1()?;
    let correct = labels.iter().enumerate().filter(|&(row, &label)| top_k[row * k] == label).count();
    Ok(TopKEval { stats: EvalStats { loss_sum: scalar(&loss)? * count as f64, correct, count }, k, top_k, labels })
}

/// The `k` largest entries of each row of `logits` (`[rows, classes]`) as class indices, best
/// first, row-major; `k` is capped at the class count. Ties go to the lower index (so the first
/// column is the arg-max), and NaN ranks below every number.
pub fn top_k_classes(logits: &Tensor, k: usize) -> Result<(Vec<u32>, usize)> {
    if k == 0 {
        return Err(crate::Error::invalid_option("k", "0", "at least 1"));
    }
    let rows: Vec<Vec<f32>> = logits.to_dtype(DType::F32)?.to_vec2()?;
    let classes = rows.first().map_or(0, Vec::len);
    let k = k.min(classes);
    let mut out = Vec::with_capacity(rows.len() * k);
    let mut order: Vec<u32> = Vec::with_capacity(classes);
    for row in &rows {
        order.clear();
        order.extend(0..classes as u32);
        let key = |i: u32| {
            let v = row[i as usize];
            if v.is_nan() {
                f32::NEG_INFINITY
            } else {
                v
            }
        };
        // Stable: equal scores keep index order, so the lower index ranks first.
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then_with(|| row[a as usize].is_nan().cmp(&row[b as usize].is_nan())));
        out.extend_from_slice(&order[..k]);
    }
    Ok((out, k))
}

fn check_branch(model: &ResNet, branch: BnBranch) -> Result<()> {
    if branch == BnBranch::Adv && !model.has_adv_bn() {
        return Err(crate::Error::invalid_option("bn", "\"adv\"", "this model has no adversarial BN branch yet: fine-tune it with method 'advbn' first"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn top_k_ranks_best_first_with_ties_to_the_lower_index() {
        let logits = Tensor::new(&[[0.1f32, 0.9, 0.5, 0.9], [f32::NAN, -1.0, 2.0, 0.0]], &Device::Cpu).unwrap();
        let (top, k) = top_k_classes(&logits, 3).unwrap();
        assert_eq!(k, 3);
        assert_eq!(top, vec![1, 3, 2, 2, 3, 1]);
        // The first column is candle's arg-max.
        let argmax: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
        assert_eq!(argmax[0], top[0]);
        // k is capped at the class count; 0 is refused.
        assert_eq!(top_k_classes(&logits, 9).unwrap().1, 4);
        assert!(top_k_classes(&logits, 0).is_err());
    }
}
