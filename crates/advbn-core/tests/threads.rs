//! CPU results do not depend on the thread count: the same run on 1 and on 3 compute threads
//! (RAYON_NUM_THREADS, read once per process, so each run is a child process of this test)
//! gives bit-identical weights, losses and logits. The model's layers reach every CPU conv path
//! (the "same" kernels, the staged stride-2 kernels, the filter kernel, im2col on the small late
//! maps) and the per-channel ops, in AdvBN and whole-network ERM steps.

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

fn digest_with_threads(threads: usize) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["digest_of_a_training_run", "--exact", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child run with {threads} threads failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let at = stdout.find("DIGEST ").unwrap_or_else(|| panic!("no digest in:\n{stdout}"));
    stdout[at..].lines().next().unwrap_or_default().to_string()
}

#[test]
fn thread_count_does_not_change_the_numbers() {
    let (one, three) = (digest_with_threads(1), digest_with_threads(3));
    assert_eq!(one, three, "1 thread and 3 threads disagree");
    assert_eq!(digest_with_threads(1), one, "the same run twice disagrees");
}
