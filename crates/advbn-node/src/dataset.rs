//! `NativeDataset`: in-memory images validated and stored once in Rust.

use std::sync::Arc;

use advbn_core::data::selection::{random_subset as core_random_subset, stratified_split as core_stratified_split};
use advbn_core::data::{epoch_order as core_epoch_order, ArrayDataset, ImageLayout, PixelData};
use advbn_core::device::parse_device;
use advbn_core::error::seed_from_f64;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::batch::NativeBatch;
use crate::errors::{sync, task, Failure, Outcome, Typed, Work};
use crate::executor;

/** How the pixels of an array dataset are ordered. */
#[napi(string_enum = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[napi(object)]
pub struct ArrayDatasetOptions {
    pub shape: Vec<u32>,
    pub layout: Layout,
    pub num_classes: Option<u32>,
    pub mean: Option<Vec<f64>>,
    pub std: Option<Vec<f64>>,
}

#[napi]
pub struct NativeDataset {
    inner: Option<Arc<ArrayDataset>>,
}

impl NativeDataset {
    /// Wraps a dataset built on the Rust side (e.g. the digits benchmark).
    pub fn from_core(dataset: ArrayDataset) -> Self {
        Self { inner: Some(Arc::new(dataset)) }
    }

    fn data(&self) -> Outcome<&Arc<ArrayDataset>> {
        self.inner.as_ref().ok_or_else(|| Failure::disposed("dataset"))
    }

    fn build(images: Either<Float32Array, Uint8Array>, labels: Int32Array, options: ArrayDatasetOptions) -> Outcome<Self> {
        let layout = match options.layout {
            Layout::Nchw => ImageLayout::Nchw,
            Layout::Nhwc => ImageLayout::Nhwc,
        };
        let shape: Vec<usize> = options.shape.iter().map(|&d| d as usize).collect();
        let normalize = match (&options.mean, &options.std) {
            (Some(mean), Some(std)) => Some((mean.as_slice(), std.as_slice())),
            (None, None) => None,
            _ => return Err(advbn_core::Error::invalid_option("normalize", "mean/std", "give both mean and std, or neither").into()),
        };
        let pixels = match &images {
            Either::A(f) => PixelData::F32(f.as_ref()),
            Either::B(u) => PixelData::U8(u.as_ref()),
        };
        let dataset = ArrayDataset::new(pixels, labels.as_ref(), &shape, layout, options.num_classes.map(|n| n as usize), normalize)?;
        Ok(Self { inner: Some(Arc::new(dataset)) })
    }
}

#[napi]
impl NativeDataset {
    /// Copies and validates the arrays (shape, NaN/inf, label range).
    #[napi(factory)]
    pub fn from_arrays(env: Env, images: Either<Float32Array, Uint8Array>, labels: Int32Array, options: ArrayDatasetOptions) -> Result<Self> {
        sync(&env, || Self::build(images, labels, options))
    }

    #[napi(getter)]
    pub fn length(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.data()?.len() as u32))
    }

    #[napi(getter)]
    pub fn num_classes(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.data()?.num_classes() as u32))
    }

    #[napi(getter)]
    pub fn channels(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.data()?.image_shape().0 as u32))
    }

    #[napi(getter)]
    pub fn height(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.data()?.image_shape().1 as u32))
    }

    #[napi(getter)]
    pub fn width(&self, env: Env) -> Result<u32> {
        sync(&env, || Ok(self.data()?.image_shape().2 as u32))
    }

    /// Gathers the given sample indices into a batch on `device`. With `augmix` = [seed, epoch],
    /// every image goes through AugMix first (seeded per sample).
    #[napi(ts_return_type = "Promise<NativeBatch>")]
    pub fn batch(&self, env: Env, indices: Uint32Array, device: String, augmix: Option<Vec<u32>>) -> Result<AsyncTask<Typed<BatchTask>>> {
        sync(&env, || {
            let augment = match augmix.as_deref() {
                None => None,
                Some([seed, epoch]) => Some((*seed as u64, *epoch as u64)),
                Some(other) => return Err(advbn_core::Error::invalid_option("augmix", format!("{other:?}"), "expected [seed, epoch]").into()),
            };
            Ok(task(BatchTask { dataset: self.data()?.clone(), indices: indices.to_vec(), device, augment }))
        })
    }

    /// The labels, in sample order.
    #[napi]
    pub fn labels(&self, env: Env) -> Result<Uint32Array> {
        sync(&env, || Ok(Uint32Array::new(self.data()?.labels().to_vec())))
    }

    /// The samples `indices`, sharing this dataset's stored images.
    #[napi]
    pub fn select(&self, env: Env, indices: Uint32Array) -> Result<NativeDataset> {
        sync(&env, || Ok(Self::from_core(self.data()?.select(&indices)?)))
    }

    /// The parts one after another (views when they share stored images, else one copy).
    #[napi(factory)]
    pub fn concat(env: Env, parts: Vec<&NativeDataset>) -> Result<NativeDataset> {
        sync(&env, || {
            let parts = parts.iter().map(|p| p.data().map(|d| d.as_ref())).collect::<Outcome<Vec<_>>>()?;
            Ok(Self::from_core(ArrayDataset::concat(&parts)?))
        })
    }

    /// The data is shared with in-flight batches; dropping the handle frees it when they finish.
    #[napi]
    pub fn dispose(&mut self) {
        self.inner = None;
    }
}

pub struct BatchTask {
    dataset: Arc<ArrayDataset>,
    indices: Vec<u32>,
    device: String,
    augment: Option<(u64, u64)>,
}

impl Work for BatchTask {
    type Output = NativeBatch;
    type JsValue = NativeBatch;

    fn compute(&mut self) -> Outcome<NativeBatch> {
        let (dataset, indices, device, augment) = (self.dataset.clone(), std::mem::take(&mut self.indices), self.device.clone(), self.augment);
        // Gathering (and AugMix) is host work: it runs here; only the upload uses the compute thread.
        let (pixels, labels) = dataset.gather(&indices, augment)?;
        executor::run_for(&device.clone(), move || {
            let device = parse_device(&device)?;
            let (images, labels) = dataset.to_tensors(pixels, labels, &device)?;
            Ok(NativeBatch::new(images, labels))
        })
    }

    fn resolve(&mut self, _env: Env, batch: NativeBatch) -> Result<NativeBatch> {
        Ok(batch)
    }
}

/// Seeded sample order for one epoch: identity when shuffle is false.
#[napi]
pub fn epoch_order(length: u32, shuffle: bool, seed: f64, epoch: u32) -> Uint32Array {
    Uint32Array::new(core_epoch_order(length as usize, shuffle, seed as u64, epoch as u64))
}

/// `limit` of `0..length` drawn without replacement (seeded), ascending.
#[napi]
pub fn random_subset(env: Env, length: u32, limit: u32, seed: f64) -> Result<Uint32Array> {
    sync(&env, || Ok(Uint32Array::new(core_random_subset(length as usize, limit as usize, seed_from_f64("seed", seed)?))))
}

/// Class-stratified parts of the given fractions (seeded), each ascending.
#[napi]
pub fn stratified_split(env: Env, labels: Uint32Array, fractions: Vec<f64>, seed: f64) -> Result<Vec<Uint32Array>> {
    sync(&env, || Ok(core_stratified_split(&labels, &fractions, seed_from_f64("seed", seed)?)?.into_iter().map(Uint32Array::new).collect()))
}
