//! `NativeModel`: a ResNet owned by Rust, used from JavaScript through async tasks.

use std::sync::{Arc, RwLock};

use advbn_core::device::{device_id, parse_device};
use advbn_core::eval::{evaluate_batch_top_k, predict};
use advbn_core::models::weights::{classifier_classes, read_weights};
use advbn_core::models::{Arch, ModelConfig as CoreModelConfig, ResNet};
use advbn_core::nn::BnBranch;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::batch::{NativeBatch, SharedBatch};
use crate::errors::{sync, task, Failure, Outcome, Typed, Work};
use crate::executor;

pub type SharedModel = Arc<RwLock<Option<ResNet>>>;

/** The architecture: an ImageNet ResNet, or a CIFAR-style ResNet of depth 6n+2 and a base width. */
#[napi(discriminant = "type", discriminant_case = "camelCase")]
pub enum ArchSpec {
    Resnet18,
    Resnet34,
    Resnet50,
    SmallResnet { depth: u32, width: u32 },
}

impl From<ArchSpec> for Arch {
    fn from(spec: ArchSpec) -> Self {
        match spec {
            ArchSpec::Resnet18 => Arch::ResNet18,
            ArchSpec::Resnet34 => Arch::ResNet34,
            ArchSpec::Resnet50 => Arch::ResNet50,
            ArchSpec::SmallResnet { depth, width } => Arch::SmallResNet { depth: depth as usize, width: width as usize },
        }
    }
}

#[napi(object)]
pub struct ModelConfig {
    pub arch: ArchSpec,
    /** Required without `weights`; with them, absent means the file's classifier's class count. */
    pub num_classes: Option<u32>,
    pub device: String,
    pub seed: f64,
    pub in_channels: Option<u32>,
    /** A .safetensors or .pth file with torchvision/timm names. */
    pub weights: Option<String>,
}

/** What loading a weights file did. */
#[napi(object)]
#[derive(Clone)]
pub struct WeightsReport {
    pub path: String,
    pub loaded: u32,
    /** Tensors left freshly initialised (the classifier when the class count differs). */
    pub reinitialized: Vec<String>,
    /** File entries not used (BatchNorm `num_batches_tracked` counters). */
    pub ignored: Vec<String>,
}

/** Which BatchNorm branch a forward pass uses. */
#[napi(string_enum = "lowercase")]
pub enum BnBranchName {
    /** The standard BNs. */
    Clean,
    /** The adversarial BNs AdvBN trained (the clean ones where there are none). */
    Adv,
}

impl From<BnBranchName> for BnBranch {
    fn from(name: BnBranchName) -> Self {
        match name {
            BnBranchName::Clean => BnBranch::Clean,
            BnBranchName::Adv => BnBranch::Adv,
        }
    }
}

/** Summed loss and top-1 hits of a batch, with each sample's `k` best classes and its label. */
#[napi(object)]
pub struct EvalStats {
    pub loss_sum: f64,
    /** Samples whose best class is the label. */
    pub correct: u32,
    pub count: u32,
    /** Classes per sample in `topK`: `min(5, numClasses)`. */
    pub k: u32,
    /** Row-major `[count, k]`: each sample's `k` best classes, best first (ties: lower index). */
    pub top_k: Int32Array,
    pub labels: Int32Array,
}

/** Classes `evaluate` ranks per sample (top-5 accuracy). */
const EVAL_TOP_K: usize = 5;

#[napi]
pub struct NativeModel {
    pub(crate) inner: SharedModel,
    arch: String,
    device: String,
    weights_report: Option<WeightsReport>,
}

/// Runs `f` with the model, failing cleanly if it was disposed.
pub(crate) fn with_model<T>(model: &SharedModel, f: impl FnOnce(&ResNet) -> Outcome<T>) -> Outcome<T> {
    let guard = model.read().unwrap_or_else(|e| e.into_inner());
    match guard.as_ref() {
        Some(m) => f(m),
        None => Err(Failure::disposed("model")),
    }
}

#[napi]
impl NativeModel {
    #[napi(getter)]
    pub fn arch(&self) -> String {
        self.arch.clone()
    }

    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    #[napi(getter)]
    pub fn num_classes(&self, env: Env) -> Result<u32> {
        sync(&env, || with_model(&self.inner, |m| Ok(m.num_classes() as u32)))
    }

    #[napi(getter)]
    pub fn num_stages(&self, env: Env) -> Result<u32> {
        sync(&env, || with_model(&self.inner, |m| Ok(m.num_stages() as u32)))
    }

    #[napi(getter)]
    pub fn in_channels(&self, env: Env) -> Result<u32> {
        sync(&env, || with_model(&self.inner, |m| Ok(m.config().in_channels as u32)))
    }

    #[napi(getter)]
    pub fn has_adv_bn(&self, env: Env) -> Result<bool> {
        sync(&env, || with_model(&self.inner, |m| Ok(m.has_adv_bn())))
    }

    #[napi(getter)]
    pub fn parameter_count(&self, env: Env) -> Result<f64> {
        sync(&env, || with_model(&self.inner, |m| Ok(m.params().parameter_count() as f64)))
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// Logits, row-major [batch.size, numClasses].
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn predict(&self, batch: &NativeBatch, bn: BnBranchName) -> AsyncTask<Typed<PredictTask>> {
        task(PredictTask { model: self.inner.clone(), batch: batch.shared(), branch: bn.into(), device: self.device.clone() })
    }

    #[napi(ts_return_type = "Promise<EvalStats>")]
    pub fn evaluate(&self, batch: &NativeBatch, bn: BnBranchName) -> AsyncTask<Typed<EvaluateTask>> {
        task(EvaluateTask { model: self.inner.clone(), batch: batch.shared(), branch: bn.into(), device: self.device.clone() })
    }

    /// What loading the weights file did, when the model was built from one.
    #[napi(getter)]
    pub fn weights_report(&self) -> Option<WeightsReport> {
        self.weights_report.clone()
    }

    /// Writes the weights as safetensors (torchvision names; adversarial BNs under `adv.`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn save_weights(&self, path: String) -> AsyncTask<Typed<SaveWeightsTask>> {
        task(SaveWeightsTask { model: self.inner.clone(), path, device: self.device.clone() })
    }

    /// Frees the weights now instead of at garbage collection.
    #[napi]
    pub fn dispose(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }
}

pub struct CreateModelTask {
    config: CoreModelConfig,
    device: String,
    weights: Option<String>,
    /// Take the class count from the weights file's classifier.
    classes_from_weights: bool,
}

impl Work for CreateModelTask {
    type Output = (ResNet, Option<WeightsReport>);
    type JsValue = NativeModel;

    fn compute(&mut self) -> Outcome<Self::Output> {
        let (mut config, device, weights, infer) = (self.config.clone(), self.device.clone(), self.weights.clone(), self.classes_from_weights);
        executor::run_for(&self.device, move || {
            let device = parse_device(&device)?;
            let Some(path) = weights else {
                return Ok((ResNet::new(config, &device)?, None));
            };
            let file = read_weights(std::path::Path::new(&path))?;
            let origin = format!("weights file {path}");
            if infer {
                config.num_classes = classifier_classes(&file, &origin)?;
                config.validate()?;
            }
            let mut model = ResNet::new(config, &device)?;
            // A checkpoint for another class count keeps everything but the classifier.
            let r = model.load_state_map(file, &origin, true)?;
            Ok((model, Some(WeightsReport { path, loaded: r.loaded as u32, reinitialized: r.reinitialized, ignored: r.ignored })))
        })
    }

    fn resolve(&mut self, _env: Env, (model, weights_report): Self::Output) -> Result<NativeModel> {
        Ok(NativeModel { arch: model.config().arch.name(), device: device_id(model.device()), inner: Arc::new(RwLock::new(Some(model))), weights_report })
    }
}

pub struct SaveWeightsTask {
    model: SharedModel,
    path: String,
    device: String,
}

impl Work for SaveWeightsTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Outcome<()> {
        let (model, path) = (self.model.clone(), self.path.clone());
        executor::run_for(&self.device, move || with_model(&model, |m| Ok(m.save_weights(std::path::Path::new(&path))?)))
    }

    fn resolve(&mut self, _env: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

#[napi(ts_return_type = "Promise<NativeModel>")]
pub fn create_model(env: Env, config: ModelConfig) -> Result<AsyncTask<Typed<CreateModelTask>>> {
    sync(&env, || {
        let arch = Arch::from(config.arch);
        // The depth's and width's ranges and the depth's 6n+2 form.
        arch.layout()?;
        let classes_from_weights = config.num_classes.is_none();
        if classes_from_weights && config.weights.is_none() {
            return Err(advbn_core::Error::invalid_option("numClasses", "undefined", "required without weights").into());
        }
        let core = CoreModelConfig {
            arch,
            // Checked now when given; taken from the weights file (and checked then) otherwise.
            num_classes: config.num_classes.map_or(2, |n| n as usize),
            in_channels: config.in_channels.map_or(advbn_core::options::IN_CHANNELS.default_value() as usize, |c| c as usize),
            seed: advbn_core::error::seed_from_f64("seed", config.seed)?,
            dtype: candle_core::DType::F32,
        };
        core.validate()?;
        Ok(task(CreateModelTask { config: core, device: config.device, weights: config.weights, classes_from_weights }))
    })
}

pub struct PredictTask {
    model: SharedModel,
    batch: SharedBatch,
    branch: BnBranch,
    device: String,
}

impl Work for PredictTask {
    type Output = Vec<f32>;
    type JsValue = Float32Array;

    fn compute(&mut self) -> Outcome<Vec<f32>> {
        let (model, batch, branch) = (self.model.clone(), self.batch.clone(), self.branch);
        executor::run_for(&self.device, move || {
            let (images, _) = batch.tensors()?;
            with_model(&model, |m| Ok(predict(m, &images, branch).and_then(|l| Ok(l.flatten_all()?.to_vec1::<f32>()?))?))
        })
    }

    fn resolve(&mut self, _env: Env, logits: Vec<f32>) -> Result<Float32Array> {
        Ok(Float32Array::new(logits))
    }
}

pub struct EvaluateTask {
    model: SharedModel,
    batch: SharedBatch,
    branch: BnBranch,
    device: String,
}

impl Work for EvaluateTask {
    type Output = advbn_core::eval::TopKEval;
    type JsValue = EvalStats;

    fn compute(&mut self) -> Outcome<Self::Output> {
        let (model, batch, branch) = (self.model.clone(), self.batch.clone(), self.branch);
        executor::run_for(&self.device, move || {
            let (images, labels) = batch.tensors()?;
            with_model(&model, |m| Ok(evaluate_batch_top_k(m, &images, &labels, branch, EVAL_TOP_K)?))
        })
    }

    fn resolve(&mut self, _env: Env, eval: Self::Output) -> Result<EvalStats> {
        let ints = |v: Vec<u32>| Int32Array::new(v.into_iter().map(|x| x as i32).collect());
        Ok(EvalStats {
            loss_sum: eval.stats.loss_sum,
            correct: eval.stats.correct as u32,
            count: eval.stats.count as u32,
            k: eval.k as u32,
            top_k: ints(eval.top_k),
            labels: ints(eval.labels),
        })
    }
}
