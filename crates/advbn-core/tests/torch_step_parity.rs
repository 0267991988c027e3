//! Step-level parity with PyTorch: from the formula weights of torchvision's ResNet-18 (spec
//! "advbn-parity-v1") and five formula batches, five AdvBN `Trainer::step`s (cut 1, K = 6 attack
//! steps of 0.2 in the box 1 +- 1.1, dual BNs, SGD lr 0.003 momentum 0.9 weight decay 1e-4) give
//! per-step losses, per-channel attack results and final tail weights within 1e-4 of what
//! PyTorch computes in `test/fixtures/torch/make_step_fixture.py` (`step_fixture.safetensors`;
//! see the README there). Both sides run in float64 from the float32 formula values: in float32
//! some ReLU inputs of this tiny-batch setting sit within rounding of 0, and which side of the
//! kink each implementation lands on is rounding luck (the script's docstring has the numbers).
//!
//! Checked element by element: every BN tensor of the tail in both branches (weight, bias,
//! running_mean, running_var), fc.weight, fc.bias, and 256 formula-chosen elements of every tail
//! conv weight; for all elements of every conv weight, six aggregates of its change (each moves
//! by at most the largest element difference, so the same 1e-4 applies). The frozen encoder
//! must come out bit for bit unchanged.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use advbn_core::attack::{attack, AttackConfig};
use advbn_core::models::ResNet;
use advbn_core::train::{Method, OptimizerConfig, Schedule, TrainConfig, Trainer};
use candle_core::{DType, Device, Tensor};
use common::torch_formula::{bits, fixture_dir, fnv1a32, formula_model_in, formula_tensor, NUM_CLASSES};
use common::values;

const STEPS: usize = 5;
const BATCH_SHAPE: [usize; 4] = [4, 3, 64, 64];
const CUT: usize = 1;
/// Largest accepted |ours - torch| for a loss, a weight, a buffer or an aggregate.
const TOLERANCE: f64 = 1e-4;
/// Whether a difference is accepted (a NaN never is).
fn within_tolerance(diff: f64) -> bool {
    diff <= TOLERANCE
}

/// The order of `aggregates.<conv>` in the fixture (make_step_fixture.py's AGGREGATES).
const AGGREGATES: [&str; 6] = ["mean", "mean_abs", "rms", "max", "min", "mean_signed"];

/// What make_step_fixture.py ran, as our Trainer's configuration.
fn config() -> TrainConfig {
    TrainConfig {
        method: Method::AdvBn,
        cut: CUT,
        lr: 0.003,
        optimizer: OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: false },
        schedule: Schedule::Constant,
        epochs: 1,
        steps_per_epoch: STEPS,
        attack: AttackConfig { steps: 6, step_size: 0.2, epsilon: 1.1, relu_clamp: true },
        ..TrainConfig::reference(Method::AdvBn, STEPS)
    }
}

fn fixture() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_dir().join("step_fixture.safetensors"), &Device::Cpu).unwrap()
}

/// Batch `k`: pixels s("batch{k}", i), labels bits("labels{k}", i) % 5.
fn batch(k: usize) -> (Tensor, Tensor) {
    let images = formula_tensor(&format!("batch{k}"), &BATCH_SHAPE).to_dtype(DType::F64).unwrap();
    let hash = fnv1a32(&format!("labels{k}"));
    let labels: Vec<u32> = (0..BATCH_SHAPE[0]).map(|i| bits(hash, i) % NUM_CLASSES as u32).collect();
    (images, Tensor::new(labels, &Device::Cpu).unwrap())
}

/// The largest |a - b| seen so far in one category, and where.
#[derive(Default)]
struct Worst {
    diff: f64,
    at: String,
    count: usize,
}

impl Worst {
    fn see(&mut self, diff: f64, at: impl FnOnce() -> String) {
        self.count += 1;
        if diff > self.diff || (diff.is_nan() && !self.diff.is_nan()) {
            self.diff = diff;
            self.at = at();
        }
    }
}

/// Max |a - b| over two equally long slices, with the index where it is.
fn max_diff(a: &[f64], b: &[f64]) -> (f64, usize) {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).enumerate().fold((0.0, 0), |(m, at), (i, (x, y))| {
        let d = (x - y).abs();
        if d > m || d.is_nan() {
            (d, i)
        } else {
            (m, at)
        }
    })
}

/// The aggregates of make_step_fixture.py of a conv weight's change d = final - initial.
fn aggregates(name: &str, d: &[f64]) -> [f64; 6] {
    let n = d.len() as f64;
    let hash = fnv1a32(&format!("sign:{name}"));
    let signed: f64 = d.iter().enumerate().map(|(i, v)| if bits(hash, i).is_multiple_of(2) { *v } else { -v }).sum();
    [
        d.iter().sum::<f64>() / n,
        d.iter().map(|v| v.abs()).sum::<f64>() / n,
        (d.iter().map(|v| v * v).sum::<f64>() / n).sqrt(),
        d.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        d.iter().copied().fold(f64::INFINITY, f64::min),
        signed / n,
    ]
}

/// Every tensor by name at the model's precision (`state_dict` rounds to float32), copied.
fn full_state(model: &ResNet) -> BTreeMap<String, Tensor> {
    model.params().all().into_iter().map(|(name, var)| (name, var.as_tensor().copy().unwrap())).collect()
}

#[test]
fn five_advbn_steps_match_pytorch() {
    let fx = fixture();
    let torch = |name: &str| values(fx.get(name).unwrap_or_else(|| panic!("fixture has no {name}")));
    let torch_steps = |key: &str| torch(&format!("steps.{key}"));

    let mut model = formula_model_in(DType::F64);
    let mut trainer = Trainer::new(&mut model, config()).unwrap();
    let initial: BTreeMap<String, Tensor> = full_state(&model);

    let mut failures = Vec::new();
    let mut loss_worst = Worst::default();
    let mut alpha_beta = Worst::default();
    let (torch_alpha, torch_beta) = (torch_steps("alpha"), torch_steps("beta"));
    let torch_labels = torch("batches.labels");
    for k in 0..STEPS {
        let (images, labels) = batch(k);
        let ours_labels = values(&labels);
        assert_eq!(ours_labels, torch_labels[k * BATCH_SHAPE[0]..(k + 1) * BATCH_SHAPE[0]], "batch {k}: the label formula differs");

        // The attack alone, to compare alpha and beta channel by channel: it runs in eval mode
        // and writes nothing, and the step below runs it again on the same inputs.
        let features = model.encode(&images, CUT).unwrap();
        let found = attack(&model, &features, &labels, CUT, &config().attack).unwrap();
        let logs = trainer.step(&model, &images, &labels, 0, k).unwrap();
        if let Some(dir) = std::env::var_os("ADVBN_STEP_PARITY_OUT") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir).unwrap();
            model.save_weights(&dir.join(format!("step{k}.safetensors"))).unwrap();
        }
        assert_eq!(logs.attack_loss, Some(found.adv_loss), "step {k}: the step's attack is not the one rerun here");

        for (what, ours, theirs) in [("alpha", values(&found.alpha), &torch_alpha), ("beta", values(&found.beta), &torch_beta)] {
            let theirs = &theirs[k * ours.len()..(k + 1) * ours.len()];
            let flipped: Vec<String> =
                ours.iter().zip(theirs).enumerate().filter(|(_, (a, b))| (*a - *b).abs() > 1e-6).map(|(c, (a, b))| format!("ch {c}: {a} vs {b}")).collect();
            let (diff, c) = max_diff(&ours, theirs);
            alpha_beta.see(diff, || format!("step {k} {what}[{c}]"));
            if !flipped.is_empty() {
                failures.push(format!("step {k}: {} {what} entries differ (an attack sign flipped): {}", flipped.len(), flipped.join(", ")));
            }
        }
        let ours = [logs.loss, logs.clean_loss, logs.adv_loss.unwrap(), found.adv_loss, found.clean_loss];
        for (key, ours) in ["loss", "clean_loss", "adv_loss", "attack_loss", "attack_clean_loss"].into_iter().zip(ours) {
            let theirs = torch_steps(key)[k];
            let diff = (ours - theirs).abs();
            loss_worst.see(diff, || format!("step {k} {key}"));
            eprintln!("step {k} {key:17}: ours {ours:.7}  torch {theirs:.7}  diff {diff:.2e}");
            if !within_tolerance(diff) {
                failures.push(format!("step {k} {key}: ours {ours} torch {theirs} (diff {diff:e})"));
            }
        }
    }

    let last: BTreeMap<String, Tensor> = full_state(&model);
    let is_tail = |name: &str| ["layer2.", "layer3.", "layer4.", "fc.", "adv."].iter().any(|p| name.starts_with(p));
    // The frozen encoder (stem and layer1, BN running statistics included) is untouched.
    for (name, t) in last.iter().filter(|(n, _)| !is_tail(n)) {
        assert_eq!(values(t), values(&initial[name]), "{name} of the frozen encoder changed");
    }
    // The fixture holds every tensor of our tail, by our names, and nothing else.
    let ours_tail: BTreeSet<&str> = last.keys().map(String::as_str).filter(|n| is_tail(n)).collect();
    let fixture_tail: BTreeSet<&str> = fx
        .keys()
        .filter(|n| !n.starts_with("steps.") && !n.starts_with("batches.") && !n.starts_with("aggregates."))
        .map(|n| n.strip_prefix("sampled.").unwrap_or(n))
        .collect();
    assert_eq!(ours_tail, fixture_tail, "tail tensors: ours vs the fixture's");
    assert_eq!(ours_tail.len(), 137);

    let (mut params, mut buffers, mut sampled, mut aggregated) = (Worst::default(), Worst::default(), Worst::default(), Worst::default());
    let mut checked = 0usize;
    for &name in &ours_tail {
        let ours = values(&last[name]);
        if let Some(full) = fx.get(name) {
            assert_eq!(full.dims(), last[name].dims(), "{name}");
            let (diff, i) = max_diff(&ours, &values(full));
            let bucket = if name.ends_with("running_mean") || name.ends_with("running_var") { &mut buffers } else { &mut params };
            bucket.see(diff, || format!("{name}[{i}]"));
            checked += ours.len();
            if !within_tolerance(diff) {
                failures.push(format!("{name}[{i}]: |ours - torch| = {diff:e}"));
            }
            continue;
        }
        // A conv weight: sampled elements, and aggregates of the change of all its elements.
        let theirs = torch(&format!("sampled.{name}"));
        let hash = fnv1a32(&format!("sample:{name}"));
        let picked: Vec<f64> = (0..theirs.len()).map(|j| ours[bits(hash, j) as usize % ours.len()]).collect();
        let (diff, j) = max_diff(&picked, &theirs);
        sampled.see(diff, || format!("{name} sample {j}"));
        checked += picked.len();
        if !within_tolerance(diff) {
            failures.push(format!("{name} sample {j}: |ours - torch| = {diff:e}"));
        }
        let change: Vec<f64> = ours.iter().zip(values(&initial[name])).map(|(a, b)| a - b).collect();
        let (diff, a) = max_diff(&aggregates(name, &change), &torch(&format!("aggregates.{name}")));
        aggregated.see(diff, || format!("{name} {}", AGGREGATES[a]));
        if !within_tolerance(diff) {
            failures.push(format!("{name} {} of the change: |ours - torch| = {diff:e}", AGGREGATES[a]));
        }
    }

    eprintln!("torch step parity ({STEPS} AdvBN steps), max |ours - torch|:");
    for (what, w) in [
        ("losses", &loss_worst),
        ("alpha/beta", &alpha_beta),
        ("parameters (BN both branches, fc)", &params),
        ("BN running stats (both branches)", &buffers),
        ("conv weight samples", &sampled),
        ("conv change aggregates", &aggregated),
    ] {
        eprintln!("  {what:36} {:.3e} at {} ({} checked)", w.diff, w.at, w.count);
    }
    eprintln!("  {checked} weight/buffer elements compared one by one");
    assert!(failures.is_empty(), "{} differences from PyTorch beyond {TOLERANCE:e}:\n{}", failures.len(), failures.join("\n"));
}
