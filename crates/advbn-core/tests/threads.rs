//! CPU results do not depend on the thread count: the same run on 1 and on 3 compute threads
//! (RAYON_NUM_THREADS, read once per process, so each run is a child process of this test)
//! gives bit-identical weights, losses and logits. The model's layers reach every CPU conv path
//! (the "same" kernels, the staged stride-2 kernels, the filter kernel, im2col on the small late
//! maps) and the per-channel ops, in AdvBN and whole-network ERM steps. Nor on the lanes the
//! threads are split into (`threads::set_lanes`), whose own behaviour is tested here too.

mod common;

use std::process::Command;

use advbn_core::eval::predict;
use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::nn::BnBranch;
use advbn_core::train::{Method, Schedule, TrainConfig, Trainer};
use candle_core::{DType, Device};
use common::{separable_batch, values};

/// The run whose numbers are compared: prints one line, a digest of every f32 bit it produced.
#[test]
#[ignore = "run by thread_count_does_not_change_the_numbers in a child process"]
fn digest_of_a_training_run() {
    if let Ok(lanes) = std::env::var("DIGEST_LANES") {
        advbn_core::threads::set_lanes(lanes.parse().unwrap()).unwrap();
    }
    let config = ModelConfig { seed: 3, dtype: DType::F32, ..ModelConfig::new(Arch::SmallResNet { depth: 8, width: 16 }, 5) };
    let mut model = ResNet::new(config, &Device::Cpu).unwrap();
    let (images, labels) = separable_batch(24, 5, 12, 7, DType::F32);
    let mut bits: Vec<u64> = Vec::new();
    for (method, cut) in [(Method::AdvBn, 1), (Method::Erm, 0)] {
        let config = TrainConfig { lr: 0.05, schedule: Schedule::Constant, epochs: 2, cut, ..TrainConfig::reference(method, 2) };
        let mut trainer = Trainer::new(&mut model, config).unwrap();
        for step in 0..2 {
            let logs = trainer.step(&model, &images, &labels, 0, step).unwrap();
            bits.extend([logs.loss.to_bits(), logs.clean_loss.to_bits()]);
        }
    }
    let logits = predict(&model, &images, BnBranch::Adv).unwrap();
    bits.extend(values(&logits).iter().map(|v| v.to_bits()));
    for (_, var) in model.params().all() {
        bits.extend(values(var.as_tensor()).iter().map(|v| v.to_bits()));
    }
    // FNV-1a over the bits, and how many values went in.
    let hash = bits.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ b).wrapping_mul(0x100000001b3));
    println!("DIGEST {hash:016x} {}", bits.len());
}

/// Runs the ignored test `name` in a child process with `threads` compute threads.
fn run_child(name: &str, threads: usize, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn digest_with_threads(threads: usize, lanes: Option<&str>) -> String {
    let out = run_child("digest_of_a_training_run", threads, &lanes.map(|l| ("DIGEST_LANES", l)).into_iter().collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child run with {threads} threads failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let at = stdout.find("DIGEST ").unwrap_or_else(|| panic!("no digest in:\n{stdout}"));
    stdout[at..].lines().next().unwrap_or_default().to_string()
}

#[test]
fn thread_count_does_not_change_the_numbers() {
    let (one, three) = (digest_with_threads(1, None), digest_with_threads(3, None));
    assert_eq!(one, three, "1 thread and 3 threads disagree");
    assert_eq!(digest_with_threads(1, None), one, "the same run twice disagrees");
    // 3 threads in 2 lanes: the run happens in the first lane, of 2 threads.
    assert_eq!(digest_with_threads(3, Some("2")), one, "3 threads in 2 lanes disagree with 1 thread");
}

/// Runs `job` on the CPU from a thread of its own.
fn spawn_job<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> std::thread::JoinHandle<R> {
    std::thread::spawn(move || advbn_core::threads::run_on(&Device::Cpu, job))
}

/// Two jobs in flight at once, each in a lane of its own: each waits for the other to start,
/// which never happens if they share a lane (or if no lane is free). Per job, the size of its
/// lane and that of a job started inside it (work started in a lane stays there); sorted.
fn two_jobs_at_once() -> Vec<(usize, usize)> {
    use std::sync::mpsc::channel;
    use std::time::Duration;
    let (a_started, a_seen) = channel();
    let (b_started, b_seen) = channel();
    let (done, results) = channel();
    for (started, other) in [(a_started, b_seen), (b_started, a_seen)] {
        let done = done.clone();
        let _ = spawn_job(move || {
            started.send(()).unwrap();
            let met = other.recv_timeout(Duration::from_secs(20)).is_ok();
            let _ = done.send(met.then(|| (rayon::current_num_threads(), advbn_core::threads::run_on(&Device::Cpu, rayon::current_num_threads))));
        });
    }
    let mut sizes: Vec<(usize, usize)> =
        (0..2).map(|_| results.recv_timeout(Duration::from_secs(30)).expect("a job never got a lane").expect("the two jobs did not run at once")).collect();
    sizes.sort();
    sizes
}

#[test]
#[ignore = "run by lanes_split_the_threads in a child process with 3 threads"]
fn lanes_with_three_threads() {
    use advbn_core::threads::{lane_count, run_on, set_lanes, thread_count};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    assert_eq!((thread_count(), lane_count()), (3, 1));
    assert_eq!(run_on(&Device::Cpu, rayon::current_num_threads), 3);
    for bad in [0, 4] {
        let message = set_lanes(bad).unwrap_err().to_string();
        assert!(message.contains("`lanes`") && message.contains("between 1 and the number of compute threads (3)"), "{message}");
    }
    assert_eq!(lane_count(), 1, "a rejected count changed the lanes");

    set_lanes(2).unwrap();
    assert_eq!(lane_count(), 2);
    assert_eq!(two_jobs_at_once(), [(1, 1), (2, 2)]);

    // With both lanes busy, a third job waits for one.
    let (release, hold) = channel::<()>();
    let (release2, hold2) = channel::<()>();
    let busy = [spawn_job(move || hold.recv().unwrap()), spawn_job(move || hold2.recv().unwrap())];
    std::thread::sleep(Duration::from_millis(200));
    let (ran, third_ran) = channel();
    let third = spawn_job(move || ran.send(()).unwrap());
    assert!(third_ran.recv_timeout(Duration::from_millis(300)).is_err(), "a third job ran while both lanes were busy");
    release.send(()).unwrap();
    third_ran.recv_timeout(Duration::from_secs(20)).expect("the third job never got the freed lane");
    release2.send(()).unwrap();
    for job in busy {
        job.join().unwrap();
    }
    third.join().unwrap();

    // A job that panics hands its lane back.
    for _ in 0..3 {
        assert!(std::panic::catch_unwind(|| run_on(&Device::Cpu, || panic!("in a lane"))).is_err());
    }
    assert_eq!(two_jobs_at_once(), [(1, 1), (2, 2)]);

    set_lanes(1).unwrap();
    assert_eq!((lane_count(), run_on(&Device::Cpu, rayon::current_num_threads)), (1, 3));
    println!("LANES OK");
}

#[test]
fn lanes_split_the_threads() {
    let out = run_child("lanes_with_three_threads", 3, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("LANES OK"), "child failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
