//! One optimisation step of AdvBN, or of a baseline it is compared against (plain fine-tuning,
//! ERM; MixStyle; DSU), on the tail of a cut model.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::optim::{Optimizer, OptimizerConfig};
use super::schedule::Schedule;
use crate::attack::{attack, AttackConfig};
use crate::error::{Error, Result};
use crate::models::backprop::{self, TailRecord};
use crate::models::ResNet;
use crate::nn::readout::{count_correct, scalar};
use crate::nn::{dsu, mixstyle, BnBranch, BnMode, DsuConfig, ForwardMode, MixStyleConfig};
use crate::options;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Plain fine-tuning of the tail: loss = CE(tail_clean(x)).
    Erm,
    /// loss = CE(tail_clean(x)) + CE(tail_adv(advbn(x; alpha*, beta*))).
    AdvBn,
    /// loss = CE(tail_clean(mixstyle(x))): per-instance styles mixed at the cut.
    MixStyle(MixStyleConfig),
    /// loss = CE(tail_clean(dsu(x))): per-instance statistics resampled at the cut.
    Dsu(DsuConfig),
    /// AdvBN on MixStyle's features: with m = mixstyle(x), loss = CE(tail_clean(m)) +
    /// CE(tail_adv(advbn(m; alpha*, beta*))), the attack starting from m. MixStyle varies the
    /// style per instance, AdvBN then moves the whole batch's statistics to the worst case.
    AdvBnMixStyle(MixStyleConfig),
    /// AdvBN on DSU's features, as `AdvBnMixStyle` with d = dsu(x) in place of m.
    AdvBnDsu(DsuConfig),
}

/// The per-instance style perturbation a method applies at the cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StylePerturbation {
    MixStyle(MixStyleConfig),
    Dsu(DsuConfig),
}

impl StylePerturbation {
    fn validate(&self) -> Result<()> {
        match self {
            StylePerturbation::MixStyle(cfg) => cfg.validate(),
            StylePerturbation::Dsu(cfg) => cfg.validate(),
        }
    }

    fn apply(&self, features: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        match self {
            StylePerturbation::MixStyle(cfg) => mixstyle(features, cfg, true, rng),
            StylePerturbation::Dsu(cfg) => dsu(features, cfg, true, rng),
        }
    }
}

impl Method {
    /// Every method's name, in the order of the docs.
    pub const NAMES: [&'static str; 6] = ["erm", "advbn", "mixstyle", "dsu", "advbn_mixstyle", "advbn_dsu"];

    /// A method by name; MixStyle and DSU get the reference's settings.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "erm" => Ok(Method::Erm),
            "advbn" => Ok(Method::AdvBn),
            "mixstyle" => Ok(Method::MixStyle(MixStyleConfig::default())),
            "dsu" => Ok(Method::Dsu(DsuConfig::default())),
            "advbn_mixstyle" => Ok(Method::AdvBnMixStyle(MixStyleConfig::default())),
            "advbn_dsu" => Ok(Method::AdvBnDsu(DsuConfig::default())),
            other => {
                let names: Vec<String> = Self::NAMES.iter().map(|n| format!("{n:?}")).collect();
                Err(Error::invalid_option("method", format!("{other:?}"), format!("expected one of {}", names.join(", "))))
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Method::Erm => "erm",
            Method::AdvBn => "advbn",
            Method::MixStyle(_) => "mixstyle",
            Method::Dsu(_) => "dsu",
            Method::AdvBnMixStyle(_) => "advbn_mixstyle",
            Method::AdvBnDsu(_) => "advbn_dsu",
        }
    }

    /// Whether the method trains an adversarial BN branch on AdvBN's worst-case features.
    pub fn is_adversarial(&self) -> bool {
        matches!(self, Method::AdvBn | Method::AdvBnMixStyle(_) | Method::AdvBnDsu(_))
    }

    /// The per-instance style perturbation applied to the features first, if any.
    pub fn style(&self) -> Option<StylePerturbation> {
        match *self {
            Method::Erm | Method::AdvBn => None,
            Method::MixStyle(cfg) | Method::AdvBnMixStyle(cfg) => Some(StylePerturbation::MixStyle(cfg)),
            Method::Dsu(cfg) | Method::AdvBnDsu(cfg) => Some(StylePerturbation::Dsu(cfg)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub method: Method,
    /// Freeze the stem and stages 1..=cut; 0 trains the whole network (ERM only).
    pub cut: usize,
    pub lr: f64,
    pub optimizer: OptimizerConfig,
    pub schedule: Schedule,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub attack: AttackConfig,
    /// Seeds MixStyle's and DSU's draws (each step's come from a stream fixed by the seed, the
    /// epoch and the step): same seed, same run.
    pub seed: u64,
}

impl TrainConfig {
    /// The reference's settings: SGD lr 1e-3, momentum 0.9, wd 1e-4, 20 epochs, x0.1 at epoch 10.
    pub fn reference(method: Method, steps_per_epoch: usize) -> Self {
        Self {
            method,
            cut: 1,
            lr: options::LR.default_value(),
            optimizer: OptimizerConfig::Sgd {
                momentum: options::SGD_MOMENTUM.default_value(),
                weight_decay: options::SGD_WEIGHT_DECAY.default_value(),
                nesterov: false,
            },
            schedule: Schedule::Step { milestones: vec![10.0], gamma: options::SCHEDULE_GAMMA.default_value() },
            epochs: options::EPOCHS.default_value() as usize,
            steps_per_epoch,
            attack: AttackConfig::default(),
            seed: 0,
        }
    }

    /// The scheduled learning rate at step `step` (0-based) of epoch `epoch`.
    pub fn lr_at(&self, epoch: usize, step: usize) -> f64 {
        let position = epoch as f64 + step as f64 / self.steps_per_epoch as f64;
        self.schedule.lr_at(self.lr, position, self.epochs)
    }

    pub fn validate(&self, model: &ResNet) -> Result<()> {
        options::LR.check(self.lr)?;
        options::EPOCHS.check(self.epochs as f64)?;
        if self.steps_per_epoch == 0 {
            return Err(Error::invalid_option("stepsPerEpoch", self.steps_per_epoch, "must be >= 1"));
        }
        self.optimizer.validate()?;
        self.schedule.validate(self.epochs)?;
        let method = self.method;
        if let Some(style) = method.style() {
            style.validate()?;
        }
        if method.is_adversarial() {
            self.attack.validate()?;
        }
        // Every method but plain fine-tuning perturbs feature maps at the cut, so there must be one.
        model.check_cut(self.cut, if method == Method::Erm { 0 } else { 1 })
    }
}

/// What one step measured. Losses are batch means.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepLogs {
    pub loss: f64,
    /// Through the clean BN branch; with MixStyle or DSU, of the features they perturbed.
    pub clean_loss: f64,
    pub adv_loss: Option<f64>,
    pub attack_loss: Option<f64>,
    pub attack_clean_loss: Option<f64>,
    pub alpha_range: Option<(f64, f64)>,
    pub beta_range: Option<(f64, f64)>,
    /// Predictions of the clean branch that match the labels (of the features `clean_loss` saw).
    pub correct: usize,
    /// Predictions of the adversarial branch on the attack's worst-case features that match the
    /// labels (the pass `adv_loss` is the loss of); `Some` for the adversarial methods only.
    pub adv_correct: Option<usize>,
    pub count: usize,
    pub lr: f64,
}

pub struct Trainer {
    config: TrainConfig,
    optimizer: Optimizer,
}

impl Trainer {
    /// Prepares `model` for the method (AdvBN adds the adversarial BN branch after the cut)
    /// and collects the tail's parameters.
    pub fn new(model: &mut ResNet, config: TrainConfig) -> Result<Self> {
        config.validate(model)?;
        if config.method.is_adversarial() {
            model.ensure_adv_bn(config.cut)?;
        }
        let params = model.params().select(|name| model.is_tail_param(name, config.cut)).into_iter().map(|(_, var)| var).collect();
        let optimizer = Optimizer::new(config.optimizer.clone(), params)?;
        Ok(Self { config, optimizer })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    pub fn trainable_params(&self) -> usize {
        self.optimizer.params().iter().map(|v| v.elem_count()).sum()
    }

    pub fn lr_at(&self, epoch: usize, step: usize) -> f64 {
        self.config.lr_at(epoch, step)
    }

    /// One step on a batch of images [N, C, H, W] and u32 labels [N] (on the CPU compute pool
    /// for CPU models).
    pub fn step(&mut self, model: &ResNet, images: &Tensor, labels: &Tensor, epoch: usize, step: usize) -> Result<StepLogs> {
        crate::threads::run_on(model.device(), || self.step_here(model, images, labels, epoch, step))
    }

    fn step_here(&mut self, model: &ResNet, images: &Tensor, labels: &Tensor, epoch: usize, step: usize) -> Result<StepLogs> {
        model.check_input(images)?;
        let lr = self.lr_at(epoch, step);
        let cut = self.config.cut;
        let features = model.encode(images, cut)?;
        let mut logs = StepLogs { lr, count: images.dim(0)?, ..Default::default() };

        let mut rng = step_rng(self.config.seed, epoch, step);
        let method = self.config.method;
        // `features` feeds the clean branch; `perturbed` (adversarial methods) the adversarial one.
        let features = match method.style() {
            Some(style) => style.apply(&features, &mut rng)?,
            None => features,
        };
        let perturbed = if method.is_adversarial() {
            let found = attack(model, &features, labels, cut, &self.config.attack)?;
            logs.attack_loss = Some(found.adv_loss);
            logs.attack_clean_loss = Some(found.clean_loss);
            logs.alpha_range = Some(min_max(&found.alpha)?);
            logs.beta_range = Some(min_max(&found.beta)?);
            Some(found.features)
        } else {
            None
        };

        let clean = TailPass::new(model, &features, cut, ForwardMode::TRAIN_CLEAN)?;
        let clean_loss = candle_nn::loss::cross_entropy(&clean.logits, labels)?;
        logs.clean_loss = scalar(&clean_loss)?;
        logs.correct = count_correct(&clean.logits, labels)?;
        let (total, adv) = match &perturbed {
            None => (clean_loss, None),
            Some(y) => {
                let adv = TailPass::new(model, y, cut, ForwardMode::new(BnMode::Train, BnBranch::Adv))?;
                let adv_loss = candle_nn::loss::cross_entropy(&adv.logits, labels)?;
                logs.adv_loss = Some(scalar(&adv_loss)?);
                logs.adv_correct = Some(count_correct(&adv.logits, labels)?);
                ((clean_loss + adv_loss)?, Some(adv))
            }
        };
        logs.loss = scalar(&total)?;
        if !logs.loss.is_finite() {
            return Err(Error::Diverged { epoch, step, loss: logs.loss });
        }
        let mut grads = total.backward()?;
        clean.backward(&mut grads)?;
        if let Some(adv) = adv {
            adv.backward(&mut grads)?;
        }
        self.optimizer.step(&grads, lr)?;
        Ok(logs)
    }
}

/// One training pass through the tail. On the CPU the tail up to its last feature map is
/// recorded outside Candle's graph (`models::backprop`) and the graph holds only the head and
/// the loss; elsewhere the whole pass is in the graph.
struct TailPass {
    logits: Tensor,
    /// The feature map (the head's input, a variable of the graph) and the record behind it.
    recorded: Option<(Var, TailRecord)>,
}

impl TailPass {
    fn new(model: &ResNet, h: &Tensor, cut: usize, mode: ForwardMode) -> Result<Self> {
        if !backprop::records(h, mode) {
            return Ok(Self { logits: model.forward_tail(h, cut, mode)?, recorded: None });
        }
        let (features, record) = backprop::forward_tail_recorded(model, h, cut, mode)?;
        let features = Var::from_tensor(&features)?;
        Ok(Self { logits: model.head(features.as_tensor())?, recorded: Some((features, record)) })
    }

    /// Adds the recorded part's weight gradients to `grads`, the loss's backward (which holds
    /// the feature map's gradient).
    fn backward(self, grads: &mut GradStore) -> Result<()> {
        if let Some((features, record)) = self.recorded {
            let grad = grads
                .remove(features.as_tensor())
                .ok_or_else(|| candle_core::Error::Msg("internal error: the loss has no gradient for the tail's feature map".into()))?;
            record.backward(&grad, grads)?;
        }
        Ok(())
    }
}

/// The random stream of one step (MixStyle's and DSU's draws). A function of the position, not
/// a generator carried from step to step, so a run resumed from a checkpoint draws what the
/// uninterrupted run drew. Bit 63 keeps these streams apart from the loader's `sample_rng`.
fn step_rng(seed: u64, epoch: usize, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((1 << 63) | ((epoch as u64) << 32) | step as u64);
    rng
}

fn min_max(t: &Tensor) -> candle_core::Result<(f64, f64)> {
    let v = t.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()?;
    Ok(v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x))))
}
