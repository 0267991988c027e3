//! The inner maximisation of AdvBN: sign-gradient ascent on the per-channel perturbation
//! (alpha, beta) of the feature statistics, projected onto the box [1 - eps, 1 + eps].

use candle_core::{Tensor, Var};

use crate::error::Result;
use crate::models::{backprop, ResNet};
use crate::nn::readout::scalar;
use crate::nn::{advbn, BnBranch, BnMode, ForwardMode};
use crate::ops::advbn::AdvBnFeatures;
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
/// The tail runs in eval mode through its adversarial BNs, so no running statistic moves. On the
/// CPU the passes run outside Candle's graph (`models::backprop`: only the gradient of the tail's
/// input is computed, and no intermediate gradient is accumulated by Candle's adds), with the
/// graph's arithmetic: the same perturbation bit for bit.
pub fn attack(model: &ResNet, features: &Tensor, labels: &Tensor, cut: usize, cfg: &AttackConfig) -> Result<AttackResult> {
    let recorded = backprop::records(features, ATTACK_MODE);
    attack_passes(model, features, labels, cut, cfg, recorded)
}

/// The tail's mode in the attack: running statistics of the adversarial BNs, no weight gradient.
const ATTACK_MODE: ForwardMode = ForwardMode::new(BnMode::Eval, BnBranch::Adv).with_frozen_weights();

fn attack_passes(model: &ResNet, features: &Tensor, labels: &Tensor, cut: usize, cfg: &AttackConfig, recorded: bool) -> Result<AttackResult> {
    let features = features.detach();
    let channels = features.dim(1)?;
    let ones = Tensor::ones((1, channels, 1, 1), features.dtype(), features.device())?;
    let (mut alpha, mut beta) = (ones.clone(), ones);
    let (lo, hi) = (1.0 - cfg.epsilon, 1.0 + cfg.epsilon);
    let mut clean_loss = None;
    // The features' channel means, once for the K steps.
    let perturbable = recorded.then(|| AdvBnFeatures::new(&features)).transpose()?;
    for _ in 0..cfg.steps {
        let (loss, d_alpha, d_beta) = if let Some(perturbable) = &perturbable {
            recorded_gradients(model, perturbable, &alpha, &beta, labels, cut, cfg.relu_clamp)?
        } else {
            graph_gradients(model, &features, &alpha, &beta, labels, cut, cfg.relu_clamp)?
        };
        clean_loss.get_or_insert(loss);
        alpha = (&alpha + (d_alpha.sign()? * cfg.step_size)?)?.clamp(lo, hi)?;
        beta = (&beta + (d_beta.sign()? * cfg.step_size)?)?.clamp(lo, hi)?;
    }
    let y = advbn(&features, &alpha, &beta, cfg.relu_clamp)?.detach();
    let adv_loss = scalar(&candle_nn::loss::cross_entropy(&model.forward_tail(&y, cut, ATTACK_MODE)?, labels)?)?;
    let clean_loss = match clean_loss {
        Some(l) => l,
        None => adv_loss, // K = 0: the "perturbed" features are the clean ones
    };
    Ok(AttackResult { features: y, alpha, beta, clean_loss, adv_loss })
}

/// One attack pass through Candle's graph: the loss and its gradients for alpha and beta.
fn graph_gradients(model: &ResNet, features: &Tensor, alpha: &Tensor, beta: &Tensor, labels: &Tensor, cut: usize, relu: bool) -> Result<(f64, Tensor, Tensor)> {
    let (alpha, beta) = (Var::from_tensor(alpha)?, Var::from_tensor(beta)?);
    let y = advbn(features, alpha.as_tensor(), beta.as_tensor(), relu)?;
    let loss = candle_nn::loss::cross_entropy(&model.forward_tail(&y, cut, ATTACK_MODE)?, labels)?;
    let grads = loss.backward()?;
    let grad = |var: &Var| grads.get(var.as_tensor()).cloned().ok_or_else(|| candle_core::Error::Msg("AdvBN attack: no gradient for alpha/beta".into()));
    Ok((scalar(&loss)?, grad(&alpha)?, grad(&beta)?))
}

/// The same pass recorded outside the graph; only the head and the loss are in one.
fn recorded_gradients(
    model: &ResNet,
    features: &AdvBnFeatures,
    alpha: &Tensor,
    beta: &Tensor,
    labels: &Tensor,
    cut: usize,
    relu: bool,
) -> Result<(f64, Tensor, Tensor)> {
    let (y, perturbation) = features.perturb(alpha, beta, relu)?;
    let (map, tail) = backprop::forward_tail_recorded(model, &y, cut, ATTACK_MODE)?;
    let map = Var::from_tensor(&map)?;
    let loss = candle_nn::loss::cross_entropy(&model.head(map.as_tensor())?, labels)?;
    let mut grads = loss.backward()?;
    let d_map =
        grads.remove(map.as_tensor()).ok_or_else(|| candle_core::Error::Msg("AdvBN attack: the loss has no gradient for the tail's feature map".into()))?;
    let d_y = tail.input_gradient(&d_map, &mut grads)?;
    let (d_alpha, d_beta) = perturbation.param_grads(&d_y)?;
    Ok((scalar(&loss)?, d_alpha, d_beta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, ModelConfig};
    use candle_core::{DType, Device};

    fn bits(t: &Tensor) -> Vec<u64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The recorded passes find the perturbation the graph's find, bit for bit: alpha, beta,
    /// the perturbed features and both losses.
    fn check(arch: Arch, dtype: DType, cut: usize, side: usize, relu_clamp: bool) {
        let case = format!("{arch:?}, {dtype:?}, cut {cut}, clamp {relu_clamp}");
        let mut config = ModelConfig::new(arch, 5);
        config.dtype = dtype;
        config.seed = 13;
        let mut model = ResNet::new(config, &Device::Cpu).unwrap();
        model.ensure_adv_bn(cut).unwrap();
        let n = 6 * 3 * side * side;
        let v: Vec<f32> = (0..n).map(|i| ((((i as u64 + 5) * 2_654_435_761) % 1000) as f32 / 500.0) - 0.9).collect();
        let images = Tensor::from_vec(v, (6, 3, side, side), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
        let labels = Tensor::new(&[0u32, 3, 1, 4, 2, 0], &Device::Cpu).unwrap();
        let features = model.encode(&images, cut).unwrap();
        assert!(backprop::records(&features, ATTACK_MODE), "{case}");
        let cfg = AttackConfig { relu_clamp, ..AttackConfig::default() };
        let graph = attack_passes(&model, &features, &labels, cut, &cfg, false).unwrap();
        let recorded = attack_passes(&model, &features, &labels, cut, &cfg, true).unwrap();
        assert_eq!(bits(&graph.alpha), bits(&recorded.alpha), "{case}: alpha");
        assert_eq!(bits(&graph.beta), bits(&recorded.beta), "{case}: beta");
        assert_eq!(bits(&graph.features), bits(&recorded.features), "{case}: perturbed features");
        assert_eq!((graph.clean_loss.to_bits(), graph.adv_loss.to_bits()), (recorded.clean_loss.to_bits(), recorded.adv_loss.to_bits()), "{case}: losses");
        // Not a trivial agreement: the attack moved alpha off the identity and raised the loss.
        assert!(bits(&recorded.alpha) != bits(&Tensor::ones_like(&recorded.alpha).unwrap()), "{case}: alpha never moved");
        assert!(recorded.adv_loss > recorded.clean_loss, "{case}: {} -> {}", recorded.clean_loss, recorded.adv_loss);
    }

    #[test]
    fn recorded_passes_find_the_graphs_perturbation_bit_for_bit() {
        check(Arch::SmallResNet { depth: 14, width: 8 }, DType::F32, 1, 16, true);
        check(Arch::SmallResNet { depth: 8, width: 4 }, DType::F64, 2, 12, false);
        // Whole network: the stem (with the ImageNet max-pool) and downsampling blocks.
        check(Arch::ResNet18, DType::F32, 0, 32, false);
    }

    #[test]
    fn bottleneck_tails_find_the_graphs_perturbation_bit_for_bit() {
        check(Arch::ResNet50, DType::F32, 3, 32, true);
    }
}
