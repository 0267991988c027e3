//! The CPU compute threads every CPU kernel forks onto (ours, the `gemm` crate's and Candle's
//! all use rayon's current pool).
//!
//! Heavy entry points (a training step, a prediction) run *inside* a pool, so their thread is
//! one of its workers: a parallel region then splits between the workers already there, instead
//! of a caller thread handing each region over and sleeping until it is done (two context
//! switches per op, a quarter of a small model's step when measured). The threads are
//! `RAYON_NUM_THREADS` when set, else one per core.
//!
//! By default they form one pool (one *lane*). Jobs that run side by side (several small models
//! trained at once) can split them into lanes with [`set_lanes`]: each job then takes a lane of
//! its own for its duration, so small ops never wait on a thread busy with another job's work.
//! Results do not depend on it: every sum is split the same way whatever the thread count.

use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, RwLock};

use candle_core::Device;

use crate::error::{Error, Result};

/// The compute threads, split into lanes; the idle lanes wait in `free`.
struct Lanes {
    pools: Vec<rayon::ThreadPool>,
    free: Mutex<Vec<usize>>,
    freed: Condvar,
}

thread_local! {
    /// Whether this thread is one of the lanes' workers (work started there stays there).
    static IN_LANE: Cell<bool> = const { Cell::new(false) };
}

impl Lanes {
    fn new(count: usize) -> Lanes {
        let threads = thread_count();
        let pools = (0..count)
            .map(|lane| {
                // The first `threads % count` lanes get one thread more.
                let size = threads / count + usize::from(lane < threads % count);
                rayon::ThreadPoolBuilder::new()
                    .num_threads(size)
                    .thread_name(move |i| format!("advbn-cpu-{lane}-{i}"))
                    .start_handler(|_| IN_LANE.with(|f| f.set(true)))
                    .build()
                    .expect("start the CPU compute threads")
            })
            .collect();
        // Reversed, so that `pop` hands out lane 0 first.
        Lanes { pools, free: Mutex::new((0..count).rev().collect()), freed: Condvar::new() }
    }

    /// Runs `work` in an idle lane, waiting for one when all are busy.
    fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        let lane = {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match free.pop() {
                    Some(lane) => break lane,
                    None => free = self.freed.wait(free).unwrap_or_else(PoisonError::into_inner),
                }
            }
        };
        // Handed back on the way out, a panic included.
        struct Release<'a>(&'a Lanes, usize);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.free.lock().unwrap_or_else(PoisonError::into_inner).push(self.1);
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self, lane);
        self.pools[lane].install(work)
    }
}

fn slot() -> &'static RwLock<Arc<Lanes>> {
    static LANES: OnceLock<RwLock<Arc<Lanes>>> = OnceLock::new();
    LANES.get_or_init(|| {
        crate::alloc_cache::configure_from_env();
        RwLock::new(Arc::new(Lanes::new(1)))
    })
}

fn current() -> Arc<Lanes> {
    slot().read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Number of threads CPU kernels use, over all lanes.
pub fn thread_count() -> usize {
    candle_core::utils::get_num_threads()
}

/// Number of lanes the compute threads form (1 unless [`set_lanes`] changed it).
pub fn lane_count() -> usize {
    current().pools.len()
}

/// Splits the compute threads into `count` lanes of (nearly) equal size, for `count` jobs run
/// side by side; 1 is one pool of every thread, the default. Jobs in flight finish in the lanes
/// they started in.
pub fn set_lanes(count: usize) -> Result<()> {
    let threads = thread_count();
    if count == 0 || count > threads {
        return Err(Error::invalid_option("lanes", count, format!("must be between 1 and the number of compute threads ({threads})")));
    }
    let mut lanes = slot().write().unwrap_or_else(PoisonError::into_inner);
    if lanes.pools.len() != count {
        // The old lanes' threads end when the last job in them lets go of its handle.
        *lanes = Arc::new(Lanes::new(count));
    }
    Ok(())
}

/// Runs `work` in a lane of the compute threads when `device` is the CPU (inline if already in
/// one). GPU work stays on the calling thread, which owns the device's stream.
pub fn run_on<R: Send>(device: &Device, work: impl FnOnce() -> R + Send) -> R {
    if !device.is_cpu() || IN_LANE.with(Cell::get) {
        work()
    } else {
        current().run(work)
    }
}
