//! Our side of the CPU step benchmark (bench/run_cpu.sh runs it next to bench/torch_cpu_step.py):
//! the same four workloads, through the same entry points a user's `fineTune` / `evaluate` call
//! reaches (`Trainer::step`, `eval::predict`).
//!
//! 1. resnet18_train: ResNet-18 (10 classes), 96 px, batch 32, whole network (cut 0, ERM), SGD
//!    lr 0.01 momentum 0.9 weight decay 1e-4.
//! 2. resnet18_eval: the same model, eval-mode forward (clean BNs).
//! 3. small_advbn: small ResNet depth 20 width 16, 32 px, batch 128, cut 1, AdvBN step (K = 6,
//!    step 0.2, eps 1.1), SGD lr 1e-3 momentum 0.9 weight decay 1e-4.
//! 4. small_erm: the same model and cut, plain tail step (ERM).
//!
//! Uniform random images and random labels. Warm-up steps, then the median of timed steps.
//! Prints one JSON object (images/s per workload); progress on stderr.
//! `cargo bench -p advbn-core --bench cpu_step -- [--only a,b] [--layers l1,l2] [--warm N] [--reps N] [--budget S]
//! [--no-alloc-cache]` (the last turns off the allocator's block cache, `alloc_cache`, for A/B runs).

use std::time::Instant;

use advbn_core::alloc_cache::{Allocator, CACHE};
use advbn_core::eval::predict;
use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::nn::BnBranch;
use advbn_core::train::{Method, OptimizerConfig, Schedule, TrainConfig, Trainer};
use candle_core::{DType, Device, Tensor};

struct Args {
    only: Vec<String>,
    /// `conv_layers`: only these layers (all when empty).
    layers: Vec<String>,
    warm: usize,
    reps: usize,
    budget_s: f64,
}

fn parse_args() -> Args {
    let mut args = Args { only: Vec::new(), layers: Vec::new(), warm: 2, reps: 9, budget_s: 40.0 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--only" => args.only = value().split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            "--layers" => args.layers = value().split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
            "--warm" => args.warm = value().parse().expect("--warm N"),
            "--reps" => args.reps = value().parse().expect("--reps N"),
            "--budget" => args.budget_s = value().parse().expect("--budget SECONDS"),
            "--no-alloc-cache" => CACHE.set_limit(0),
            "--bench" => {} // cargo bench passes it
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// Median seconds of `step` after `warm` untimed calls: at least 3 timed calls, at most `reps`,
/// stopping once `budget_s` of timed calls have run.
fn median_s(args: &Args, mut step: impl FnMut() -> advbn_core::Result<()>) -> advbn_core::Result<(f64, usize)> {
    for _ in 0..args.warm {
        step()?;
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < args.reps && (samples.len() < 3 || started.elapsed().as_secs_f64() < args.budget_s) {
        let t = Instant::now();
        step()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    Ok((samples[samples.len() / 2], samples.len()))
}

fn batch(n: usize, size: usize, classes: u32, device: &Device) -> advbn_core::Result<(Tensor, Tensor)> {
    let images = Tensor::rand(0f32, 1f32, (n, 3, size, size), device)?;
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 7 + 3) % classes).collect();
    Ok((images, Tensor::from_vec(labels, n, device)?))
}

fn sgd(lr: f64, method: Method, cut: usize) -> TrainConfig {
    TrainConfig {
        method,
        cut,
        lr,
        optimizer: OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: false },
        schedule: Schedule::Constant,
        epochs: 1,
        steps_per_epoch: 1_000_000,
        ..TrainConfig::reference(method, 1)
    }
}

type Workload = Box<dyn FnMut() -> advbn_core::Result<()>>;

fn workload(name: &str, device: &Device) -> advbn_core::Result<(Workload, usize)> {
    let resnet18 = || ResNet::new(ModelConfig::new(Arch::ResNet18, 10), device);
    let small = || ResNet::new(ModelConfig::new(Arch::SmallResNet { depth: 20, width: 16 }, 10), device);
    Ok(match name {
        "resnet18_train" => {
            let mut model = resnet18()?;
            let mut trainer = Trainer::new(&mut model, sgd(0.01, Method::Erm, 0))?;
            let (x, y) = batch(32, 96, 10, device)?;
            (Box::new(move || trainer.step(&model, &x, &y, 0, 0).map(|_| ())), 32)
        }
        "resnet18_eval" => {
            let model = resnet18()?;
            let (x, _) = batch(32, 96, 10, device)?;
            (Box::new(move || predict(&model, &x, BnBranch::Clean).map(|_| ())), 32)
        }
        "small_advbn" | "small_erm" => {
            let method = if name == "small_advbn" { Method::AdvBn } else { Method::Erm };
            let mut model = small()?;
            let mut trainer = Trainer::new(&mut model, sgd(1e-3, method, 1))?;
            let (x, y) = batch(128, 32, 10, device)?;
            (Box::new(move || trainer.step(&model, &x, &y, 0, 0).map(|_| ())), 128)
        }
        other => panic!("unknown workload {other}"),
    })
}

/// The arithmetic ceiling: GFLOP/s of one f32 matrix product [m, k] x [k, n] through the `gemm`
/// crate (the kernels our convolutions call) on all threads, median of 5 after a warm-up.
fn gemm_gflops(m: usize, n: usize, k: usize) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5).collect();
    let mut c = vec![0f32; m * n];
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: a, b and c are row-major buffers of exactly m * k, k * n and m * n elements and the
    // strides below (1 along a row, the row length between rows) stay inside them; `c` is
    // borrowed mutably by the closure, so it aliases neither operand.
    let mut run = || unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    };
    run();
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    2.0 * (m * n * k) as f64 / samples[2] / 1e9
}

/// Extra warm-up passes before the first layer's timings (see `conv_layers`).
const FIRST_LAYER_WARM: usize = 8;

/// A convolution layer of the workloads: (name, N, C, H = W, O, kernel, stride, padding).
type ConvLayer = (&'static str, usize, usize, usize, usize, usize, usize, usize);

const CONV_LAYERS: [ConvLayer; 16] = [
    ("r18_stem", 32, 3, 96, 64, 7, 2, 3),
    ("r18_l1", 32, 64, 24, 64, 3, 1, 1),
    ("r18_l2s2", 32, 64, 24, 128, 3, 2, 1),
    ("r18_l2", 32, 128, 12, 128, 3, 1, 1),
    ("r18_l3s2", 32, 128, 12, 256, 3, 2, 1),
    ("r18_l3", 32, 256, 6, 256, 3, 1, 1),
    ("r18_l4s2", 32, 256, 6, 512, 3, 2, 1),
    ("r18_l4", 32, 512, 3, 512, 3, 1, 1),
    ("r18_l4ds", 32, 256, 6, 512, 1, 2, 0),
    ("s20_stem", 128, 3, 32, 16, 3, 1, 1),
    ("s20_l1", 128, 16, 32, 16, 3, 1, 1),
    ("s20_l2", 128, 32, 16, 32, 3, 1, 1),
    ("s20_l3", 128, 64, 8, 64, 3, 1, 1),
    ("s20_l2s2", 128, 16, 32, 32, 3, 2, 1),
    ("s20_l2ds", 128, 16, 32, 32, 1, 2, 0),
    ("s20_l3s2", 128, 32, 16, 64, 3, 2, 1),
];

/// Per layer: forward, backward-data and backward-filter times (ms) of our CPU conv kernels
/// (what the conv op's forward and backward call), each pass alone.
fn conv_layers(args: &Args, fields: &mut Vec<String>) -> advbn_core::Result<()> {
    use advbn_core::ops::conv::ConvParams;
    use advbn_core::ops::cpu::conv::{backward_data, backward_filter, forward, Geometry};
    let values = |len: usize, seed: usize| -> Vec<f32> { (0..len).map(|i| (((i + seed) * 7919) % 1000) as f32 / 1000.0 - 0.5).collect() };
    let mut first = true;
    for (name, n, c, h, o, k, stride, padding) in CONV_LAYERS {
        if !args.layers.is_empty() && !args.layers.iter().any(|l| l == name) {
            continue;
        }
        let g = Geometry::new((n, c, h, h), (o, c, k, k), ConvParams { stride, padding })?;
        let (x, w, dy) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
        let flops = 2.0 * (g.output_len() * c * k * k) as f64;
        let time = |f: &mut (dyn FnMut() -> advbn_core::Result<()> + Send)| -> advbn_core::Result<f64> {
            advbn_core::threads::run_on(&Device::Cpu, || median_s(args, f).map(|(s, _)| s * 1e3))
        };
        if std::mem::take(&mut first) {
            // The process's first passes fault in fresh pages and fill the allocator's cache:
            // with 2 warm-up passes the first layer's forward read up to 2x its time.
            advbn_core::threads::run_on(&Device::Cpu, || (0..FIRST_LAYER_WARM).try_for_each(|_| forward(&x, &w, &g).map(|_| ())))?;
        }
        let fwd = time(&mut || forward(&x, &w, &g).map(|_| ()).map_err(Into::into))?;
        let data = time(&mut || backward_data(&dy, &w, &g).map(|_| ()).map_err(Into::into))?;
        let filter = time(&mut || backward_filter(&x, &dy, &g).map(|_| ()).map_err(Into::into))?;
        let rate = |ms: f64| flops / ms / 1e6;
        eprintln!(
            "advbn conv {name}: fwd {fwd:.2} ms ({:.0} GFLOP/s), bwd-data {data:.2} ms ({:.0}), bwd-filter {filter:.2} ms ({:.0})",
            rate(fwd),
            rate(data),
            rate(filter)
        );
        fields.push(format!("\"conv_{name}_ms\": [{fwd}, {data}, {filter}]"));
    }
    Ok(())
}

/// The allocator the Node addon installs (`--no-alloc-cache` turns its cache off, for A/B runs).
#[global_allocator]
static GLOBAL: Allocator = Allocator;

fn main() -> advbn_core::Result<()> {
    let args = parse_args();
    let device = Device::Cpu;
    let names: Vec<String> =
        if args.only.is_empty() { ["resnet18_train", "resnet18_eval", "small_advbn", "small_erm"].map(String::from).to_vec() } else { args.only.clone() };
    let mut fields = vec![
        format!("\"candle\": \"{}\"", advbn_core::CANDLE_VERSION),
        format!("\"threads\": {}", candle_core::utils::get_num_threads()),
        format!("\"dtype\": \"{:?}\"", DType::F32),
        format!("\"l1d_kb\": {}", advbn_core::ops::cpu::cache::l1d_bytes() >> 10),
    ];
    for name in names.iter().filter(|n| n.starts_with("gemm")) {
        let size: usize = name.strip_prefix("gemm").and_then(|s| s.parse().ok()).unwrap_or(2048);
        let gflops = gemm_gflops(size, size, size);
        eprintln!("advbn gemm {size}^3: {gflops:.1} GFLOP/s");
        fields.push(format!("\"gemm{size}_gflops\": {gflops}"));
    }
    if names.iter().any(|n| n == "conv_layers") {
        conv_layers(&args, &mut fields)?;
    }
    for name in names.iter().filter(|n| !n.starts_with("gemm") && *n != "conv_layers") {
        let (mut step, batch) = workload(name, &device)?;
        let (seconds, reps) = median_s(&args, &mut step)?;
        eprintln!("advbn {name}: {:.1} img/s ({:.1} ms/step, median of {reps})", batch as f64 / seconds, seconds * 1e3);
        fields.push(format!("\"{name}_images_per_s\": {}", batch as f64 / seconds));
        fields.push(format!("\"{name}_step_ms\": {}", seconds * 1e3));
        fields.push(format!("\"{name}_reps\": {reps}"));
    }
    println!("{{{}}}", fields.join(", "));
    Ok(())
}
