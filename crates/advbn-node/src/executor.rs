//! All GPU work runs on ONE dedicated thread. Candle's CUDA device works on a per-thread stream,
//! and napi tasks run on libuv's pool threads: funnelling every GPU job through one thread avoids
//! cross-stream races and keeps the device state in one place. CPU jobs run right on the task's
//! pool thread, so independent models (e.g. several seeds) use several cores. Panics are caught
//! here either way.

use std::sync::mpsc::{channel, sync_channel, Sender};
use std::sync::{Mutex, OnceLock};

use crate::errors::{catch_panics, Failure, Outcome};

type Job = Box<dyn FnOnce() + Send>;

fn sender() -> &'static Mutex<Sender<Job>> {
    static SENDER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    SENDER.get_or_init(|| {
        let (tx, rx) = channel::<Job>();
        std::thread::Builder::new()
            .name("advbn-compute".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawn the advbn compute thread");
        Mutex::new(tx)
    })
}

/// Runs `job` where work for `device` ("cpu", "cuda:0", ...) belongs: inline for the CPU, on
/// the compute thread for a GPU. Called from napi task threads.
pub fn run_for<T: Send + 'static>(device: &str, job: impl FnOnce() -> Outcome<T> + Send + 'static) -> Outcome<T> {
    if device == "cpu" {
        catch_panics(job)
    } else {
        run(job)
    }
}

/// Runs `job` on the compute thread and waits for its result (called from napi task threads).
pub fn run<T: Send + 'static>(job: impl FnOnce() -> Outcome<T> + Send + 'static) -> Outcome<T> {
    let (done_tx, done_rx) = sync_channel(1);
    let wrapped: Job = Box::new(move || {
        let _ = done_tx.send(catch_panics(job));
    });
    let gone = |what: &'static str| Failure::panic(Box::new(what));
    sender().lock().unwrap_or_else(|e| e.into_inner()).send(wrapped).map_err(|_| gone("the compute thread is gone"))?;
    done_rx.recv().map_err(|_| gone("the compute thread dropped a job"))?
}
