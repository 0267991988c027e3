//! The CPU compute pool: the threads every CPU kernel forks onto (ours, the `gemm` crate's and
//! Candle's all use rayon's current pool).
//!
//! Heavy entry points (a training step, a prediction) run *inside* the pool, so their thread is
//! one of its workers: a parallel region then splits between the workers already there, instead
//! of a caller thread handing each region over and sleeping until it is done (two context
//! switches per op, a quarter of a small model's step when measured). Its size is
//! `RAYON_NUM_THREADS` when set, else the number of cores.

use std::sync::OnceLock;

use candle_core::Device;

fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        crate::alloc_cache::configure_from_env();
        rayon::ThreadPoolBuilder::new()
            .num_threads(candle_core::utils::get_num_threads())
            .thread_name(|i| format!("advbn-cpu-{i}"))
            .build()
            .expect("start the CPU compute threads")
    })
}

/// Number of threads CPU kernels use.
pub fn thread_count() -> usize {
    pool().current_num_threads()
}

/// Runs `work` on the compute pool when `device` is the CPU (inline if already there). GPU work
/// stays on the calling thread, which owns the device's stream.
pub fn run_on<R: Send>(device: &Device, work: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        pool().install(work)
    } else {
        work()
    }
}
