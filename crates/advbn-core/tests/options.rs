//! Every option rule of `advbn_core::options` is what the validator owning the option enforces:
//! each rule's default and boundary values pass, the values just outside fail with an error
//! naming the option and the rule's wording. (test/option-rules.test.ts checks the TypeScript
//! side against the same table.)

mod common;

use std::sync::Arc;

use advbn_core::data::{FileLimits, Image, ImageLayout, Loader, LoaderConfig, Pipeline, PixelData, Source, Transform};
use advbn_core::models::{Arch, ModelConfig};
use advbn_core::options::{NumberRule, ALL};
use advbn_core::train::{Method, OptimizerConfig, Schedule, TrainConfig};
use advbn_core::visualize::VisualizeConfig;
use candle_core::DType;

struct One;

impl Source for One {
    fn len(&self) -> usize {
        1
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn class_names(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
    fn load(&self, _: usize) -> advbn_core::Result<(Image, u32)> {
        Ok((Image::filled(2, 2, 1, 0.0), 0))
    }
    fn describe(&self, index: usize) -> String {
        format!("one {index}")
    }
}

fn jitter(brightness: f64, hue: f64) -> advbn_core::data::jitter::ColorJitter {
    advbn_core::data::jitter::ColorJitter { brightness, contrast: 0.0, saturation: 0.0, hue }
}

fn visualize_config() -> VisualizeConfig {
    VisualizeConfig { cut: 1, steps: 300, batch_size: 32, lr: 2e-3, tv_weight: 1e-3, strengths: vec![1.1], rows: 6, seed: 0 }
}

/// Runs the validator that owns `rule` with the option set to `v`.
fn validate(rule: &NumberRule, v: f64) -> Result<(), String> {
    let model = common::tiny_model(0, DType::F32, 4);
    let train = |edit: &dyn Fn(&mut TrainConfig)| {
        let mut config = TrainConfig::reference(Method::AdvBn, 1);
        edit(&mut config);
        config.validate(&model)
    };
    let sgd = |momentum: f64, weight_decay: f64| OptimizerConfig::Sgd { momentum, weight_decay, nesterov: false };
    let adamw = |beta1: f64, beta2: f64, eps: f64, weight_decay: f64| OptimizerConfig::AdamW { beta1, beta2, eps, weight_decay };
    let n = v as usize;
    let result = match rule.key {
        "fineTune.epochs" => train(&|c| c.epochs = n),
        "fineTune.batchSize" => Loader::new(Arc::new(One), LoaderConfig { batch_size: n, ..LoaderConfig::default() }).map(|_| ()),
        "fineTune.lr" => train(&|c| c.lr = v),
        "fineTune.sgd.momentum" => train(&|c| c.optimizer = sgd(v, 0.0)),
        "fineTune.sgd.weightDecay" => train(&|c| c.optimizer = sgd(0.9, v)),
        "fineTune.adamw.beta1" => train(&|c| c.optimizer = adamw(v, 0.999, 1e-8, 0.0)),
        "fineTune.adamw.beta2" => train(&|c| c.optimizer = adamw(0.9, v, 1e-8, 0.0)),
        "fineTune.adamw.eps" => train(&|c| c.optimizer = adamw(0.9, 0.999, v, 0.0)),
        "fineTune.adamw.weightDecay" => train(&|c| c.optimizer = adamw(0.9, 0.999, 1e-8, v)),
        "fineTune.schedule.gamma" => train(&|c| c.schedule = Schedule::Step { milestones: vec![], gamma: v }),
        "fineTune.schedule.milestones" => train(&|c| c.schedule = Schedule::Step { milestones: vec![v], gamma: 0.1 }),
        "fineTune.schedule.minLr" => train(&|c| c.schedule = Schedule::Cosine { min_lr: v, warmup_epochs: 0.0 }),
        "fineTune.schedule.warmupEpochs" => train(&|c| c.schedule = Schedule::Cosine { min_lr: 0.0, warmup_epochs: v }),
        "fineTune.advbn.steps" => train(&|c| c.attack.steps = n),
        "fineTune.advbn.stepSize" => train(&|c| c.attack.step_size = v),
        "fineTune.advbn.epsilon" => train(&|c| c.attack.epsilon = v),
        "model.numClasses" => ModelConfig::new(Arch::ResNet18, n).validate(),
        "model.inChannels" => ModelConfig { in_channels: n, ..ModelConfig::new(Arch::ResNet18, 10) }.validate(),
        "model.depth" => Arch::SmallResNet { depth: n, width: 16 }.layout().map(|_| ()),
        "model.width" => Arch::SmallResNet { depth: 20, width: n }.layout().map(|_| ()),
        "source.threads" => Loader::new(Arc::new(One), LoaderConfig { threads: n, ..LoaderConfig::default() }).map(|_| ()),
        "source.prefetch" => Loader::new(Arc::new(One), LoaderConfig { prefetch: n, ..LoaderConfig::default() }).map(|_| ()),
        "visualize.steps" => VisualizeConfig { steps: n, ..visualize_config() }.validate(),
        "visualize.batchSize" => VisualizeConfig { batch_size: n, ..visualize_config() }.validate(),
        "visualize.lr" => VisualizeConfig { lr: v, ..visualize_config() }.validate(),
        "visualize.tvWeight" => VisualizeConfig { tv_weight: v, ..visualize_config() }.validate(),
        "visualize.rows" => VisualizeConfig { rows: n, ..visualize_config() }.validate(),
        // Checked where its loop runs (TypeScript): the rule itself.
        "evaluate.batchSize" => rule.check(v).map(|_| ()),
        "seed" => advbn_core::error::seed_from_f64("seed", v).map(|_| ()),
        "transform.side" => Pipeline::new(vec![Transform::CenterCrop(n)], None).map(|_| ()),
        "transform.jitter" => Pipeline::new(vec![Transform::ColorJitter(jitter(v, 0.0))], None).map(|_| ()),
        "transform.hue" => Pipeline::new(vec![Transform::ColorJitter(jitter(0.0, v))], None).map(|_| ()),
        "transform.degrees" => Pipeline::new(vec![Transform::RandomRotation(v)], None).map(|_| ()),
        "transform.p" => Pipeline::new(vec![Transform::HorizontalFlip(v)], None).map(|_| ()),
        "transform.severity" => advbn_core::data::corruptions::corruption_transform(advbn_core::data::corruptions::Corruption::Fog, v as u8).map(|_| ()),
        "transform.channels" => Pipeline::new(vec![Transform::Grayscale(n)], None).map(|_| ()),
        "fromArrays.numClasses" => {
            advbn_core::data::ArrayDataset::new(PixelData::U8(&[0; 4]), &[0], &[1, 1, 2, 2], ImageLayout::Nchw, Some(n), None).map(|_| ())
        }
        "visualize.strengths" => VisualizeConfig { strengths: vec![v], ..visualize_config() }.validate(),
        // Checked where they are used, in TypeScript (the folder's conversion, the pass loop, the
        // picture's image count, reproduce's and the digits' orchestration): the rule itself.
        "imageFolder.channels" | "batches.epoch" | "visualize.images" | "reproduce.seeds" | "reproduce.epochs" | "digits.limit" | "digits.perDomain" => {
            rule.check(v).map(|_| ())
        }
        "imageFolder.maxPixels" => FileLimits { max_pixels: n as u64, ..FileLimits::default() }.validate(),
        "imageFolder.maxFileBytes" => FileLimits { max_file_bytes: n as u64, ..FileLimits::default() }.validate(),
        other => panic!("option rule {other} has no validator in this test: add it"),
    };
    result.map_err(|e| e.to_string())
}

/// Values that must pass and values that must fail. Integer options are unsigned in Rust (the
/// binding takes them as u32), so no negative ones.
fn probes(rule: &NumberRule) -> (Vec<f64>, Vec<f64>) {
    let step = |at: f64| if rule.integer { 1.0 } else { 1e-9 * at.abs().max(1.0) };
    let (mut pass, mut fail) = (rule.default.into_iter().collect::<Vec<_>>(), vec![]);
    if let Some(min) = rule.min {
        if rule.min_exclusive {
            fail.push(min);
            pass.push(min + step(min));
        } else {
            pass.push(min);
            fail.push(min - step(min));
        }
    }
    if let Some(max) = rule.max {
        if rule.max_exclusive {
            fail.push(max);
            pass.push(max - step(max));
        } else {
            pass.push(max);
            fail.push(max + step(max));
        }
    }
    if rule.integer {
        fail.retain(|&v| v >= 0.0);
    } else {
        fail.extend([f64::NAN, f64::INFINITY]);
    }
    (pass, fail)
}

#[test]
fn every_rule_is_what_its_validator_enforces() {
    for rule in ALL {
        let (pass, fail) = probes(rule);
        for v in pass {
            // The depth's 6n+2 form: the boundaries 8 and 1202 are of it, min + 1 is not.
            if rule.key == "model.depth" && !(v as usize - 2).is_multiple_of(6) {
                continue;
            }
            validate(rule, v).unwrap_or_else(|e| panic!("{}: {v} must pass: {e}", rule.key));
        }
        for v in fail {
            let e = validate(rule, v).err().unwrap_or_else(|| panic!("{}: {v} must fail", rule.key));
            // Shared rules name the option they check (`transforms[0].size`), ending in the rule's name.
            assert!(e.contains(&format!("{}`", rule.name)) && e.contains(&rule.requirement()), "{}: {v}: {e}", rule.key);
        }
    }
}

#[test]
fn rules_are_unique_and_defaults_satisfy_them() {
    for (i, rule) in ALL.iter().enumerate() {
        assert!(ALL[i + 1..].iter().all(|r| r.key != rule.key), "duplicate key {}", rule.key);
        if let Some(d) = rule.default {
            assert!(rule.accepts(d), "{}: default {d} outside its own rule", rule.key);
        }
    }
    // The drifts: TypeScript took advbn.steps 5000, inChannels 65 and momentum 0.9999995.
    let find = |key: &str| ALL.iter().find(|r| r.key == key).unwrap();
    assert!(!find("fineTune.advbn.steps").accepts(5000.0));
    assert!(!find("model.inChannels").accepts(65.0));
    assert!(find("fineTune.sgd.momentum").accepts(0.9999995) && !find("fineTune.sgd.momentum").accepts(1.0));
    assert_eq!(find("fineTune.advbn.steps").requirement(), "an integer in 0..=1000");
    assert_eq!(find("fineTune.sgd.momentum").requirement(), "a finite number in [0, 1)");
    assert_eq!(find("fineTune.lr").requirement(), "a positive finite number");
}
