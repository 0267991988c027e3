//! Parity with PyTorch: torchvision's ResNet-18 with weights given by a formula (the same in
//! `test/fixtures/torch/make_fixture.py`, which made `logits.bin` with torch) gives torch's
//! logits; a save/reload keeps them bit for bit; an AdvBN fine-tune saves the adversarial BNs
//! under `adv.` next to torchvision's names.
//!
//! With `ADVBN_PARITY_OUT=<dir>` the fine-tuned file and our logits of both BN branches are
//! written there for `test/fixtures/torch/check_saved_weights.py` (run where torch exists).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::nn::{BnBranch, BnMode, ForwardMode};
use advbn_core::train::{Method, Schedule, TrainConfig, Trainer};
use candle_core::{Device, Tensor};
use common::values;

const NUM_CLASSES: usize = 5;
const INPUT_SHAPE: [usize; 4] = [2, 3, 64, 64];
/// Largest accepted |ours - torch| over the logits (torch's are up to ~23 in size, so this is
/// ~4e-6 of the logit scale; torch's own float32 logits are 9e-6 from its float64 ones).
const TOLERANCE: f64 = 1e-4;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/torch")
}

// ---- The formula of make_fixture.py (spec "advbn-parity-v1") ----

fn fnv1a32(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// Uniform in [-1, 1), exact in float64.
fn unit(name_hash: u32, i: usize) -> f64 {
    let i = u32::try_from(i).expect("tensors under 2^32 elements");
    mix32(name_hash ^ mix32(i)) as f64 / 4294967296.0 * 2.0 - 1.0
}

/// The formula's values of tensor `name` of torchvision shape `shape`, as float32.
fn formula_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let hash = fnv1a32(name);
    let value: Box<dyn Fn(f64) -> f64> = if name.ends_with("running_mean") || name.ends_with(".bias") {
        Box::new(|s| 0.1 * s)
    } else if name.ends_with("running_var") {
        Box::new(|s| 1.0 + 0.5 * s)
    } else if name.ends_with(".weight") {
        match *shape {
            [_, cin, kh, kw] => {
                let gain = (6.0 / (cin * kh * kw) as f64).sqrt();
                Box::new(move |s| s * gain)
            }
            [_, cin] => {
                let root = (cin as f64).sqrt();
                Box::new(move |s| s / root)
            }
            [_] => Box::new(|s| 1.0 + 0.2 * s),
            _ => panic!("no formula for {name} {shape:?}"),
        }
    } else {
        panic!("no formula for {name}")
    };
    (0..n).map(|i| value(unit(hash, i)) as f32).collect()
}

fn formula_input() -> Tensor {
    let hash = fnv1a32("input");
    let n: usize = INPUT_SHAPE.iter().product();
    let data: Vec<f32> = (0..n).map(|i| unit(hash, i) as f32).collect();
    Tensor::from_vec(data, &INPUT_SHAPE, &Device::Cpu).unwrap()
}

/// torchvision's state-dict entries (`state_dict.txt`): name, dtype, shape.
fn torchvision_entries() -> Vec<(String, String, Vec<usize>)> {
    let text = std::fs::read_to_string(fixture_dir().join("state_dict.txt")).unwrap();
    text.lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap().to_string();
            let dtype = parts.next().unwrap().to_string();
            (name, dtype, parts.map(|d| d.parse().unwrap()).collect())
        })
        .collect()
}

/// What `torchvision.models.resnet18(num_classes=5).state_dict()` holds after the formula is
/// loaded: the float tensors from the formula, the `num_batches_tracked` counters at 0.
fn formula_state() -> HashMap<String, Tensor> {
    torchvision_entries()
        .into_iter()
        .map(|(name, dtype, shape)| {
            let tensor = match dtype.as_str() {
                "float32" => Tensor::from_vec(formula_values(&name, &shape), shape, &Device::Cpu).unwrap(),
                "int64" => Tensor::new(0i64, &Device::Cpu).unwrap(),
                other => panic!("{name}: dtype {other}"),
            };
            (name, tensor)
        })
        .collect()
}

fn torch_logits() -> Vec<f64> {
    let bytes = std::fs::read(fixture_dir().join("logits.bin")).unwrap();
    assert_eq!(bytes.len(), INPUT_SHAPE[0] * NUM_CLASSES * 4);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect()
}

fn resnet18(seed: u64) -> ResNet {
    ResNet::new(ModelConfig { seed, ..ModelConfig::new(Arch::ResNet18, NUM_CLASSES) }, &Device::Cpu).unwrap()
}

fn formula_model() -> ResNet {
    let mut model = resnet18(7);
    let report = model.load_state_map(formula_state(), "the parity formula", false).unwrap();
    assert_eq!(report.loaded, 102, "{report:?}");
    assert_eq!(report.ignored.len(), 20, "{report:?}");
    assert!(report.reinitialized.is_empty(), "{report:?}");
    model
}

fn logits(model: &ResNet, branch: BnBranch) -> Vec<f64> {
    values(&model.forward(&formula_input(), ForwardMode::new(BnMode::Eval, branch)).unwrap())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("advbn-torch-parity-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_f32(path: &Path, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn formula_matches_the_python_script() {
    // Values printed by make_fixture.py into fixture.json ("check_values").
    assert_eq!(fnv1a32("conv1.weight"), 3_184_444_564);
    assert_eq!(mix32(1), 1_753_845_952);
    assert_eq!(formula_values("conv1.weight", &[64, 3, 7, 7])[0] as f64, -0.10244095325469971);
    assert_eq!(values(&formula_input())[0], 0.2860472500324249);
}

#[test]
fn eval_logits_match_torchvision() {
    let model = formula_model();
    let ours = logits(&model, BnBranch::Clean);
    let torch = torch_logits();
    let max_abs = ours.iter().zip(&torch).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    eprintln!("torch parity: max |ours - torch| = {max_abs:.3e}, logit scale {scale:.3}, relative {:.3e}", max_abs / scale);
    assert!(max_abs <= TOLERANCE, "logits differ from torchvision's by {max_abs:e}\nours  {ours:?}\ntorch {torch:?}");
}

#[test]
fn save_and_reload_keeps_the_logits_exactly() {
    let model = formula_model();
    let path = temp_dir("reload").join("formula.safetensors");
    model.save_weights(&path).unwrap();
    let mut loaded = resnet18(99);
    let report = loaded.load_weights(&path, false).unwrap();
    assert_eq!(report.loaded, 102);
    assert_eq!(logits(&loaded, BnBranch::Clean), logits(&model, BnBranch::Clean));
    // The file holds exactly torchvision's float tensors, by their names.
    let saved: BTreeSet<String> = candle_core::safetensors::load(&path, &Device::Cpu).unwrap().into_keys().collect();
    let expected: BTreeSet<String> =
        torchvision_entries().into_iter().filter(|(_, dtype, _)| dtype == "float32").map(|(name, _, _)| name).collect();
    assert_eq!(saved, expected);
}

#[test]
fn advbn_fine_tune_saves_the_adversarial_bns_under_adv() {
    let mut model = formula_model();
    let before = logits(&model, BnBranch::Clean);
    let config = TrainConfig { lr: 0.01, schedule: Schedule::Constant, epochs: 1, ..TrainConfig::reference(Method::AdvBn, 1) };
    let labels = Tensor::new(&[0u32, 3], &Device::Cpu).unwrap();
    let mut trainer = Trainer::new(&mut model, config).unwrap();
    let logs = trainer.step(&model, &formula_input(), &labels, 0, 0).unwrap();
    assert!(logs.loss.is_finite() && logs.adv_loss.is_some_and(f64::is_finite), "{logs:?}");
    let (clean, adv) = (logits(&model, BnBranch::Clean), logits(&model, BnBranch::Adv));
    assert_ne!(clean, before, "the step changed nothing");
    assert_ne!(clean, adv, "the branches agree");

    let dir = temp_dir("advbn");
    let path = dir.join("advbn_step.safetensors");
    model.save_weights(&path).unwrap();
    let saved: BTreeSet<String> = candle_core::safetensors::load(&path, &Device::Cpu).unwrap().into_keys().collect();
    let torchvision: BTreeSet<String> =
        torchvision_entries().into_iter().filter(|(_, dtype, _)| dtype == "float32").map(|(name, _, _)| name).collect();
    let (standard, extra): (BTreeSet<String>, BTreeSet<String>) = saved.into_iter().partition(|n| !n.starts_with("adv."));
    assert_eq!(standard, torchvision, "the clean branch is under torchvision's names");
    // Every BN after the cut (layer2..layer4: 5 per stage) has an adv copy; the encoder's do not.
    let adv_bns: BTreeSet<String> = extra.iter().map(|n| n.rsplit_once('.').unwrap().0.to_string()).collect();
    assert_eq!(adv_bns.len(), 15, "{adv_bns:?}");
    for bn in &adv_bns {
        let clean_name = bn.strip_prefix("adv.").unwrap();
        assert!(clean_name.starts_with("layer2.") || clean_name.starts_with("layer3.") || clean_name.starts_with("layer4."), "{bn}");
        for part in ["weight", "bias", "running_mean", "running_var"] {
            assert!(extra.contains(&format!("{bn}.{part}")) && torchvision.contains(&format!("{clean_name}.{part}")), "{bn}.{part}");
        }
    }

    let mut loaded = resnet18(3);
    loaded.load_weights(&path, false).unwrap();
    assert!(loaded.has_adv_bn());
    assert_eq!(logits(&loaded, BnBranch::Clean), clean);
    assert_eq!(logits(&loaded, BnBranch::Adv), adv);

    if let Some(out) = std::env::var_os("ADVBN_PARITY_OUT") {
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(&path, out.join("advbn_step.safetensors")).unwrap();
        write_f32(&out.join("logits_clean.bin"), &clean);
        write_f32(&out.join("logits_adv.bin"), &adv);
        eprintln!("wrote advbn_step.safetensors, logits_clean.bin, logits_adv.bin to {}", out.display());
    }
}
