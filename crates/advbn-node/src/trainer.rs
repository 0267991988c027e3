//! `NativeTrainer`: one AdvBN / ERM step per call, run on the compute thread.

use std::sync::{Arc, Mutex};

use advbn_core::attack::AttackConfig;
use advbn_core::train::{
    load_checkpoint, save_checkpoint, CheckpointRecord, Method, OptimizerConfig, RunPosition, Schedule, StepLogs as CoreStepLogs, TrainConfig, Trainer,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::batch::{NativeBatch, SharedBatch};
use crate::errors::{sync, task, Failure, Outcome, Typed, Work};
use crate::executor;
use crate::model::{with_model, NativeModel, SharedModel};

/** The optimiser, as `fineTune`'s `optimizer` option resolved (every field given). */
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum OptimizerSettings {
    Sgd { momentum: f64, weight_decay: f64, nesterov: bool },
    AdamW { beta1: f64, beta2: f64, eps: f64, weight_decay: f64 },
}

/** The learning-rate schedule, as `fineTune`'s `schedule` option resolved. */
#[napi(discriminant = "type", discriminant_case = "lowercase")]
pub enum ScheduleSettings {
    Constant,
    Step { milestones: Vec<f64>, gamma: f64 },
    Cosine { min_lr: f64, warmup_epochs: f64 },
}

/** The attack, as `fineTune`'s `advbn` option resolved (`reluClamp` absent: on, every ResNet cut follows a ReLU). */
#[napi(object)]
pub struct AdvbnSettings {
    pub steps: u32,
    pub step_size: f64,
    pub epsilon: f64,
    pub relu_clamp: Option<bool>,
}

/** A fine-tune run's settings: `fineTune`'s options as resolved, one name per option in each language. */
#[napi(object)]
pub struct TrainerConfig {
    /** A method name of the core (`Method::parse`). */
    pub method: String,
    pub cut: u32,
    pub lr: f64,
    pub optimizer: OptimizerSettings,
    pub schedule: ScheduleSettings,
    pub epochs: u32,
    pub steps_per_epoch: u32,
    pub advbn: AdvbnSettings,
    pub seed: f64,
}

#[napi(object)]
pub struct StepLogs {
    pub loss: f64,
    pub clean_loss: f64,
    pub adv_loss: Option<f64>,
    pub attack_loss: Option<f64>,
    pub attack_clean_loss: Option<f64>,
    pub alpha_min: Option<f64>,
    pub alpha_max: Option<f64>,
    pub beta_min: Option<f64>,
    pub beta_max: Option<f64>,
    /** Clean-branch predictions that match the labels. */
    pub correct: u32,
    /** Adversarial-branch predictions on the attack's worst case that match the labels (adversarial methods only). */
    pub adv_correct: Option<u32>,
    pub count: u32,
    pub lr: f64,
}

impl From<CoreStepLogs> for StepLogs {
    fn from(l: CoreStepLogs) -> Self {
        StepLogs {
            loss: l.loss,
            clean_loss: l.clean_loss,
            adv_loss: l.adv_loss,
            attack_loss: l.attack_loss,
            attack_clean_loss: l.attack_clean_loss,
            alpha_min: l.alpha_range.map(|r| r.0),
            alpha_max: l.alpha_range.map(|r| r.1),
            beta_min: l.beta_range.map(|r| r.0),
            beta_max: l.beta_range.map(|r| r.1),
            correct: l.correct as u32,
            adv_correct: l.adv_correct.map(|c| c as u32),
            count: l.count as u32,
            lr: l.lr,
        }
    }
}

fn core_config(c: &TrainerConfig) -> advbn_core::Result<TrainConfig> {
    let optimizer = match c.optimizer {
        OptimizerSettings::Sgd { momentum, weight_decay, nesterov } => OptimizerConfig::Sgd { momentum, weight_decay, nesterov },
        OptimizerSettings::AdamW { beta1, beta2, eps, weight_decay } => OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay },
    };
    let schedule = match &c.schedule {
        ScheduleSettings::Constant => Schedule::Constant,
        ScheduleSettings::Step { milestones, gamma } => Schedule::Step { milestones: milestones.clone(), gamma: *gamma },
        ScheduleSettings::Cosine { min_lr, warmup_epochs } => Schedule::Cosine { min_lr: *min_lr, warmup_epochs: *warmup_epochs },
    };
    let a = &c.advbn;
    Ok(TrainConfig {
        method: Method::parse(&c.method)?,
        cut: c.cut as usize,
        lr: c.lr,
        optimizer,
        schedule,
        epochs: c.epochs as usize,
        steps_per_epoch: c.steps_per_epoch as usize,
        seed: advbn_core::error::seed_from_f64("seed", c.seed)?,
        // Every ResNet cut point follows a ReLU, so the clamp is on unless asked otherwise.
        attack: AttackConfig { steps: a.steps as usize, step_size: a.step_size, epsilon: a.epsilon, relu_clamp: a.relu_clamp.unwrap_or(true) },
    })
}

/// The trainer is created on the compute thread at the first step (it may copy BN weights on
/// the device); the configuration is validated at construction so errors surface at once.
enum TrainerState {
    Pending(TrainConfig),
    Ready(Trainer),
}

#[napi]
pub struct NativeTrainer {
    model: SharedModel,
    device: String,
    state: Arc<Mutex<TrainerState>>,
    config: TrainConfig,
}

#[napi]
impl NativeTrainer {
    #[napi(constructor)]
    pub fn new(env: Env, model: &NativeModel, config: TrainerConfig) -> Result<Self> {
        sync(&env, || {
            let core = core_config(&config)?;
            with_model(&model.inner, |m| Ok(core.validate(m)?))?;
            Ok(Self { model: model.inner.clone(), device: model.device(), state: Arc::new(Mutex::new(TrainerState::Pending(core.clone()))), config: core })
        })
    }

    /// One optimisation step; `epoch` and `stepInEpoch` (0-based) drive the lr schedule.
    #[napi(ts_return_type = "Promise<StepLogs>")]
    pub fn step(&self, batch: &NativeBatch, epoch: u32, step_in_epoch: u32) -> AsyncTask<Typed<StepTask>> {
        task(StepTask {
            model: self.model.clone(),
            device: self.device.clone(),
            state: self.state.clone(),
            batch: batch.shared(),
            epoch: epoch as usize,
            step: step_in_epoch as usize,
        })
    }

    /// Writes model, optimiser state, the position (the next step is batch `nextBatch` of
    /// `epoch`), the run's own `settings` (a JSON object a resume must match) and the caller's
    /// `record` (JSON) to `path` atomically, in the core's checkpoint format.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save_checkpoint(&self, path: String, epoch: u32, next_batch: u32, settings: String, record: String) -> AsyncTask<Typed<CheckpointTask>> {
        let save = Some(SaveRequest { position: RunPosition { epoch: epoch as usize, next_batch: next_batch as usize }, record });
        task(CheckpointTask { model: self.model.clone(), device: self.device.clone(), state: self.state.clone(), path, settings, save })
    }

    /// Checks `path` against this run (its trainer settings and the caller's `settings`, which must
    /// equal the saved ones) and restores model and optimiser state from it.
    #[napi(ts_return_type = "Promise<LoadedCheckpoint>")]
    pub fn load_checkpoint(&self, path: String, settings: String) -> AsyncTask<Typed<CheckpointTask>> {
        task(CheckpointTask { model: self.model.clone(), device: self.device.clone(), state: self.state.clone(), path, settings, save: None })
    }

    #[napi]
    pub fn learning_rate(&self, epoch: u32, step_in_epoch: u32) -> f64 {
        self.config.lr_at(epoch as usize, step_in_epoch as usize)
    }
}

pub struct StepTask {
    model: SharedModel,
    device: String,
    state: Arc<Mutex<TrainerState>>,
    batch: SharedBatch,
    epoch: usize,
    step: usize,
}

impl Work for StepTask {
    type Output = StepLogs;
    type JsValue = StepLogs;

    fn compute(&mut self) -> Outcome<StepLogs> {
        let (model, state, batch, epoch, step) = (self.model.clone(), self.state.clone(), self.batch.clone(), self.epoch, self.step);
        executor::run_for(&self.device, move || {
            let (images, labels) = batch.tensors()?;
            with_trainer(&model, &state, |model, trainer| Ok(trainer.step(model, &images, &labels, epoch, step)?.into()))
        })
    }

    fn resolve(&mut self, _env: Env, logs: StepLogs) -> Result<StepLogs> {
        Ok(logs)
    }
}

/// Runs `f` on the compute thread's model and trainer, creating the trainer on first use.
fn with_trainer<T>(
    model: &SharedModel,
    state: &Mutex<TrainerState>,
    f: impl FnOnce(&mut advbn_core::models::ResNet, &mut Trainer) -> Outcome<T>,
) -> Outcome<T> {
    let mut guard = model.write().unwrap_or_else(|e| e.into_inner());
    let model = guard.as_mut().ok_or_else(|| Failure::disposed("model"))?;
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    if let TrainerState::Pending(config) = &*state {
        *state = TrainerState::Ready(Trainer::new(model, config.clone())?);
    }
    let TrainerState::Ready(trainer) = &mut *state else { unreachable!("trainer initialised above") };
    f(model, trainer)
}

/** Where a loaded checkpoint left its run, and the caller's record. */
#[napi(object)]
pub struct LoadedCheckpoint {
    pub epoch: u32,
    pub next_batch: u32,
    /** The JSON saved as `record`. */
    pub record: String,
}

struct SaveRequest {
    position: RunPosition,
    record: String,
}

pub struct CheckpointTask {
    model: SharedModel,
    device: String,
    state: Arc<Mutex<TrainerState>>,
    path: String,
    settings: String,
    /// Some: save; None: load.
    save: Option<SaveRequest>,
}

impl Work for CheckpointTask {
    type Output = Option<LoadedCheckpoint>;
    type JsValue = Option<LoadedCheckpoint>;

    fn compute(&mut self) -> Outcome<Option<LoadedCheckpoint>> {
        let (model, state, path, settings, save) = (self.model.clone(), self.state.clone(), self.path.clone(), self.settings.clone(), self.save.take());
        executor::run_for(&self.device, move || {
            let path = std::path::PathBuf::from(path);
            with_trainer(&model, &state, |model, trainer| match save {
                Some(SaveRequest { position, record }) => {
                    save_checkpoint(&path, model, trainer, &CheckpointRecord { position, settings: &settings, record: &record })?;
                    Ok(None)
                }
                None => {
                    let info = load_checkpoint(&path, model, trainer, &settings)?;
                    Ok(Some(LoadedCheckpoint { epoch: info.position.epoch as u32, next_batch: info.position.next_batch as u32, record: info.record }))
                }
            })
        })
    }

    fn resolve(&mut self, _env: Env, loaded: Option<LoadedCheckpoint>) -> Result<Option<LoadedCheckpoint>> {
        Ok(loaded)
    }
}
