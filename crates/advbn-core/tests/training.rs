//! Fine-tuning on the CPU: the loss falls, only the tail moves, the BN branches are separate
//! parameters, and a seed fixes every number.

mod common;

use advbn_core::attack::attack;
use advbn_core::eval::evaluate_batch;
use advbn_core::nn::readout::count_correct;
use advbn_core::nn::{BnBranch, BnMode, ForwardMode};
use advbn_core::train::{Method, OptimizerConfig, Schedule, StepLogs, TrainConfig, Trainer};
use candle_core::DType;
use common::{separable_batch, tiny_model, values};

fn config(method: Method) -> TrainConfig {
    TrainConfig { lr: 0.05, schedule: Schedule::Constant, epochs: 8, ..TrainConfig::reference(method, 1) }
}

fn run(method: Method, seed: u64, steps: usize) -> (advbn_core::models::ResNet, Vec<StepLogs>) {
    let mut model = tiny_model(seed, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 11, DType::F32);
    let mut trainer = Trainer::new(&mut model, config(method)).unwrap();
    let logs = (0..steps).map(|s| trainer.step(&model, &images, &labels, s, 0).unwrap()).collect();
    (model, logs)
}

#[test]
fn advbn_fine_tune_lowers_the_loss() {
    let (_, logs) = run(Method::AdvBn, 0, 8);
    let (first, last) = (&logs[0], &logs[logs.len() - 1]);
    assert!(last.clean_loss < first.clean_loss * 0.7, "clean {} -> {}", first.clean_loss, last.clean_loss);
    assert!(logs.iter().all(|l| l.loss.is_finite() && l.adv_loss.unwrap().is_finite()));
}

#[test]
fn erm_fine_tune_lowers_the_loss() {
    let (_, logs) = run(Method::Erm, 0, 8);
    assert!(logs[7].loss < logs[0].loss * 0.7, "{} -> {}", logs[0].loss, logs[7].loss);
    assert!(logs.iter().all(|l| l.adv_loss.is_none()));
}

#[test]
fn adversarial_accuracy_only_for_adversarial_methods() {
    for name in Method::NAMES {
        let method = Method::parse(name).unwrap();
        let (_, logs) = run(method, 1, 2);
        for l in &logs {
            assert_eq!(l.adv_correct.is_some(), method.is_adversarial(), "{name}: adv_correct {:?}", l.adv_correct);
            assert_eq!(l.adv_correct.is_some(), l.adv_loss.is_some(), "{name}");
            assert!(l.correct <= l.count && l.adv_correct.unwrap_or(0) <= l.count, "{name}: {l:?}");
        }
    }
}

/// The step's `adv_correct` is the adversarial branch's hits on the attack's worst case: each
/// step is checked against a twin model holding the same weights, on which the test runs the
/// attack and the adversarial branch's training-mode pass itself.
#[test]
fn adversarial_accuracy_counts_the_adv_branch_on_the_worst_case() {
    let cfg = config(Method::AdvBn);
    let mut model = tiny_model(2, DType::F32, 4);
    let mut twin = tiny_model(2, DType::F32, 4);
    twin.ensure_adv_bn(cfg.cut).unwrap();
    let (images, labels) = separable_batch(32, 4, 16, 15, DType::F32);
    let mut trainer = Trainer::new(&mut model, cfg.clone()).unwrap();
    let mut differs = false;
    for step in 0..6 {
        for (name, var) in model.params().all() {
            twin.params().var(&name).unwrap().set(&var.as_tensor().copy().unwrap()).unwrap();
        }
        let expected = advbn_core::threads::run_on(twin.device(), || {
            let features = twin.encode(&images, cfg.cut).unwrap();
            let found = attack(&twin, &features, &labels, cfg.cut, &cfg.attack).unwrap();
            let logits = twin.forward_tail(&found.features, cfg.cut, ForwardMode::new(BnMode::Train, BnBranch::Adv)).unwrap();
            count_correct(&logits, &labels).unwrap()
        });
        let logs = trainer.step(&model, &images, &labels, step, 0).unwrap();
        assert_eq!(logs.adv_correct, Some(expected), "step {step}");
        differs |= logs.adv_correct != Some(logs.correct);
    }
    // The two branches are counted apart (on this batch they disagree at some step).
    assert!(differs, "adv_correct equalled correct at every step");
}

#[test]
fn whole_network_erm_trains_the_stem() {
    let mut model = tiny_model(0, DType::F32, 4);
    let stem = values(model.params().var("conv1.weight").unwrap().as_tensor());
    let (images, labels) = separable_batch(16, 4, 16, 12, DType::F32);
    let mut trainer = Trainer::new(&mut model, TrainConfig { cut: 0, ..config(Method::Erm) }).unwrap();
    trainer.step(&model, &images, &labels, 0, 0).unwrap();
    assert_ne!(values(model.params().var("conv1.weight").unwrap().as_tensor()), stem);
}

#[test]
fn encoder_is_frozen_and_branches_are_separate_parameters() {
    let fresh = tiny_model(0, DType::F32, 4);
    let (model, _) = run(Method::AdvBn, 0, 3);
    let value = |m: &advbn_core::models::ResNet, name: &str| values(m.params().var(name).unwrap().as_tensor());
    // Encoder (stem + layer1): weights and running statistics untouched.
    for name in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.0.bn2.weight", "layer1.0.bn2.running_var"] {
        assert_eq!(value(&fresh, name), value(&model, name), "{name} moved");
    }
    // Tail: the clean and adversarial BN started equal and have diverged.
    for bn in ["layer2.0.bn1", "layer3.0.bn2"] {
        for part in ["weight", "bias", "running_mean", "running_var"] {
            let clean = value(&model, &format!("{bn}.{part}"));
            let adv = value(&model, &format!("adv.{bn}.{part}"));
            assert_ne!(clean, adv, "{bn}.{part}: clean and adv branches are identical");
            assert_ne!(clean, value(&fresh, &format!("{bn}.{part}")), "{bn}.{part} did not train");
        }
    }
    assert!(model.params().var("adv.layer1.0.bn1.weight").is_none(), "encoder BNs must not be duplicated");
    // The branches give different predictions.
    let (images, labels) = separable_batch(16, 4, 16, 13, DType::F32);
    let clean = evaluate_batch(&model, &images, &labels, BnBranch::Clean).unwrap();
    let adv = evaluate_batch(&model, &images, &labels, BnBranch::Adv).unwrap();
    assert_ne!(clean.loss_sum, adv.loss_sum);
}

#[test]
fn same_seed_same_numbers() {
    let (a, la) = run(Method::AdvBn, 4, 3);
    let (b, lb) = run(Method::AdvBn, 4, 3);
    assert_eq!(la, lb);
    for ((na, va), (_, vb)) in a.params().all().iter().zip(b.params().all().iter()) {
        assert_eq!(values(va.as_tensor()), values(vb.as_tensor()), "{na} differs between identical runs");
    }
}

#[test]
fn adamw_and_schedules_train() {
    let mut model = tiny_model(0, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 14, DType::F32);
    let cfg = TrainConfig {
        lr: 3e-3,
        optimizer: OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-2 },
        schedule: Schedule::Cosine { min_lr: 0.0, warmup_epochs: 1.0 },
        epochs: 8,
        ..TrainConfig::reference(Method::AdvBn, 2)
    };
    let mut trainer = Trainer::new(&mut model, cfg).unwrap();
    assert_eq!(trainer.lr_at(0, 0), 0.0);
    assert!((trainer.lr_at(0, 1) - 1.5e-3).abs() < 1e-12);
    assert!((trainer.lr_at(1, 0) - 3e-3).abs() < 1e-12);
    let logs: Vec<_> = (0..8).map(|s| trainer.step(&model, &images, &labels, s / 2 + 1, s % 2).unwrap()).collect();
    assert!(logs[7].clean_loss < logs[0].clean_loss, "{} -> {}", logs[0].clean_loss, logs[7].clean_loss);
}

#[test]
fn invalid_options_name_the_option() {
    let mut model = tiny_model(0, DType::F32, 4);
    let cases: Vec<(TrainConfig, &str)> = vec![
        (TrainConfig { lr: -1.0, ..config(Method::AdvBn) }, "lr"),
        (TrainConfig { lr: f64::NAN, ..config(Method::Erm) }, "lr"),
        (TrainConfig { cut: 4, ..config(Method::AdvBn) }, "cut"),
        (TrainConfig { cut: 0, ..config(Method::AdvBn) }, "cut"),
        (TrainConfig { attack: advbn_core::attack::AttackConfig { epsilon: 0.0, ..Default::default() }, ..config(Method::AdvBn) }, "advbn.epsilon"),
        (TrainConfig { attack: advbn_core::attack::AttackConfig { step_size: -0.1, ..Default::default() }, ..config(Method::AdvBn) }, "advbn.stepSize"),
        (TrainConfig { optimizer: OptimizerConfig::Sgd { momentum: 1.5, weight_decay: 0.0, nesterov: false }, ..config(Method::Erm) }, "optimizer.momentum"),
        (TrainConfig { epochs: 0, ..config(Method::Erm) }, "epochs"),
    ];
    for (cfg, option) in cases {
        let err = Trainer::new(&mut model, cfg).err().expect("must reject");
        assert_eq!(err.option(), Some(option), "{err}");
        assert_eq!(err.code(), "ADVBN_INVALID_OPTION");
    }
}
