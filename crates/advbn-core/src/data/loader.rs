//! Multi-threaded prefetching batch loader over a [`Source`].
//!
//! Each epoch starts worker threads that take whole batches (decode + transforms + normalise
//! per sample) from a job queue. The iterator keeps at most `max(prefetch, threads)` batches
//! in flight, receives them over a bounded channel and hands them out in order. Every sample's
//! randomness comes from `sample_rng(seed, epoch, index)`, so the bytes of every batch are
//! the same for any thread count. Dropping the iterator stops and joins the workers; each
//! stops after at most the sample it is working on.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle_core::{Device, Tensor};

use crate::data::sources::Source;
use crate::data::transforms::{sample_rng, Pipeline};
use crate::data::{epoch_order, Image};
use crate::error::{Error, Result};

/// What to do with a sample that fails to load or transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSample {
    /// The epoch ends with that sample's error.
    Error,
    /// Leave it out of its batch (which is then smaller) and name it in `Batch::skipped`.
    Skip,
}

#[derive(Debug, Clone)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    pub seed: u64,
    /// Leave out the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Batches in flight (at least one per thread is kept in flight anyway).
    pub prefetch: usize,
    pub on_bad_sample: BadSample,
    pub pipeline: Arc<Pipeline>,
    /// (channels, height, width) every sample must have after the transforms. `None`: only
    /// the samples of one batch must agree.
    pub image_shape: Option<(usize, usize, usize)>,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            shuffle: true,
            seed: 0,
            drop_last: false,
            threads: 0,
            prefetch: 2,
            on_bad_sample: BadSample::Error,
            pipeline: Arc::new(Pipeline::default()),
            image_shape: None,
        }
    }
}

/// One batch, (N, C, H, W) float32. Empty (`len() == 0`, zero shape) only when every sample of
/// it was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// "<sample>: <reason>" for each sample left out with `BadSample::Skip`.
    pub skipped: Vec<String>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// (images [N, C, H, W] f32, labels [N] u32) on `device`.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        if self.is_empty() {
            return Err(Error::invalid_data("cannot make tensors from an empty batch (every sample was skipped)"));
        }
        let images = Tensor::from_vec(self.images.clone(), (self.len(), self.channels, self.height, self.width), device)?;
        Ok((images, Tensor::from_vec(self.labels.clone(), self.len(), device)?))
    }
}

pub struct Loader {
    source: Arc<dyn Source>,
    config: LoaderConfig,
    threads: usize,
}

impl Loader {
    pub fn new(source: Arc<dyn Source>, config: LoaderConfig) -> Result<Self> {
        crate::options::BATCH_SIZE.check(config.batch_size as f64)?;
        crate::options::LOADER_THREADS.check(config.threads as f64)?;
        crate::options::LOADER_PREFETCH.check(config.prefetch as f64)?;
        if source.is_empty() {
            return Err(Error::invalid_data("the source has no samples"));
        }
        if source.len() > u32::MAX as usize {
            return Err(Error::invalid_data(format!("the source has {} samples, more than 2^32", source.len())));
        }
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Self { source, config, threads })
    }

    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.source.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// (channels, height, width) of the first sample after the transforms (sample 0, or with
    /// `BadSample::Skip` the first one that loads), drawn as in epoch 0.
    pub fn first_sample_shape(&self) -> Result<(usize, usize, usize)> {
        let worker = self.worker(0, Arc::new(AtomicBool::new(false)));
        let mut first_error = None;
        for index in 0..self.source.len() as u32 {
            match worker.sample(index) {
                Ok((image, _, _)) => return Ok((image.channels, image.height, image.width)),
                Err(e) if self.config.on_bad_sample == BadSample::Error => return Err(e),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let first = first_error.map_or_else(String::new, |e| format!(" (the first: {e})"));
        Err(Error::invalid_data(format!("every one of the {} samples failed to load{first}", self.source.len())))
    }

    fn worker(&self, epoch: u64, stop: Arc<AtomicBool>) -> Worker {
        let c = &self.config;
        Worker {
            source: Arc::clone(&self.source),
            pipeline: Arc::clone(&c.pipeline),
            on_bad_sample: c.on_bad_sample,
            image_shape: c.image_shape,
            seed: c.seed,
            epoch,
            stop,
        }
    }

    /// The batches of `epoch`, in `epoch_order(len, shuffle, seed, epoch)`.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        let c = &self.config;
        let order = epoch_order(self.source.len(), c.shuffle, c.seed, epoch);
        let batches: Vec<Vec<u32>> = order.chunks(c.batch_size).take(self.num_batches()).map(|b| b.to_vec()).collect();
        let in_flight = c.prefetch.max(self.threads);
        let (job_tx, job_rx) = channel::<(usize, Vec<u32>)>();
        let (result_tx, result_rx) = sync_channel(in_flight);
        let stopper = Stopper { stop: Arc::new(AtomicBool::new(false)), jobs: Arc::new(Mutex::new(Some(job_tx))) };
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..self.threads.min(batches.len()))
            .map(|_| {
                let job_rx = Arc::clone(&job_rx);
                let worker = self.worker(epoch, Arc::clone(&stopper.stop));
                let tx = result_tx.clone();
                std::thread::spawn(move || worker.run(&job_rx, &tx))
            })
            .collect();
        let mut iter =
            EpochIter { results: Some(result_rx), pending: HashMap::new(), batches: batches.into_iter().enumerate(), next: 0, total: 0, stopper, workers };
        iter.total = iter.batches.len();
        for _ in 0..in_flight {
            iter.send_job();
        }
        iter
    }
}

struct Worker {
    source: Arc<dyn Source>,
    pipeline: Arc<Pipeline>,
    on_bad_sample: BadSample,
    image_shape: Option<(usize, usize, usize)>,
    seed: u64,
    epoch: u64,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(&self, jobs: &Mutex<Receiver<(usize, Vec<u32>)>>, results: &SyncSender<(usize, Result<Batch>)>) {
        loop {
            let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
            let Ok((number, indices)) = job else { return };
            let built = catch_unwind(AssertUnwindSafe(|| self.batch(&indices)))
                .unwrap_or_else(|_| Err(Error::invalid_data(format!("a worker panicked while loading batch {number}"))));
            let Some(built) = built.transpose() else { return }; // stopped
            if results.send((number, built)).is_err() {
                return;
            }
        }
    }

    /// `Ok(None)` when stopped part way.
    fn batch(&self, indices: &[u32]) -> Result<Option<Batch>> {
        let mut batch = Batch { images: Vec::new(), labels: Vec::new(), channels: 0, height: 0, width: 0, skipped: Vec::new() };
        let mut first: Option<String> = None;
        for &index in indices {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let sample = self.sample(index);
            let (image, label, chw) = match sample {
                Ok(s) => s,
                Err(e) => match self.on_bad_sample {
                    BadSample::Error => return Err(e),
                    BadSample::Skip => {
                        batch.skipped.push(e.to_string());
                        continue;
                    }
                },
            };
            let shape = (image.channels, image.height, image.width);
            if let Some(expected) = self.image_shape.filter(|e| *e != shape) {
                return Err(Error::invalid_data(format!(
                    "{} is {}x{}x{} (WxHxC) after the transforms but the dataset's images are {}x{}x{}; \
                     add a resize or crop transform (sizes) or a grayscale/RGB conversion (channels)",
                    self.source.describe(index as usize),
                    shape.2,
                    shape.1,
                    shape.0,
                    expected.2,
                    expected.1,
                    expected.0
                )));
            }
            match &first {
                None => {
                    (batch.channels, batch.height, batch.width) = (image.channels, image.height, image.width);
                    batch.images.reserve(chw.len() * indices.len());
                    first = Some(self.source.describe(index as usize));
                }
                Some(first) if (image.channels, image.height, image.width) != (batch.channels, batch.height, batch.width) => {
                    return Err(Error::invalid_data(format!(
                        "samples of one batch differ in size: {} is {}x{}x{} (WxHxC) after the transforms but {first} is {}x{}x{}; \
                         add a Resize/CenterCrop/RandomResizedCrop transform (sizes) or Grayscale(3) (channels)",
                        self.source.describe(index as usize),
                        image.width,
                        image.height,
                        image.channels,
                        batch.width,
                        batch.height,
                        batch.channels
                    )));
                }
                Some(_) => {}
            }
            batch.images.extend_from_slice(&chw);
            batch.labels.push(label);
        }
        Ok(Some(batch))
    }

    /// One sample through the pipeline; an error that does not name the sample gets its name.
    fn sample(&self, index: u32) -> Result<(Image, u32, Vec<f32>)> {
        let run = || -> Result<(Image, u32, Vec<f32>)> {
            let (image, label) = self.source.load(index as usize)?;
            if label as usize >= self.source.num_classes() {
                return Err(Error::invalid_data(format!("label {label} is out of range for {} classes", self.source.num_classes())));
            }
            let image = self.pipeline.apply(image, &mut sample_rng(self.seed, self.epoch, index))?;
            let chw = self.pipeline.to_chw_normalized(&image)?;
            Ok((image, label, chw))
        };
        run().map_err(|e| {
            let name = self.source.describe(index as usize);
            match e {
                Error::InvalidData(msg) if !msg.contains(&name) => Error::invalid_data(format!("{name}: {msg}")),
                other => other,
            }
        })
    }
}

/// Batch number and sample indices: one job of a worker.
type Job = (usize, Vec<u32>);

/// Stops the workers of one epoch from any thread, even while another thread waits in
/// [`EpochIter::next`] (which then returns what was already loaded, then an error).
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    jobs: Arc<Mutex<Option<Sender<Job>>>>,
}

impl Stopper {
    /// Each worker stops after at most the sample it is working on; idle ones at once.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        // Workers waiting for a job see the queue closed.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// Batches of one epoch, in order. Ends after the first error.
pub struct EpochIter {
    results: Option<Receiver<(usize, Result<Batch>)>>,
    pending: HashMap<usize, Result<Batch>>,
    batches: std::iter::Enumerate<std::vec::IntoIter<Vec<u32>>>,
    next: usize,
    total: usize,
    stopper: Stopper,
    workers: Vec<JoinHandle<()>>,
}

impl EpochIter {
    /// A handle that stops this epoch's workers from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    fn send_job(&mut self) {
        let jobs = self.stopper.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(tx), Some(job)) = (jobs.as_ref(), self.batches.next()) {
            let _ = tx.send(job);
        }
    }

    fn shutdown(&mut self) {
        self.stopper.stop();
        self.results = None; // workers blocked sending see the receiver gone
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        self.pending.clear();
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.total || self.results.is_none() {
            return None;
        }
        let result = loop {
            if let Some(r) = self.pending.remove(&self.next) {
                break r;
            }
            match self.results.as_ref()?.recv() {
                Ok((number, r)) => {
                    self.pending.insert(number, r);
                }
                Err(_) => break Err(Error::invalid_data("data loader workers stopped unexpectedly")),
            }
        };
        self.next += 1;
        if result.is_err() {
            self.shutdown();
        } else {
            self.send_job();
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.total.saturating_sub(self.next);
        (0, Some(left))
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One pass as a training loop consumes it: batches whose every sample was skipped as bad are
/// folded into a neighbour, so each batch handed out has samples and reports every skip. Skips
/// before a batch join it, and by looking one batch ahead so do the ones right after it, so a
/// trailing run of empty batches is still reported with the last real batch.
pub struct Pass {
    iter: Option<EpochIter>,
    peeked: Option<Result<Batch>>,
}

impl Pass {
    pub fn new(iter: EpochIter) -> Self {
        Self { iter: Some(iter), peeked: None }
    }

    /// Gives up the pass's workers (e.g. to join them on another thread); the pass is then over.
    pub fn take_workers(&mut self) -> Option<EpochIter> {
        self.peeked = None;
        self.iter.take()
    }

    fn pull(&mut self) -> Option<Result<Batch>> {
        self.peeked.take().or_else(|| self.iter.as_mut().and_then(Iterator::next))
    }

    /// The next batch with samples, and every sample skipped since the previous one
    /// ("<sample>: <reason>", its own included); `None` at the end. An error ends the pass, as
    /// does a pass whose every sample was skipped (an error naming the first).
    pub fn next_batch(&mut self) -> Result<Option<(Batch, Vec<String>)>> {
        let mut skipped = Vec::new();
        let batch = loop {
            match self.pull() {
                None => {
                    self.iter = None;
                    if skipped.is_empty() {
                        return Ok(None);
                    }
                    let first = &skipped[0];
                    return Err(Error::invalid_data(format!("every sample of this pass was skipped as bad ({} samples; the first: {first})", skipped.len())));
                }
                Some(Err(e)) => {
                    self.iter = None;
                    return Err(e);
                }
                Some(Ok(b)) if b.is_empty() => skipped.extend(b.skipped),
                Some(Ok(b)) => break b,
            }
        };
        skipped.extend(batch.skipped.iter().cloned());
        loop {
            match self.iter.as_mut().and_then(Iterator::next) {
                Some(Ok(b)) if b.is_empty() => skipped.extend(b.skipped),
                None => {
                    self.iter = None;
                    break;
                }
                other => {
                    self.peeked = other;
                    break;
                }
            }
        }
        Ok(Some((batch, skipped)))
    }
}
