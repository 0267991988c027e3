//! `NativeSource` (image folders, MNIST IDX files, CIFAR-10 batches), `NativeLoader` (the
//! core's prefetching loader over one) and the corruption entry points.
//!
//! Opening a source and probing a shape are file/CPU work and run in the task's compute()
//! (a libuv thread); so does the blocking wait for the loader's workers. Only the upload of a
//! finished batch to its device goes through `executor::run`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use advbn_core::data::corruptions::{corrupt_files as core_corrupt_files, corruption_transform, encode_jpeg, encode_png, CorruptFilesJob, Corruption};
use advbn_core::data::jitter::ColorJitter;
use advbn_core::data::loader::Stopper;
use advbn_core::data::{
    BadSample, Batch, Cifar10, Concat, EpochIter, FileLimits, Image, ImageFolder, Loader, LoaderConfig, Mnist, Pass, Pipeline, Source, Subset, Transform,
};
use advbn_core::device::parse_device;
use advbn_core::error::seed_from_f64;
use advbn_core::eval::files::ImageFiles;
use advbn_core::Error;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::batch::NativeBatch;
use crate::errors::{sync, task, Failure, Outcome, Typed, Work};
use crate::executor;

enum SourceSpec {
    Folder { root: String, classes: Option<Vec<String>>, limits: FileLimits },
    Files { paths: Vec<String>, limits: FileLimits },
    Mnist { images: String, labels: String },
    Cifar10 { paths: Vec<String> },
}

#[napi]
pub struct NativeSource {
    inner: Option<Arc<dyn Source>>,
}

impl NativeSource {
    fn source(&self) -> Outcome<&Arc<dyn Source>> {
        self.inner.as_ref().ok_or_else(|| Failure::disposed("data source"))
    }
}

#[napi]
impl NativeSource {
    /// Lists `root/<class>/**/*.{jpg,jpeg,png}`; classes are the sub-folders sorted, or `classes`.
    #[napi(ts_return_type = "Promise<NativeSource>")]
    pub fn image_folder(root: String, classes: Option<Vec<String>>, limits: Option<FolderLimits>) -> AsyncTask<Typed<OpenSourceTask>> {
        // Checked by the core's rules when the folder opens (a negative or NaN value becomes 0: refused).
        let limits = limits.map_or_else(FileLimits::default, |l| FileLimits { max_pixels: l.max_pixels as u64, max_file_bytes: l.max_file_bytes as u64 });
        task(OpenSourceTask(Some(SourceSpec::Folder { root, classes, limits })))
    }

    /// Image files in the order given, folders standing for their images (recursively, sorted);
    /// unlabelled (every label 0), for prediction.
    #[napi(ts_return_type = "Promise<NativeSource>")]
    pub fn image_files(paths: Vec<String>, limits: Option<FolderLimits>) -> AsyncTask<Typed<OpenSourceTask>> {
        let limits = limits.map_or_else(FileLimits::default, |l| FileLimits { max_pixels: l.max_pixels as u64, max_file_bytes: l.max_file_bytes as u64 });
        task(OpenSourceTask(Some(SourceSpec::Files { paths, limits })))
    }

    /// Reads an IDX3 image file and an IDX1 label file (uncompressed).
    #[napi(ts_return_type = "Promise<NativeSource>")]
    pub fn mnist(images_path: String, labels_path: String) -> AsyncTask<Typed<OpenSourceTask>> {
        task(OpenSourceTask(Some(SourceSpec::Mnist { images: images_path, labels: labels_path })))
    }

    /// Reads CIFAR-10 binary batch files, concatenated in the order given.
    #[napi(ts_return_type = "Promise<NativeSource>")]
    pub fn cifar10(paths: Vec<String>) -> AsyncTask<Typed<OpenSourceTask>> {
        task(OpenSourceTask(Some(SourceSpec::Cifar10 { paths })))
    }

    #[napi(getter)]
    pub fn length(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.source()?.len() as u32))
    }

    #[napi(getter)]
    pub fn num_classes(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.source()?.num_classes() as u32))
    }

    #[napi(getter)]
    pub fn class_names(&self, env: Env) -> Result<Vec<String>> {
        sync(&env, || Ok(self.source()?.class_names()))
    }

    /// Where each sample comes from (its file, or its record), in sample order.
    #[napi]
    pub fn sample_names(&self, env: Env) -> Result<Vec<String>> {
        sync(&env, || {
            let source = self.source()?;
            Ok((0..source.len()).map(|i| source.describe(i)).collect())
        })
    }

    /// The labels, in sample order (from the listing or the label records: nothing is decoded).
    #[napi]
    pub fn labels(&self, env: Env) -> Result<Uint32Array> {
        sync(&env, || {
            let source = self.source()?;
            Ok(Uint32Array::new((0..source.len()).map(|i| source.label(i)).collect::<advbn_core::Result<Vec<u32>>>()?))
        })
    }

    /// The samples `indices` of this source, in that order (sharing it).
    #[napi]
    pub fn subset(&self, env: Env, indices: Uint32Array) -> Result<NativeSource> {
        sync(&env, || Ok(NativeSource { inner: Some(Arc::new(Subset::new(self.source()?.clone(), indices.to_vec())?)) }))
    }

    /// The parts' samples one after another; they must name the same classes.
    #[napi(factory)]
    pub fn concat(env: Env, parts: Vec<&NativeSource>) -> Result<NativeSource> {
        sync(&env, || {
            let parts = parts.iter().map(|p| p.source().cloned()).collect::<Outcome<Vec<_>>>()?;
            Ok(NativeSource { inner: Some(Arc::new(Concat::new(parts)?)) })
        })
    }

    /// Loaders already made keep the source alive until they are closed.
    #[napi]
    pub fn dispose(&mut self) {
        self.inner = None;
    }
}

pub struct OpenSourceTask(Option<SourceSpec>);

impl Work for OpenSourceTask {
    type Output = Arc<dyn Source>;
    type JsValue = NativeSource;

    fn compute(&mut self) -> Outcome<Arc<dyn Source>> {
        let spec = self.0.take().ok_or_else(|| Error::invalid_data("the source was already opened"))?;
        let source: Arc<dyn Source> = match spec {
            SourceSpec::Folder { root, classes, limits } => Arc::new(ImageFolder::with_limits(root, classes, limits)?),
            SourceSpec::Files { paths, limits } => {
                let paths: Vec<std::path::PathBuf> = paths.into_iter().map(Into::into).collect();
                Arc::new(ImageFiles::new(&paths, limits)?)
            }
            SourceSpec::Mnist { images, labels } => Arc::new(Mnist::from_idx(images, labels)?),
            SourceSpec::Cifar10 { paths } => {
                let paths: Vec<std::path::PathBuf> = paths.into_iter().map(Into::into).collect();
                Arc::new(Cifar10::from_batches(&paths)?)
            }
        };
        Ok(source)
    }

    fn resolve(&mut self, _env: Env, source: Arc<dyn Source>) -> Result<NativeSource> {
        Ok(NativeSource { inner: Some(source) })
    }
}

/** What one folder sample may cost (the core's `imageFolder.maxPixels` / `maxFileBytes` rules). */
#[napi(object)]
pub struct FolderLimits {
    pub max_pixels: f64,
    pub max_file_bytes: f64,
}

/// One step of the per-sample pipeline, discriminated by `type`.
#[napi(discriminant = "type", discriminant_case = "camelCase")]
pub enum TransformSpec {
    Resize {
        height: u32,
        width: u32,
    },
    ResizeShorter {
        size: u32,
    },
    CenterCrop {
        size: u32,
    },
    /// `scale` and `ratio` absent: torchvision's defaults.
    RandomResizedCrop {
        size: u32,
        scale: Option<Vec<f64>>,
        ratio: Option<Vec<f64>>,
    },
    HorizontalFlip {
        p: Option<f64>,
    },
    Grayscale {
        channels: Option<u32>,
    },
    ToRgb,
    Augmix,
    Corrupt {
        name: String,
        severity: u32,
    },
    /// Strengths absent: 0 (that property left alone).
    ColorJitter {
        brightness: Option<f64>,
        contrast: Option<f64>,
        saturation: Option<f64>,
        hue: Option<f64>,
    },
    RandomRotation {
        degrees: f64,
    },
}

/** What a loader does with a sample it cannot read, decode or transform. */
#[napi(string_enum = "lowercase")]
pub enum OnBadSample {
    /** End the pass with an error naming the sample. */
    Error,
    /** Leave it out of its batch and report it. */
    Skip,
}

#[napi(object)]
pub struct LoaderOptions {
    pub batch_size: u32,
    pub shuffle: bool,
    pub seed: f64,
    pub drop_last: bool,
    /// Worker threads; 0 = one per core.
    pub threads: u32,
    pub prefetch: u32,
    pub on_bad_sample: OnBadSample,
    pub transforms: Vec<TransformSpec>,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
    /// [channels, height, width] every sample must have after the transforms.
    pub image_shape: Option<Vec<u32>>,
}

fn transform(at: usize, spec: &TransformSpec) -> advbn_core::Result<Transform> {
    let option = |field: &str| format!("transforms[{at}].{field}");
    let range = |field: &str, value: &Option<Vec<f64>>, default: (f64, f64)| match value.as_deref() {
        None => Ok(default),
        Some(&[lo, hi]) => Ok((lo, hi)),
        Some(other) => Err(Error::invalid_option(&option(field), format!("{other:?}"), "needs two numbers [min, max]")),
    };
    let side = |v: u32| v as usize;
    Ok(match spec {
        TransformSpec::Resize { height, width } => Transform::Resize(side(*height), side(*width)),
        TransformSpec::ResizeShorter { size } => Transform::ResizeShorter(side(*size)),
        TransformSpec::CenterCrop { size } => Transform::CenterCrop(side(*size)),
        TransformSpec::RandomResizedCrop { size, scale, ratio } => Transform::RandomResizedCrop {
            size: side(*size),
            scale: range("scale", scale, Transform::CROP_SCALE)?,
            ratio: range("ratio", ratio, Transform::CROP_RATIO)?,
        },
        TransformSpec::HorizontalFlip { p } => Transform::HorizontalFlip(p.unwrap_or(Transform::FLIP_P)),
        TransformSpec::Grayscale { channels } => Transform::Grayscale(channels.map_or(Transform::GRAYSCALE_CHANNELS, |c| c as usize)),
        TransformSpec::ToRgb => Transform::ToRgb,
        TransformSpec::Augmix => advbn_core::data::augmix::augmix_transform(),
        TransformSpec::ColorJitter { brightness, contrast, saturation, hue } => Transform::ColorJitter(ColorJitter {
            brightness: brightness.unwrap_or(0.0),
            contrast: contrast.unwrap_or(0.0),
            saturation: saturation.unwrap_or(0.0),
            hue: hue.unwrap_or(0.0),
        }),
        TransformSpec::RandomRotation { degrees } => Transform::RandomRotation(*degrees),
        TransformSpec::Corrupt { name, severity } => {
            let corruption = Corruption::parse(name)
                .map_err(|_| Error::invalid_option(&option("name"), format!("{name:?}"), "expected a corruption name (see listCorruptions())"))?;
            let severity = advbn_core::options::CORRUPTION_SEVERITY.check_as(&option("severity"), *severity as f64)? as u8;
            corruption_transform(corruption, severity)?
        }
    })
}

fn loader_config(options: &LoaderOptions) -> advbn_core::Result<LoaderConfig> {
    let on_bad_sample = match options.on_bad_sample {
        OnBadSample::Error => BadSample::Error,
        OnBadSample::Skip => BadSample::Skip,
    };
    let transforms = options.transforms.iter().enumerate().map(|(i, t)| transform(i, t)).collect::<advbn_core::Result<_>>()?;
    let to_f32 = |v: &Vec<f64>| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let normalize = match (&options.mean, &options.std) {
        (Some(mean), Some(std)) => Some((to_f32(mean), to_f32(std))),
        (None, None) => None,
        _ => return Err(Error::invalid_option("normalize", "mean/std", "give both mean and std, or neither")),
    };
    let image_shape = match options.image_shape.as_deref() {
        None => None,
        Some(&[c, h, w]) => Some((c as usize, h as usize, w as usize)),
        Some(other) => return Err(Error::invalid_option("imageShape", format!("{other:?}"), "needs [channels, height, width]")),
    };
    Ok(LoaderConfig {
        batch_size: options.batch_size as usize,
        shuffle: options.shuffle,
        seed: seed_from_f64("seed", options.seed)?,
        drop_last: options.drop_last,
        threads: options.threads as usize,
        prefetch: options.prefetch as usize,
        on_bad_sample,
        pipeline: Arc::new(Pipeline::new(transforms, normalize)?),
        image_shape,
    })
}

/// The pass in progress (`None` before the first `epoch()` and after the end).
#[derive(Default)]
struct EpochState {
    started: bool,
    pass: Option<Pass>,
}

impl EpochState {
    fn abandon(&mut self) {
        drop_in_background(self.pass.as_mut().and_then(Pass::take_workers));
        self.pass = None;
    }
}

/// Joins an abandoned pass's workers (already told to stop) off the calling thread.
fn drop_in_background(iter: Option<EpochIter>) {
    if let Some(iter) = iter {
        std::thread::spawn(move || drop(iter));
    }
}

#[napi]
pub struct NativeLoader {
    loader: Arc<Loader>,
    state: Arc<Mutex<EpochState>>,
    stopper: Option<Stopper>,
    closed: Arc<AtomicBool>,
}

impl NativeLoader {
    fn lock_now(&self) -> Option<MutexGuard<'_, EpochState>> {
        match self.state.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn shut_down(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
        if let Some(stopper) = self.stopper.take() {
            stopper.stop();
        }
        // A next() in flight holds the state: it sees `closed` and drops the pass itself.
        if let Some(mut state) = self.lock_now() {
            state.abandon();
        }
    }
}

#[napi]
impl NativeLoader {
    #[napi(constructor)]
    pub fn new(env: Env, source: &NativeSource, options: LoaderOptions) -> Result<Self> {
        sync(&env, || {
            let source = source.source()?.clone();
            let loader = Loader::new(source, loader_config(&options)?)?;
            Ok(Self { loader: Arc::new(loader), state: Arc::new(Mutex::new(EpochState::default())), stopper: None, closed: Arc::new(AtomicBool::new(false)) })
        })
    }

    /// Batches per pass.
    #[napi(getter)]
    pub fn num_batches(&self) -> u32 {
        self.loader.num_batches() as u32
    }

    /// [channels, height, width] of the first sample that loads, after the transforms.
    #[napi(ts_return_type = "Promise<Array<number>>")]
    pub fn first_sample_shape(&self) -> AsyncTask<Typed<ProbeTask>> {
        task(ProbeTask { loader: self.loader.clone() })
    }

    /// Starts pass `epoch` (its order and random draws); stops the workers of the previous one.
    #[napi]
    pub fn epoch(&mut self, env: Env, epoch: u32) -> Result<()> {
        sync(&env, || self.start_epoch(epoch))
    }

    /// The next batch of the pass on `device`, with the samples skipped as bad; null at the end.
    #[napi(ts_return_type = "Promise<NativeBatch | null>")]
    pub fn next(&self, device: String) -> AsyncTask<Typed<NextTask>> {
        task(NextTask { state: self.state.clone(), closed: self.closed.clone(), device })
    }

    /// Stops the workers now (they finish at most the sample in hand); the loader is unusable after.
    #[napi]
    pub fn close(&mut self) {
        self.shut_down();
    }
}

impl NativeLoader {
    fn start_epoch(&mut self, epoch: u32) -> Outcome<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(Failure::disposed("loader"));
        }
        if let Some(stopper) = self.stopper.take() {
            stopper.stop();
        }
        let Some(mut state) = self.lock_now() else {
            return Err(Failure::busy("a batch of this loader is still loading; await next() first"));
        };
        let iter = self.loader.epoch(epoch as u64);
        let stopper = iter.stopper();
        state.abandon();
        state.pass = Some(Pass::new(iter));
        state.started = true;
        drop(state);
        self.stopper = Some(stopper);
        Ok(())
    }
}

impl Drop for NativeLoader {
    fn drop(&mut self) {
        self.shut_down();
    }
}

pub struct ProbeTask {
    loader: Arc<Loader>,
}

impl Work for ProbeTask {
    type Output = Vec<u32>;
    type JsValue = Vec<u32>;

    fn compute(&mut self) -> Outcome<Vec<u32>> {
        let (c, h, w) = self.loader.first_sample_shape()?;
        Ok(vec![c as u32, h as u32, w as u32])
    }

    fn resolve(&mut self, _env: Env, shape: Vec<u32>) -> Result<Vec<u32>> {
        Ok(shape)
    }
}

pub struct NextTask {
    state: Arc<Mutex<EpochState>>,
    closed: Arc<AtomicBool>,
    device: String,
}

impl NextTask {
    /// Waits (on this libuv thread) for the pass's next batch with samples.
    fn next_batch(&self) -> Outcome<Option<(Batch, Vec<String>)>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.closed.load(Ordering::Relaxed) && !state.started {
            return Err(Error::invalid_data("call epoch(n) before next()").into());
        }
        let next = match state.pass.as_mut() {
            Some(pass) if !self.closed.load(Ordering::Relaxed) => pass.next_batch()?,
            _ => None,
        };
        // Closed before or while waiting: the workers are joined elsewhere.
        if self.closed.load(Ordering::Relaxed) {
            state.abandon();
            return Err(Failure::disposed("loader"));
        }
        Ok(next)
    }
}

impl Work for NextTask {
    type Output = Option<NativeBatch>;
    type JsValue = Option<NativeBatch>;

    fn compute(&mut self) -> Outcome<Option<NativeBatch>> {
        let Some((batch, skipped)) = self.next_batch()? else { return Ok(None) };
        let device = self.device.clone();
        executor::run(move || {
            let device = parse_device(&device)?;
            let (images, labels) = batch.to_tensors(&device)?;
            Ok(Some(NativeBatch::new(images, labels).with_skipped(skipped)))
        })
    }

    fn resolve(&mut self, _env: Env, batch: Option<NativeBatch>) -> Result<Option<NativeBatch>> {
        Ok(batch)
    }
}

/// The 19 corruption names: the 15 ImageNet-C benchmark ones in their order, then the 4 extra.
#[napi]
pub fn list_corruptions() -> Vec<String> {
    Corruption::ALL.iter().map(|c| c.name().to_string()).collect()
}

#[napi(object)]
pub struct CorruptFilesOptions {
    /// An image file, or a folder searched recursively for .jpg/.jpeg/.png files.
    pub input: String,
    /// Receives `<corruption>/<severity>/<path relative to the input>`.
    pub output: String,
    pub corruptions: Vec<String>,
    pub severities: Vec<u32>,
    pub seed: f64,
    /// Worker threads; 0 = one per core.
    pub threads: u32,
}

#[napi(object)]
pub struct CorruptionCount {
    pub name: String,
    pub written: u32,
}

#[napi(object)]
pub struct CorruptFilesSummary {
    /// Input images read.
    pub images: u32,
    /// Files written in all.
    pub written: u32,
    pub per_corruption: Vec<CorruptionCount>,
}

/// Writes every input image once per (corruption, severity), keeping its format and layout.
#[napi(ts_return_type = "Promise<CorruptFilesSummary>")]
pub fn corrupt_files(env: Env, options: CorruptFilesOptions) -> Result<AsyncTask<Typed<CorruptFilesTask>>> {
    sync(&env, || {
        let corruptions = options.corruptions.iter().map(|n| Corruption::parse(n)).collect::<advbn_core::Result<Vec<_>>>()?;
        if let Some(s) = options.severities.iter().find(|s| !(1..=5).contains(*s)) {
            return Err(Error::invalid_option("severity", s, "expected an integer in 1..=5").into());
        }
        Ok(task(CorruptFilesTask(CorruptFilesJob {
            input: options.input.into(),
            output: options.output.into(),
            corruptions,
            severities: options.severities.iter().map(|&s| s as u8).collect(),
            seed: seed_from_f64("seed", options.seed)?,
            threads: options.threads as usize,
        })))
    })
}

pub struct CorruptFilesTask(CorruptFilesJob);

impl Work for CorruptFilesTask {
    type Output = CorruptFilesSummary;
    type JsValue = CorruptFilesSummary;

    fn compute(&mut self) -> Outcome<CorruptFilesSummary> {
        let summary = core_corrupt_files(&self.0)?;
        Ok(CorruptFilesSummary {
            images: summary.images as u32,
            written: summary.written as u32,
            per_corruption: summary.per_corruption.into_iter().map(|(c, n)| CorruptionCount { name: c.name().to_string(), written: n as u32 }).collect(),
        })
    }

    fn resolve(&mut self, _env: Env, summary: CorruptFilesSummary) -> Result<CorruptFilesSummary> {
        Ok(summary)
    }
}

/// PNG or JPEG (quality 95) bytes of 8-bit interleaved pixels (height, width, channels);
/// lets tests write image files without an encoder of their own.
#[napi]
pub fn encode_image(env: Env, pixels: Uint8Array, width: u32, height: u32, channels: u32, format: String) -> Result<Buffer> {
    sync(&env, || {
        let image = Image::from_u8(width as usize, height as usize, channels as usize, &pixels)?;
        let bytes = match format.as_str() {
            "png" => encode_png(&image),
            "jpeg" => encode_jpeg(&image),
            other => Err(Error::invalid_option("format", format!("{other:?}"), "expected \"png\" or \"jpeg\"")),
        };
        Ok(bytes?.into())
    })
}
