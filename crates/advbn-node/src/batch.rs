//! `NativeBatch`: images and labels already on the device, handed from a dataset to a step.

use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{task, Failure, Outcome, Typed, Work};
use crate::executor;

#[derive(Clone)]
pub struct SharedBatch(Arc<Mutex<Option<(Tensor, Tensor)>>>);

impl SharedBatch {
    pub fn new(images: Tensor, labels: Tensor) -> Self {
        Self(Arc::new(Mutex::new(Some((images, labels)))))
    }

    /// (images, labels), cheap clones of the device tensors.
    pub fn tensors(&self) -> Outcome<(Tensor, Tensor)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| Failure::disposed("batch"))
    }
}

#[napi]
pub struct NativeBatch {
    inner: SharedBatch,
    size: u32,
    skipped: Vec<String>,
}

impl NativeBatch {
    pub fn new(images: Tensor, labels: Tensor) -> Self {
        let size = labels.dims().first().copied().unwrap_or(0) as u32;
        Self { inner: SharedBatch::new(images, labels), size, skipped: Vec::new() }
    }

    /// The batch with the samples a loader left out of it ("<sample>: <reason>").
    pub fn with_skipped(mut self, skipped: Vec<String>) -> Self {
        self.skipped = skipped;
        self
    }

    pub fn shared(&self) -> SharedBatch {
        self.inner.clone()
    }
}

#[napi]
impl NativeBatch {
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Samples left out of this batch as bad ("<sample>: <reason>"); empty for array datasets.
    #[napi(getter)]
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.clone()
    }

    /// Copies the batch back to host memory (for tests and inspection).
    #[napi(ts_return_type = "Promise<BatchArrays>")]
    pub fn to_arrays(&self) -> AsyncTask<Typed<ToArraysTask>> {
        task(ToArraysTask(self.inner.clone()))
    }

    #[napi]
    pub fn dispose(&self) {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A batch in host memory: images [N, C, H, W] row-major, one label per image.
#[napi(object)]
pub struct BatchArrays {
    pub images: Float32Array,
    pub shape: Vec<u32>,
    pub labels: Int32Array,
}

pub struct ToArraysTask(SharedBatch);

impl Work for ToArraysTask {
    type Output = (Vec<f32>, Vec<u32>, Vec<i32>);
    type JsValue = BatchArrays;

    fn compute(&mut self) -> Outcome<Self::Output> {
        let batch = self.0.clone();
        executor::run(move || {
            let (images, labels) = batch.tensors()?;
            let shape = images.dims().iter().map(|&d| d as u32).collect();
            let pixels = images.flatten_all().and_then(|t| t.to_vec1::<f32>())?;
            let labels = labels.to_vec1::<u32>()?.into_iter().map(|l| l as i32).collect();
            Ok((pixels, shape, labels))
        })
    }

    fn resolve(&mut self, _env: Env, (images, shape, labels): Self::Output) -> Result<BatchArrays> {
        Ok(BatchArrays { images: Float32Array::new(images), shape, labels: Int32Array::new(labels) })
    }
}
