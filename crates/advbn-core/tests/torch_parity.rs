//! Parity with PyTorch: torchvision's ResNet-18 with weights given by a formula (the same in
//! `test/fixtures/torch/make_fixture.py`, which made `logits.bin` with torch) gives torch's
//! logits; a save/reload keeps them bit for bit; an AdvBN fine-tune saves the adversarial BNs
//! under `adv.` next to torchvision's names.
//!
//! With `ADVBN_PARITY_OUT=<dir>` the fine-tuned file and our logits of both BN branches are
//! written there for `test/fixtures/torch/check_saved_weights.py` (run where torch exists).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use advbn_core::models::ResNet;
use advbn_core::nn::{BnBranch, BnMode, ForwardMode};
use advbn_core::train::{Method, Schedule, TrainConfig, Trainer};
use candle_core::{Device, Tensor};
use common::torch_formula::{fixture_dir, fnv1a32, formula_model, formula_tensor, formula_values, mix32, resnet18, torchvision_entries, NUM_CLASSES};
use common::values;

const INPUT_SHAPE: [usize; 4] = [2, 3, 64, 64];
/// Largest accepted |ours - torch| over the logits (torch's are up to ~23 in size, so this is
/// ~4e-6 of the logit scale; torch's own float32 logits are 9e-6 from its float64 ones).
const TOLERANCE: f64 = 1e-4;

fn formula_input() -> Tensor {
    formula_tensor("input", &INPUT_SHAPE)
}

fn torch_logits() -> Vec<f64> {
    let bytes = std::fs::read(fixture_dir().join("logits.bin")).unwrap();
    assert_eq!(bytes.len(), INPUT_SHAPE[0] * NUM_CLASSES * 4);
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect()
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
    let expected: BTreeSet<String> = torchvision_entries().into_iter().filter(|(_, dtype, _)| dtype == "float32").map(|(name, _, _)| name).collect();
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
    let torchvision: BTreeSet<String> = torchvision_entries().into_iter().filter(|(_, dtype, _)| dtype == "float32").map(|(name, _, _)| name).collect();
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
