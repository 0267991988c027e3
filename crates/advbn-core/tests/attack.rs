//! The inner maximisation: the loss rises, alpha/beta stay in the box, running stats stay put.

mod common;

use advbn_core::attack::{attack, AttackConfig};
use advbn_core::train::{Method, TrainConfig, Trainer};
use candle_core::DType;
use common::{separable_batch, tiny_model, values};

#[test]
fn attack_raises_loss_and_stays_in_box() {
    let mut model = tiny_model(0, DType::F32, 4);
    model.ensure_adv_bn(1).unwrap();
    let (images, labels) = separable_batch(16, 4, 16, 5, DType::F32);
    let features = model.encode(&images, 1).unwrap();
    for &(epsilon, step_size) in &[(1.1, 0.2), (0.3, 0.1), (0.05, 0.2)] {
        let cfg = AttackConfig { steps: 6, step_size, epsilon, relu_clamp: true };
        let found = attack(&model, &features, &labels, 1, &cfg).unwrap();
        assert!(found.adv_loss >= found.clean_loss, "eps {epsilon}: adv {} < clean {}", found.adv_loss, found.clean_loss);
        for v in values(&found.alpha).into_iter().chain(values(&found.beta)) {
            assert!((1.0 - epsilon - 1e-6..=1.0 + epsilon + 1e-6).contains(&v), "{v} outside box of eps {epsilon}");
        }
        // A sign step of 0.2 on a grid starting at 1 lands on multiples of the step, clamped.
        assert!(!found.features.track_op(), "perturbed features must be detached");
    }
}

#[test]
fn zero_steps_is_the_identity() {
    let mut model = tiny_model(0, DType::F32, 4);
    model.ensure_adv_bn(1).unwrap();
    let (images, labels) = separable_batch(8, 4, 16, 6, DType::F32);
    let features = model.encode(&images, 1).unwrap();
    let cfg = AttackConfig { steps: 0, ..AttackConfig::default() };
    let found = attack(&model, &features, &labels, 1, &cfg).unwrap();
    assert_eq!(found.clean_loss, found.adv_loss);
    assert!(values(&found.alpha).iter().all(|&a| a == 1.0));
    assert!(common::max_abs_diff(&found.features, &features) < 1e-6);
}

#[test]
fn attack_does_not_touch_running_statistics_or_weights() {
    let mut model = tiny_model(0, DType::F32, 4);
    model.ensure_adv_bn(1).unwrap();
    let before: Vec<(String, Vec<f64>)> = model.params().all().iter().map(|(n, v)| (n.clone(), values(v.as_tensor()))).collect();
    let (images, labels) = separable_batch(8, 4, 16, 7, DType::F32);
    let features = model.encode(&images, 1).unwrap();
    attack(&model, &features, &labels, 1, &AttackConfig::default()).unwrap();
    for (name, value) in before {
        assert_eq!(values(model.params().var(&name).unwrap().as_tensor()), value, "{name} changed during the attack");
    }
}

#[test]
fn first_step_adversarial_loss_exceeds_clean_loss() {
    let mut model = tiny_model(3, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 8, DType::F32);
    let mut trainer = Trainer::new(&mut model, TrainConfig::reference(Method::AdvBn, 1)).unwrap();
    let logs = trainer.step(&model, &images, &labels, 0, 0).unwrap();
    assert!(logs.adv_loss.unwrap() >= logs.clean_loss, "{logs:?}");
    assert!(logs.attack_loss.unwrap() >= logs.attack_clean_loss.unwrap(), "{logs:?}");
}

#[test]
fn the_decoder_learns_and_stronger_attacks_move_the_picture_more() {
    use advbn_core::visualize::{visualize, VisualizeConfig};
    let model = tiny_model(0, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 9, DType::F32);
    let images = images.clamp(0f32, 1f32).unwrap();
    let cfg = VisualizeConfig { steps: 60, rows: 4, strengths: vec![0.2, 1.1], ..VisualizeConfig::default() };
    let (picture, losses) = visualize(&model, &images, &labels, &cfg).unwrap();
    assert!(losses[59] < losses[0], "decoder loss {} -> {}", losses[0], losses[59]);
    assert_eq!((picture.width, picture.height), (4 * 18 + 2, 4 * 18 + 2));
    // Mean absolute difference of each attack column from the reconstruction column.
    let column = |col: usize| -> Vec<f32> {
        let mut v = Vec::new();
        for y in 2..picture.height - 2 {
            for x in 0..16 {
                v.push(picture.get(2 + col * 18 + x, y, 0));
            }
        }
        v
    };
    let diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f32>() / a.len() as f32;
    let (recon, weak, strong) = (column(1), column(2), column(3));
    assert!(diff(&strong, &recon) > diff(&weak, &recon), "eps 1.1 should change the picture more than eps 0.2");
}
