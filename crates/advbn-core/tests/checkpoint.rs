//! A run saved mid-way and resumed in a fresh model/trainer ends bit-identical to an
//! uninterrupted run; damaged or foreign checkpoints are refused with clear errors.

mod common;

use advbn_core::models::ResNet;
use advbn_core::train::{load_checkpoint, save_checkpoint, Method, OptimizerConfig, Schedule, TrainConfig, Trainer};
use candle_core::DType;
use common::{separable_batch, tiny_model, values};

fn config(method: Method, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig { lr: 0.02, optimizer, schedule: Schedule::Cosine { min_lr: 0.0, warmup_epochs: 0.0 }, epochs: 3, ..TrainConfig::reference(method, 2) }
}

fn step(trainer: &mut Trainer, model: &ResNet, s: usize) {
    let (images, labels) = separable_batch(16, 4, 16, 100 + s as u64, DType::F32);
    trainer.step(model, &images, &labels, s / 2, s % 2).unwrap();
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
        save_checkpoint(&path, &first, &trainer, r#"{"epoch":1,"step":1}"#).unwrap();
        drop((first, trainer));

        let mut resumed = tiny_model(77, DType::F32, 4);
        let mut trainer = Trainer::new(&mut resumed, config(method, optimizer)).unwrap();
        let info = load_checkpoint(&path, &mut resumed, &mut trainer).unwrap();
        assert_eq!(info.meta, r#"{"epoch":1,"step":1}"#);
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
    save_checkpoint(&good, &model, &trainer, "{}").unwrap();

    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err = load_checkpoint(&truncated, &mut model, &mut trainer).err().unwrap().to_string();
    assert!(err.contains("truncated.safetensors") && err.contains("unreadable"), "{err}");

    // Plain weights are not a checkpoint.
    let weights = dir.join("weights.safetensors");
    model.save_weights(&weights).unwrap();
    let err = load_checkpoint(&weights, &mut model, &mut trainer).err().unwrap().to_string();
    assert!(err.contains("not an advbn checkpoint"), "{err}");

    // A checkpoint of another architecture names what does not fit.
    let mut other = advbn_core::models::ResNet::new(
        advbn_core::models::ModelConfig::new(advbn_core::models::Arch::SmallResNet { depth: 14, width: 8 }, 4),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut other_trainer = Trainer::new(&mut other, TrainConfig::reference(Method::AdvBn, 1)).unwrap();
    let err = load_checkpoint(&good, &mut other, &mut other_trainer).err().unwrap().to_string();
    assert!(err.contains("missing ("), "{err}");
}
