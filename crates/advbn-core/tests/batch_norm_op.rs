//! The fused BatchNorm (+ ReLU) op against the same math written with Candle's autograd
//! (float64), against central finite differences, and float32 against float64.

mod common;

use advbn_core::ops::batch_norm::{batch_norm_add_relu, batch_norm_fused, batch_stats, BnOptions};
use candle_core::{DType, Device, Tensor, Var};
use common::values;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EPS: f64 = 1e-5;

fn random(shape: &[usize], rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// BN written with plain tensor ops; Candle differentiates it (statistics included in training).
fn composite(x: &Tensor, gamma: &Tensor, beta: &Tensor, stats: Option<(&Tensor, &Tensor)>, relu: bool) -> Tensor {
    let c = x.dim(1).unwrap();
    let (mean, var) = match stats {
        Some((m, v)) => (m.reshape((1, c, 1, 1)).unwrap(), v.reshape((1, c, 1, 1)).unwrap()),
        None => {
            let mean = x.mean_keepdim((0, 2, 3)).unwrap();
            let var = x.broadcast_sub(&mean).unwrap().sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
            (mean, var)
        }
    };
    let xhat = x.broadcast_sub(&mean).unwrap().broadcast_div(&(var + EPS).unwrap().sqrt().unwrap()).unwrap();
    let y = xhat.broadcast_mul(&gamma.reshape((1, c, 1, 1)).unwrap()).unwrap().broadcast_add(&beta.reshape((1, c, 1, 1)).unwrap()).unwrap();
    if relu {
        y.relu().unwrap()
    } else {
        y
    }
}

fn fused(x: &Tensor, gamma: &Tensor, beta: &Tensor, stats: Option<(&Tensor, &Tensor)>, relu: bool) -> Tensor {
    let (mean, var, train) = match stats {
        Some((m, v)) => (m.clone(), v.clone(), false),
        None => {
            let (m, v) = batch_stats(x).unwrap();
            (m, v, true)
        }
    };
    batch_norm_fused(x, gamma, beta, &mean, &var, BnOptions { eps: EPS, relu, train }).unwrap()
}

type Bn = fn(&Tensor, &Tensor, &Tensor, Option<(&Tensor, &Tensor)>, bool) -> Tensor;

/// y and the gradients of sum(y * w) w.r.t. x, gamma, beta.
fn outputs(bn: Bn, x: &Tensor, gamma: &Tensor, beta: &Tensor, w: &Tensor, stats: Option<(&Tensor, &Tensor)>, relu: bool) -> Vec<Vec<f64>> {
    let (x, gamma, beta) = (Var::from_tensor(x).unwrap(), Var::from_tensor(gamma).unwrap(), Var::from_tensor(beta).unwrap());
    let y = bn(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), stats, relu);
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![values(&y)];
    out.extend([&x, &gamma, &beta].map(|v| values(grads.get(v.as_tensor()).unwrap())));
    out
}

fn inputs(seed: u64, shape: &[usize]) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = shape[1];
    // A large channel mean checks the statistics do not cancel catastrophically.
    let x = (random(shape, &mut rng, -1.0, 3.0) + 5.0).unwrap();
    let gamma = random(&[c], &mut rng, 0.5, 1.5);
    let beta = random(&[c], &mut rng, -0.5, 0.5);
    let w = random(shape, &mut rng, -1.0, 1.0);
    let running_mean = random(&[c], &mut rng, 4.0, 7.0);
    let running_var = random(&[c], &mut rng, 0.5, 2.0);
    (x, gamma, beta, w, running_mean, running_var)
}

#[test]
fn fused_matches_autograd_of_the_composite_in_train_and_eval_with_and_without_relu() {
    for (seed, shape) in [(1u64, [3usize, 4, 5, 6]), (2, [1, 3, 1, 1]), (3, [5, 2, 7, 3])] {
        let (x, gamma, beta, w, rm, rv) = inputs(seed, &shape);
        for stats in [None, Some((&rm, &rv))] {
            for relu in [false, true] {
                if shape == [1, 3, 1, 1] && stats.is_none() {
                    continue; // one value per channel: the batch variance is 0, the output only beta
                }
                let expected = outputs(composite, &x, &gamma, &beta, &w, stats, relu);
                let got = outputs(fused, &x, &gamma, &beta, &w, stats, relu);
                for (name, (g, e)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(got.iter().zip(&expected)) {
                    let worst = g.iter().zip(e).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
                    assert!(worst < 1e-9, "{shape:?} train={} relu={relu} {name}: relative error {worst:e}", stats.is_none());
                }
            }
        }
    }
}

#[test]
fn train_mode_gradients_match_finite_differences() {
    let (x, gamma, beta, w, _, _) = inputs(4, &[2, 3, 3, 4]);
    let analytic = outputs(fused, &x, &gamma, &beta, &w, None, true);
    let loss = |x: &Tensor, gamma: &Tensor, beta: &Tensor| (fused(x, gamma, beta, None, true) * &w).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let h = 1e-6;
    for (which, base) in [(1usize, &x), (2, &gamma), (3, &beta)] {
        let v = values(base);
        for i in 0..v.len() {
            let eval = |delta: f64| {
                let mut p = v.clone();
                p[i] += delta;
                let t = Tensor::from_vec(p, base.dims(), &Device::Cpu).unwrap();
                match which {
                    1 => loss(&t, &gamma, &beta),
                    2 => loss(&x, &t, &beta),
                    _ => loss(&x, &gamma, &t),
                }
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            let err = (numeric - analytic[which][i]).abs() / numeric.abs().max(1.0);
            assert!(err < 1e-6, "gradient {which}[{i}]: analytic {} vs numeric {numeric}", analytic[which][i]);
        }
    }
}

#[test]
fn float32_tracks_float64() {
    let (x, gamma, beta, w, _, _) = inputs(5, &[8, 6, 9, 9]);
    let reference = outputs(fused, &x, &gamma, &beta, &w, None, true);
    let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let got = outputs(fused, &f32(&x), &f32(&gamma), &f32(&beta), &f32(&w), None, true);
    for (name, (g, r)) in ["y", "dx", "dgamma", "dbeta"].iter().zip(got.iter().zip(&reference)) {
        let num: f64 = g.iter().zip(r).map(|(a, b)| (a - b).powi(2)).sum();
        let den: f64 = r.iter().map(|b| b * b).sum();
        let rel = (num / den).sqrt();
        assert!(rel < 1e-5, "{name}: float32 relative error {rel:e}");
    }
}

/// y = ReLU(BN(x) + r) and the gradients of sum(y * w) w.r.t. x, gamma, beta and r, fused or
/// as the BN op, an add and Candle's ReLU (whose gradient at exactly 0 is PyTorch's, 0).
fn add_relu_outputs(fuse: bool, x: &Tensor, gamma: &Tensor, beta: &Tensor, r: &Tensor, w: &Tensor, stats: Option<(&Tensor, &Tensor)>) -> Vec<Vec<f64>> {
    let vars = [x, gamma, beta, r].map(|t| Var::from_tensor(t).unwrap());
    let [x, gamma, beta, r] = vars.each_ref().map(|v| v.as_tensor());
    let (mean, var, train) = match stats {
        Some((m, v)) => (m.clone(), v.clone(), false),
        None => {
            let (m, v) = batch_stats(x).unwrap();
            (m, v, true)
        }
    };
    let options = BnOptions { eps: EPS, relu: true, train };
    let y = if fuse {
        batch_norm_add_relu(x, gamma, beta, &mean, &var, r, options).unwrap()
    } else {
        (batch_norm_fused(x, gamma, beta, &mean, &var, BnOptions { relu: false, ..options }).unwrap() + r).unwrap().relu().unwrap()
    };
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let mut out = vec![values(&y)];
    out.extend(vars.iter().map(|v| values(grads.get(v.as_tensor()).unwrap())));
    out
}

#[test]
fn fused_residual_add_relu_matches_the_unfused_ops_and_float32_tracks_float64() {
    for (seed, shape) in [(6u64, [3usize, 4, 5, 6]), (7, [2, 3, 9, 1])] {
        let (x, gamma, beta, w, rm, rv) = inputs(seed, &shape);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
        // About half the outputs clamp: the mask matters.
        let r = random(&shape, &mut rng, -1.5, 1.0);
        for stats in [None, Some((&rm, &rv))] {
            let expected = add_relu_outputs(false, &x, &gamma, &beta, &r, &w, stats);
            let got = add_relu_outputs(true, &x, &gamma, &beta, &r, &w, stats);
            for (name, (g, e)) in ["y", "dx", "dgamma", "dbeta", "dr"].iter().zip(got.iter().zip(&expected)) {
                let worst = g.iter().zip(e).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
                assert!(worst < 1e-9, "{shape:?} train={} {name}: relative error {worst:e}", stats.is_none());
            }
            let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
            let single = add_relu_outputs(true, &f32(&x), &f32(&gamma), &f32(&beta), &f32(&r), &f32(&w), stats);
            for (name, (g, e)) in ["y", "dx", "dgamma", "dbeta", "dr"].iter().zip(single.iter().zip(&expected)) {
                let num: f64 = g.iter().zip(e).map(|(a, b)| (a - b).powi(2)).sum();
                let den: f64 = e.iter().map(|b| b * b).sum::<f64>().max(1e-30);
                // A few elements near the ReLU's kink may clamp differently in float32.
                assert!((num / den).sqrt() < 1e-4, "{shape:?} {name}: float32 relative error {:e}", (num / den).sqrt());
            }
        }
    }
}

#[test]
fn statistics_are_the_batch_mean_and_biased_variance() {
    let x = Tensor::from_vec((1..=16).map(|v| v as f64).collect::<Vec<_>>(), (2, 2, 2, 2), &Device::Cpu).unwrap();
    let (mean, var) = batch_stats(&x).unwrap();
    // Channel 0: 1..4 and 9..12; channel 1: 5..8 and 13..16.
    assert_eq!(values(&mean), vec![6.5, 10.5]);
    assert_eq!(values(&var), vec![17.25, 17.25]);
    let err = batch_stats(&Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
    assert!(err.contains("rank") || err.contains("dims") || err.contains("4"), "{err}");
    // No samples, or no pixels: an error on every device (the CUDA kernels would read past the end).
    for shape in [(0, 3, 2, 2), (2, 3, 0, 2)] {
        let err = batch_stats(&Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()).unwrap_err().to_string();
        assert!(err.contains("empty tensor"), "{shape:?}: {err}");
    }
}
