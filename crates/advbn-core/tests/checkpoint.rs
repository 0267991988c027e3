//! A run saved mid-way and resumed in a fresh model/trainer ends bit-identical to an
//! uninterrupted run; damaged or foreign checkpoints are refused with clear errors.

mod common;

use advbn_core::models::ResNet;
use advbn_core::train::{load_checkpoint, save_checkpoint, CheckpointRecord, Method, OptimizerConfig, RunPosition, Schedule, TrainConfig, Trainer};
use candle_core::DType;
use common::{separable_batch, tiny_model, values};

fn config(method: Method, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig { lr: 0.02, optimizer, schedule: Schedule::Cosine { min_lr: 0.0, warmup_epochs: 0.0 }, epochs: 3, ..TrainConfig::reference(method, 2) }
}

fn step(trainer: &mut Trainer, model: &ResNet, s: usize) {
    let (images, labels) = separable_batch(16, 4, 16, 100 + s as u64, DType::F32);
    trainer.step(model, &images, &labels, s / 2, s % 2).unwrap();
}

const SETTINGS: &str = r#"{"batchSize":16}"#;

fn record(epoch: usize, next_batch: usize, record: &str) -> CheckpointRecord<'_> {
    CheckpointRecord { position: RunPosition { epoch, next_batch }, settings: SETTINGS, record }
}

fn all_values(model: &ResNet) -> Vec<(String, Vec<f64>)> {
    model.params().all().iter().map(|(n, v)| (n.clone(), values(v.as_tensor()))).collect()
}

#[test]
fn resumed_run_is_bit_identical() {
    let path = std::env::temp_dir().join(format!("advbn-ckpt-{}.safetensors", std::process::id()));
    for (method, optimizer) in [
        (Method::AdvBn, OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: true }),
        (Method::Erm, OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }),
    ] {
        let mut straight = tiny_model(2, DType::F32, 4);
        let mut trainer = Trainer::new(&mut straight, config(method, optimizer.clone())).unwrap();
        for s in 0..6 {
            step(&mut trainer, &straight, s);
        }

        let mut first = tiny_model(2, DType::F32, 4);
        let mut trainer = Trainer::new(&mut first, config(method, optimizer.clone())).unwrap();
        for s in 0..3 {
            step(&mut trainer, &first, s);
        }
        save_checkpoint(&path, &first, &trainer, &record(1, 1, r#"{"history":[1]}"#)).unwrap();
        drop((first, trainer));

        let mut resumed = tiny_model(77, DType::F32, 4);
        let mut trainer = Trainer::new(&mut resumed, config(method, optimizer)).unwrap();
        let info = load_checkpoint(&path, &mut resumed, &mut trainer, SETTINGS).unwrap();
        assert_eq!(info.record, r#"{"history":[1]}"#);
        assert_eq!(info.position, RunPosition { epoch: 1, next_batch: 1 });
        assert_eq!(info.optimizer_steps, 3);
        for s in 3..6 {
            step(&mut trainer, &resumed, s);
        }
        assert_eq!(all_values(&resumed), all_values(&straight), "{method:?}");
    }
}

#[test]
fn damaged_or_foreign_checkpoints_are_refused() {
    let dir = std::env::temp_dir().join(format!("advbn-ckpt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.safetensors");
    let mut model = tiny_model(0, DType::F32, 4);
    let mut trainer = Trainer::new(&mut model, TrainConfig::reference(Method::AdvBn, 1)).unwrap();
    step(&mut trainer, &model, 0);
    save_checkpoint(&good, &model, &trainer, &record(0, 1, "{}")).unwrap();

    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_checkpoint(&truncated, &mut model, &mut trainer, SETTINGS).err().unwrap().to_string();
    assert!(err.contains("truncated.safetensors") && err.contains("unreadable"), "{err}");

    // Plain weights are not a checkpoint.
    let weights = dir.join("weights.safetensors");
    model.save_weights(&weights).unwrap();
    let err = load_checkpoint(&weights, &mut model, &mut trainer, SETTINGS).err().unwrap().to_string();
    assert!(err.contains("not an advbn checkpoint"), "{err}");

    // A checkpoint of another architecture names what does not fit.
    let mut other = advbn_core::models::ResNet::new(
        advbn_core::models::ModelConfig::new(advbn_core::models::Arch::SmallResNet { depth: 14, width: 8 }, 4),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut other_trainer = Trainer::new(&mut other, TrainConfig::reference(Method::AdvBn, 1)).unwrap();
    let err = load_checkpoint(&good, &mut other, &mut other_trainer, SETTINGS).err().unwrap().to_string();
    assert!(err.contains("missing ("), "{err}");
}

/// Rewrites `path` with its tensors changed by `edit` (the header kept as it was).
fn tamper(path: &std::path::Path, out: &std::path::Path, edit: impl FnOnce(&mut std::collections::HashMap<String, candle_core::Tensor>)) {
    let mut tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, out).unwrap();
}

#[test]
fn a_changed_tensor_a_missing_one_another_setting_or_an_impossible_position_is_refused() {
    let dir = std::env::temp_dir().join(format!("advbn-ckpt-integrity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.safetensors");
    let sgd = OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: false };
    let mut model = tiny_model(0, DType::F32, 4);
    let mut trainer = Trainer::new(&mut model, config(Method::AdvBn, sgd.clone())).unwrap();
    step(&mut trainer, &model, 0);
    save_checkpoint(&good, &model, &trainer, &record(0, 1, "{}")).unwrap();
    let load = |path: &std::path::Path, config: TrainConfig, settings: &str| {
        let mut model = tiny_model(0, DType::F32, 4);
        let mut trainer = Trainer::new(&mut model, config).unwrap();
        load_checkpoint(path, &mut model, &mut trainer, settings).map(|_| ()).map_err(|e| e.to_string())
    };
    load(&good, config(Method::AdvBn, sgd.clone()), SETTINGS).unwrap();

    // One bit of one weight flipped.
    let flipped = dir.join("flipped.safetensors");
    tamper(&good, &flipped, |t| {
        let name = t.keys().find(|n| n.starts_with("model/")).unwrap().clone();
        let mut v = t[&name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v[0] = f32::from_bits(v[0].to_bits() ^ 1);
        t.insert(name.clone(), candle_core::Tensor::from_vec(v, t[&name].shape(), &candle_core::Device::Cpu).unwrap());
    });
    let e = load(&flipped, config(Method::AdvBn, sgd.clone()), SETTINGS).unwrap_err();
    assert!(e.contains("flipped.safetensors") && e.contains("CRC-32"), "{e}");

    // The optimiser's momentum, or the adversarial BNs, deleted.
    for prefix in ["optim/", "model/adv."] {
        let cut = dir.join("cut.safetensors");
        tamper(&good, &cut, |t| t.retain(|n, _| !n.contains(prefix)));
        let e = load(&cut, config(Method::AdvBn, sgd.clone()), SETTINGS).unwrap_err();
        assert!(e.contains("missing") && e.contains(prefix), "{prefix}: {e}");
    }

    // Every setting that changes the run is compared, the error naming the first difference.
    let other_momentum = OptimizerConfig::Sgd { momentum: 0.5, weight_decay: 1e-4, nesterov: false };
    let e = load(&good, config(Method::AdvBn, other_momentum), SETTINGS).unwrap_err();
    assert!(e.contains("optimizer.momentum=0.9") && e.contains("optimizer.momentum=0.5"), "{e}");
    let mut clamp_off = config(Method::AdvBn, sgd.clone());
    clamp_off.attack.relu_clamp = false;
    let e = load(&good, clamp_off, SETTINGS).unwrap_err();
    assert!(e.contains("advbn.reluClamp=true") && e.contains("advbn.reluClamp=false"), "{e}");
    let mut schedule = config(Method::AdvBn, sgd.clone());
    schedule.schedule = Schedule::Constant;
    assert!(load(&good, schedule, SETTINGS).unwrap_err().contains("schedule.type=\"cosine\""));
    let e = load(&good, config(Method::AdvBn, sgd.clone()), r#"{"batchSize":8}"#).unwrap_err();
    assert!(e.contains("batchSize=16") && e.contains("batchSize=8"), "{e}");

    // More epochs extend the run (a finished one too); fewer are refused.
    let mut longer = config(Method::AdvBn, sgd.clone());
    longer.epochs = 5;
    load(&good, longer, SETTINGS).unwrap();
    let mut shorter = config(Method::AdvBn, sgd.clone());
    shorter.epochs = 2;
    let e = load(&good, shorter, SETTINGS).unwrap_err();
    assert!(e.contains("epochs=3") && e.contains("epochs=2") && e.contains("not shortened"), "{e}");

    // A position outside the run (3 epochs of 2 steps).
    let far = dir.join("far.safetensors");
    save_checkpoint(&far, &model, &trainer, &record(1_000_000_000, 0, "{}")).unwrap();
    let e = load(&far, config(Method::AdvBn, sgd.clone()), SETTINGS).unwrap_err();
    assert!(e.contains("outside this run"), "{e}");
    // The record must be JSON to be saved.
    assert!(save_checkpoint(&far, &model, &trainer, &record(0, 0, "{oops")).unwrap_err().to_string().contains("not JSON"));
    std::fs::remove_dir_all(&dir).ok();
}
