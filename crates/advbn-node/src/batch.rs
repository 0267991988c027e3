//! `NativeBatch`: images and labels already on the device, handed from a dataset to a step.

use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use napi_derive::napi;

use crate::errors::disposed;

#[derive(Clone)]
pub struct SharedBatch(Arc<Mutex<Option<(Tensor, Tensor)>>>);

impl SharedBatch {
  pub fn new(images: Tensor, labels: Tensor) -> Self {
    Self(Arc::new(Mutex::new(Some((images, labels)))))
  }

  /// (images, labels), cheap clones of the device tensors.
  pub fn tensors(&self) -> napi::Result<(Tensor, Tensor)> {
    self.0.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| disposed("batch"))
  }
}

#[napi]
pub struct NativeBatch {
  inner: SharedBatch,
  size: u32,
}

impl NativeBatch {
  pub fn new(images: Tensor, labels: Tensor) -> Self {
    let size = labels.dims().first().copied().unwrap_or(0) as u32;
    Self { inner: SharedBatch::new(images, labels), size }
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

  #[napi]
  pub fn dispose(&self) {
    self.inner.0.lock().unwrap_or_else(|e| e.into_inner()).take();
  }
}
