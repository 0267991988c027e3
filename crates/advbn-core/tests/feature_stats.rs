//! MixStyle and DSU: the per-instance statistics of their output are exactly the mixed or
//! resampled ones (checked against statistics recomputed here in f64), they are identities in
//! eval, seeded, and as trainer methods they fine-tune like ERM.

mod common;

use advbn_core::eval::evaluate_batch;
use advbn_core::nn::dsu::{draw_noise, resample_stats, DsuDraw};
use advbn_core::nn::mixstyle::{draw_mix, mix_styles, MixDraw, INSTANCE_EPS};
use advbn_core::nn::{dsu, mixstyle, BnBranch, DsuConfig, MixPartner, MixStyleConfig};
use advbn_core::train::{load_checkpoint, save_checkpoint, CheckpointRecord, Method, RunPosition, Schedule, StepLogs, TrainConfig, Trainer};
use candle_core::{DType, Device, Tensor, Var};
use common::{max_abs_diff, separable_batch, tiny_model, values};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ALWAYS: MixStyleConfig = MixStyleConfig { p: 1.0, alpha: 0.1, mix: MixPartner::Random };

/// A [n, c, h, w] f64 batch whose instances and channels have clearly different statistics.
fn features(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f64> = (0..n * c)
        .flat_map(|plane| {
            let (mean, spread) = (plane as f64 * 0.7 - 2.0, 0.5 + (plane % 3) as f64);
            (0..h * w).map(|_| mean + spread * rng.gen_range(-1.0..1.0)).collect::<Vec<_>>()
        })
        .collect();
    Tensor::from_vec(v, (n, c, h, w), &Device::Cpu).unwrap()
}

/// Per-(instance, channel) mean and sqrt(unbiased var + eps) of a [n, c, h, w] tensor, in f64.
fn plane_stats(t: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let (_, _, h, w) = t.dims4().unwrap();
    let v = values(t);
    v.chunks(h * w)
        .map(|p| {
            let m = p.iter().sum::<f64>() / p.len() as f64;
            let var = p.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (p.len() - 1) as f64;
            (m, (var + INSTANCE_EPS).sqrt())
        })
        .unzip()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

#[test]
fn mixstyle_output_has_the_mixed_statistics() {
    let x = features(6, 3, 5, 4, 1);
    let draw = MixDraw { lambda: vec![1.0, 0.0, 0.3, 0.9, 0.5, 0.05], perm: vec![2, 0, 1, 5, 3, 4] };
    let y = mix_styles(&x, &draw).unwrap();
    assert_eq!(y.dims(), x.dims());
    let (mu, sigma) = plane_stats(&x);
    let c = 3;
    let (mut want_mu, mut want_sigma) = (vec![], vec![]);
    for i in 0..6 {
        for ch in 0..c {
            let (own, other) = (i * c + ch, draw.perm[i] * c + ch);
            let l = draw.lambda[i];
            want_mu.push(l * mu[own] + (1.0 - l) * mu[other]);
            let sigma_mix = l * sigma[own] + (1.0 - l) * sigma[other];
            // y = x_norm * sigma' + mu', and x_norm's unbiased variance is var / (var + eps).
            let var = sigma[own].powi(2) - INSTANCE_EPS;
            want_sigma.push((sigma_mix.powi(2) * var / (var + INSTANCE_EPS) + INSTANCE_EPS).sqrt());
        }
    }
    let (got_mu, got_sigma) = plane_stats(&y);
    assert_close(&got_mu, &want_mu, 1e-9, "mean");
    assert_close(&got_sigma, &want_sigma, 1e-9, "std");
    // lambda = 0 takes the partner's style: instance 1 now looks like instance 0.
    assert_close(&got_mu[3..6], &mu[0..3], 1e-9, "instance 1 mean = instance 0 mean");
}

#[test]
fn mixstyle_with_lambda_one_or_no_partner_is_the_identity() {
    let x = features(4, 2, 3, 3, 2);
    let own_style = MixDraw { lambda: vec![1.0; 4], perm: vec![3, 2, 1, 0] };
    assert!(max_abs_diff(&mix_styles(&x, &own_style).unwrap(), &x) < 1e-12);
    let no_partner = MixDraw { lambda: vec![0.2, 0.4, 0.6, 0.8], perm: vec![0, 1, 2, 3] };
    assert!(max_abs_diff(&mix_styles(&x, &no_partner).unwrap(), &x) < 1e-12);
    // f32 too, at the tolerance the brief asks for.
    let x32 = x.to_dtype(DType::F32).unwrap();
    assert!(max_abs_diff(&mix_styles(&x32, &own_style).unwrap(), &x32) < 1e-5);
}

#[test]
fn mixstyle_statistics_are_detached() {
    // With the statistics constants, dy/dx = sigma' / sigma per instance and channel: the
    // gradient of sum(y * g) is g scaled plane by plane.
    let x = Var::from_tensor(&features(4, 2, 3, 3, 3)).unwrap();
    let draw = MixDraw { lambda: vec![0.1, 0.5, 0.7, 0.2], perm: vec![1, 3, 0, 2] };
    let g = features(4, 2, 3, 3, 4);
    let y = mix_styles(x.as_tensor(), &draw).unwrap();
    let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = values(grads.get(x.as_tensor()).unwrap());
    let (_, sigma) = plane_stats(x.as_tensor());
    let gv = values(&g);
    let want: Vec<f64> = (0..gv.len())
        .map(|k| {
            let plane = k / 9;
            let (i, ch) = (plane / 2, plane % 2);
            let l = draw.lambda[i];
            gv[k] * (l * sigma[plane] + (1.0 - l) * sigma[draw.perm[i] * 2 + ch]) / sigma[plane]
        })
        .collect();
    assert_close(&dx, &want, 1e-9, "dL/dx");
}

#[test]
fn mixstyle_is_identity_in_eval_and_seeded_in_training() {
    let x = features(8, 3, 4, 4, 5);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(values(&mixstyle(&x, &ALWAYS, false, &mut rng).unwrap()), values(&x));
    let never = MixStyleConfig { p: 0.0, ..ALWAYS };
    assert_eq!(values(&mixstyle(&x, &never, true, &mut rng).unwrap()), values(&x));
    let run = |seed| values(&mixstyle(&x, &ALWAYS, true, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap());
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert_ne!(run(7), values(&x));
    // p = 0.5 mixes some batches and passes others through.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let half = MixStyleConfig::default();
    let mixed = (0..40).filter(|_| draw_mix(&half, 8, &mut rng).unwrap().is_some()).count();
    assert!((10..=30).contains(&mixed), "{mixed} of 40 batches mixed at p = 0.5");
}

#[test]
fn mixstyle_draws_follow_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let random = draw_mix(&ALWAYS, 10, &mut rng).unwrap().unwrap();
    let mut sorted = random.perm.clone();
    sorted.sort();
    assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "a permutation");
    assert!(random.lambda.iter().all(|l| (0.0..=1.0).contains(l)));
    // Beta(0.1, 0.1) piles up at 0 and 1.
    let lambdas: Vec<f64> = (0..50).flat_map(|_| draw_mix(&ALWAYS, 10, &mut rng).unwrap().unwrap().lambda).collect();
    let extreme = lambdas.iter().filter(|&&l| !(0.1..=0.9).contains(&l)).count();
    assert!(extreme > lambdas.len() * 3 / 4, "{extreme} of {} lambdas near 0 or 1", lambdas.len());

    let cross = MixStyleConfig { mix: MixPartner::CrossDomain, ..ALWAYS };
    let draw = draw_mix(&cross, 8, &mut rng).unwrap().unwrap();
    assert!(draw.perm[..4].iter().all(|&j| j >= 4) && draw.perm[4..].iter().all(|&j| j < 4), "{:?}", draw.perm);
    let err = draw_mix(&cross, 7, &mut rng).unwrap_err();
    assert!(err.to_string().contains("even batch"), "{err}");
}

#[test]
fn dsu_output_has_the_resampled_statistics() {
    let x = features(5, 3, 4, 6, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let draw: DsuDraw = draw_noise(&DsuConfig { p: 1.0 }, 5, 3, &mut rng).unwrap().unwrap();
    let y = resample_stats(&x, &draw).unwrap();
    assert_eq!(y.dims(), x.dims());
    let (mu, sigma) = plane_stats(&x);
    // sqrt(unbiased variance over the batch + eps) of one channel's statistic.
    let spread = |stat: &[f64], ch: usize| {
        let col: Vec<f64> = (0..5).map(|i| stat[i * 3 + ch]).collect();
        let m = col.iter().sum::<f64>() / 5.0;
        (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 4.0 + INSTANCE_EPS).sqrt()
    };
    let (mut want_mu, mut want_sigma) = (vec![], vec![]);
    for k in 0..15 {
        let ch = k % 3;
        want_mu.push(mu[k] + draw.eps_mu[k] * spread(&mu, ch));
        let sigma_new = sigma[k] + draw.eps_sigma[k] * spread(&sigma, ch);
        let var = sigma[k].powi(2) - INSTANCE_EPS;
        want_sigma.push((sigma_new.powi(2) * var / (var + INSTANCE_EPS) + INSTANCE_EPS).sqrt());
    }
    let (got_mu, got_sigma) = plane_stats(&y);
    assert_close(&got_mu, &want_mu, 1e-9, "mean");
    assert_close(&got_sigma, &want_sigma, 1e-9, "std");
    // Zero noise changes nothing.
    let still = DsuDraw { eps_mu: vec![0.0; 15], eps_sigma: vec![0.0; 15] };
    assert!(max_abs_diff(&resample_stats(&x, &still).unwrap(), &x) < 1e-12);
}

#[test]
fn dsu_is_identity_in_eval_seeded_in_training_and_needs_two_instances() {
    let x = features(6, 2, 4, 4, 10);
    let always = DsuConfig { p: 1.0 };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(values(&dsu(&x, &always, false, &mut rng).unwrap()), values(&x));
    assert_eq!(values(&dsu(&x, &DsuConfig { p: 0.0 }, true, &mut rng).unwrap()), values(&x));
    let run = |seed| values(&dsu(&x, &always, true, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap());
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4));
    let one = features(1, 2, 4, 4, 11);
    let err = dsu(&one, &always, true, &mut rng).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
    assert!(dsu(&one, &always, false, &mut rng).is_ok(), "eval passes any batch through");
}

fn fine_tune(method: Method, seed: u64, steps: usize) -> (f64, f64, Vec<f64>) {
    let mut model = tiny_model(0, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 11, DType::F32);
    let before = evaluate_batch(&model, &images, &labels, BnBranch::Clean).unwrap().loss_sum;
    let config = TrainConfig { lr: 0.05, schedule: Schedule::Constant, epochs: 8, seed, ..TrainConfig::reference(method, 1) };
    let mut trainer = Trainer::new(&mut model, config).unwrap();
    let losses = (0..steps).map(|s| trainer.step(&model, &images, &labels, s, 0).unwrap().loss).collect();
    let after = evaluate_batch(&model, &images, &labels, BnBranch::Clean).unwrap().loss_sum;
    (before, after, losses)
}

#[test]
fn erm_mixstyle_dsu_and_the_combinations_lower_the_loss() {
    let runs: Vec<(&str, Vec<f64>)> = ["erm", "mixstyle", "dsu", "advbn_mixstyle", "advbn_dsu"]
        .into_iter()
        .map(|name| {
            let (before, after, losses) = fine_tune(Method::parse(name).unwrap(), 0, 12);
            assert!(after < before * 0.7, "{name}: clean eval loss {before} -> {after}");
            assert!(losses.iter().all(|l| l.is_finite()), "{name}: {losses:?}");
            (name, losses)
        })
        .collect();
    // The perturbations were applied: the baselines' trajectories leave ERM's.
    assert_ne!(runs[1].1, runs[0].1, "mixstyle trained exactly like erm");
    assert_ne!(runs[2].1, runs[0].1, "dsu trained exactly like erm");
}

/// The logs of the first step of `method` (seed 2) on the model and batch of `fine_tune`.
fn first_step(method: Method) -> StepLogs {
    let mut model = tiny_model(0, DType::F32, 4);
    let (images, labels) = separable_batch(32, 4, 16, 11, DType::F32);
    let config = TrainConfig { lr: 0.05, schedule: Schedule::Constant, epochs: 8, seed: 2, ..TrainConfig::reference(method, 1) };
    Trainer::new(&mut model, config).unwrap().step(&model, &images, &labels, 0, 0).unwrap()
}

#[test]
fn advbn_combinations_attack_the_style_perturbed_features() {
    let advbn = first_step(Method::AdvBn);
    let always_mix = MixStyleConfig { p: 1.0, ..Default::default() };
    let always_dsu = DsuConfig { p: 1.0 };
    for (combo, style_only, never) in [
        (Method::AdvBnMixStyle(always_mix), Method::MixStyle(always_mix), Method::AdvBnMixStyle(MixStyleConfig { p: 0.0, ..always_mix })),
        (Method::AdvBnDsu(always_dsu), Method::Dsu(always_dsu), Method::AdvBnDsu(DsuConfig { p: 0.0 })),
    ] {
        let name = combo.name();
        let logs = first_step(combo);
        // The clean branch trains on the style-perturbed features, the same draw as the
        // style method alone (same seed, epoch and step).
        assert_eq!(logs.clean_loss, first_step(style_only).clean_loss, "{name}");
        // The attack starts from those features, not from the encoder's.
        let (start, advbn_start) = (logs.attack_clean_loss.unwrap(), advbn.attack_clean_loss.unwrap());
        assert!((start - advbn_start).abs() > 1e-6, "{name}: attack started at AdvBN's loss {start}");
        assert!(logs.adv_loss.is_some() && logs.attack_loss.unwrap() >= start, "{name}: {logs:?}");
        // With the perturbation switched off, the combination is AdvBN exactly.
        assert_eq!(first_step(never), advbn, "{name} with p = 0");
    }
}

#[test]
fn baseline_runs_are_fixed_by_the_seed() {
    for method in [Method::MixStyle(MixStyleConfig { p: 1.0, ..Default::default() }), Method::Dsu(DsuConfig { p: 1.0 })] {
        let (_, _, a) = fine_tune(method, 5, 3);
        let (_, _, b) = fine_tune(method, 5, 3);
        let (_, _, c) = fine_tune(method, 6, 3);
        assert_eq!(a, b, "{}", method.name());
        assert_ne!(a, c, "{}: the seed must matter", method.name());
    }
}

#[test]
fn resumed_baseline_runs_draw_what_the_uninterrupted_run_drew() {
    // The draws depend on (seed, epoch, step) only, so a checkpoint needs no random state.
    let path = std::env::temp_dir().join(format!("advbn-feature-stats-{}.safetensors", std::process::id()));
    let (images, labels) = separable_batch(16, 4, 16, 21, DType::F32);
    for method in [Method::MixStyle(MixStyleConfig { p: 1.0, ..Default::default() }), Method::Dsu(DsuConfig { p: 1.0 })] {
        let config = TrainConfig { lr: 0.05, schedule: Schedule::Constant, epochs: 4, seed: 3, ..TrainConfig::reference(method, 1) };
        let mut straight = tiny_model(1, DType::F32, 4);
        let mut trainer = Trainer::new(&mut straight, config.clone()).unwrap();
        let want: Vec<f64> = (0..4).map(|e| trainer.step(&straight, &images, &labels, e, 0).unwrap().loss).collect();

        let mut first = tiny_model(1, DType::F32, 4);
        let mut trainer = Trainer::new(&mut first, config.clone()).unwrap();
        let mut got: Vec<f64> = (0..2).map(|e| trainer.step(&first, &images, &labels, e, 0).unwrap().loss).collect();
        let record = CheckpointRecord { position: RunPosition { epoch: 2, next_batch: 0 }, settings: "{}", record: "{}" };
        save_checkpoint(&path, &first, &trainer, &record).unwrap();
        let mut resumed = tiny_model(1, DType::F32, 4);
        let mut trainer = Trainer::new(&mut resumed, config).unwrap();
        load_checkpoint(&path, &mut resumed, &mut trainer, "{}").unwrap();
        got.extend((2..4).map(|e| trainer.step(&resumed, &images, &labels, e, 0).unwrap().loss));
        assert_eq!(got, want, "{}", method.name());
    }
    std::fs::remove_file(&path).ok();
}

#[test]
fn baseline_methods_parse_and_validate() {
    assert_eq!(Method::parse("mixstyle").unwrap(), Method::MixStyle(MixStyleConfig { p: 0.5, alpha: 0.1, mix: MixPartner::Random }));
    assert_eq!(Method::parse("dsu").unwrap(), Method::Dsu(DsuConfig { p: 0.5 }));
    assert_eq!(Method::parse("advbn_mixstyle").unwrap(), Method::AdvBnMixStyle(MixStyleConfig::default()));
    assert_eq!(Method::parse("advbn_dsu").unwrap(), Method::AdvBnDsu(DsuConfig::default()));
    for name in Method::NAMES {
        assert_eq!(Method::parse(name).unwrap().name(), name);
    }
    let err = Method::parse("pAdaIN").unwrap_err().to_string();
    assert!(Method::NAMES.iter().all(|n| err.contains(n)), "{err}");
    assert_eq!(MixPartner::parse("crossdomain").unwrap(), MixPartner::CrossDomain);
    assert_eq!(Method::parse("pAdaIN").unwrap_err().option(), Some("method"));

    let mut model = tiny_model(0, DType::F32, 4);
    let cases = [
        (Method::MixStyle(MixStyleConfig { p: 1.5, ..Default::default() }), 1, "mixstyle.p"),
        (Method::MixStyle(MixStyleConfig { alpha: 0.0, ..Default::default() }), 1, "mixstyle.alpha"),
        (Method::Dsu(DsuConfig { p: f64::NAN }), 1, "dsu.p"),
        (Method::Dsu(DsuConfig::default()), 0, "cut"),
        (Method::MixStyle(MixStyleConfig::default()), 0, "cut"),
        (Method::AdvBnMixStyle(MixStyleConfig { p: -0.5, ..Default::default() }), 1, "mixstyle.p"),
        (Method::AdvBnDsu(DsuConfig { p: 2.0 }), 1, "dsu.p"),
        (Method::AdvBnDsu(DsuConfig::default()), 0, "cut"),
    ];
    for (method, cut, option) in cases {
        let config = TrainConfig { cut, ..TrainConfig::reference(method, 1) };
        let err = Trainer::new(&mut model, config).err().expect("must reject");
        assert_eq!(err.option(), Some(option), "{err}");
    }
}
