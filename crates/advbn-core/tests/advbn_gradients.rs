//! The AdvBN op's gradients w.r.t. alpha, beta and the input match central finite differences
//! (float64), with and without the ReLU clamp.

mod common;

use advbn_core::nn::advbn;
use candle_core::{DType, Device, Tensor, Var};
use common::values;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: (usize, usize, usize, usize), rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let v: Vec<f64> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// L = sum(advbn(x, alpha, beta) * weights): a generic linear read-out of the output.
fn loss(x: &Tensor, alpha: &Tensor, beta: &Tensor, weights: &Tensor, relu: bool) -> Tensor {
    (advbn(x, alpha, beta, relu).unwrap() * weights).unwrap().sum_all().unwrap()
}

fn check_gradients(relu: bool, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let shape = (3, 4, 5, 5);
    // Features from a ReLU are >= 0; keep them off 0 so the clamp's kink is not sampled.
    let x = Var::from_tensor(&random(shape, &mut rng, 0.1, 2.0)).unwrap();
    let alpha = Var::from_tensor(&random((1, 4, 1, 1), &mut rng, 0.3, 1.7)).unwrap();
    let beta = Var::from_tensor(&random((1, 4, 1, 1), &mut rng, 0.3, 1.7)).unwrap();
    let weights = random(shape, &mut rng, -1.0, 1.0);
    let grads = loss(x.as_tensor(), alpha.as_tensor(), beta.as_tensor(), &weights, relu).backward().unwrap();
    let h = 1e-6;
    for (name, var) in [("alpha", &alpha), ("beta", &beta), ("input", &x)] {
        let analytic = values(grads.get(var.as_tensor()).unwrap());
        let base = values(var.as_tensor());
        let dims = var.as_tensor().dims().to_vec();
        for i in 0..base.len() {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                let t = Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).unwrap();
                let (x, a, b) = match name {
                    "alpha" => (x.as_tensor().clone(), t, beta.as_tensor().clone()),
                    "beta" => (x.as_tensor().clone(), alpha.as_tensor().clone(), t),
                    _ => (t, alpha.as_tensor().clone(), beta.as_tensor().clone()),
                };
                loss(&x, &a, &b, &weights, relu).to_scalar::<f64>().unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            let err = (numeric - analytic[i]).abs() / numeric.abs().max(1.0);
            assert!(err < 1e-6, "d/d{name}[{i}] relu={relu}: analytic {} vs numeric {numeric}", analytic[i]);
        }
    }
}

#[test]
fn gradients_match_finite_differences_without_clamp() {
    check_gradients(false, 1);
}

#[test]
fn gradients_match_finite_differences_with_relu_clamp() {
    check_gradients(true, 2);
}

#[test]
fn identity_perturbation_is_identity_and_statistics_scale() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = random((4, 2, 3, 3), &mut rng, 0.0, 1.0);
    let ones = Tensor::ones((1, 2, 1, 1), DType::F64, &Device::Cpu).unwrap();
    assert!(common::max_abs_diff(&advbn(&x, &ones, &ones, true).unwrap(), &x) < 1e-12);
    // Channel mean becomes alpha * mu and channel std beta * sigma.
    let alpha = Tensor::from_vec(vec![0.5f64, 1.5], (1, 2, 1, 1), &Device::Cpu).unwrap();
    let beta = Tensor::from_vec(vec![2.0f64, 0.25], (1, 2, 1, 1), &Device::Cpu).unwrap();
    let y = advbn(&x, &alpha, &beta, false).unwrap();
    let mean = |t: &Tensor| values(&t.mean_keepdim((0, 2, 3)).unwrap());
    let std = |t: &Tensor| {
        let c = t.broadcast_sub(&t.mean_keepdim((0, 2, 3)).unwrap()).unwrap();
        values(&c.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap().sqrt().unwrap())
    };
    let (mx, my, sx, sy) = (mean(&x), mean(&y), std(&x), std(&y));
    for (c, (a, b)) in [(0.5, 2.0), (1.5, 0.25)].iter().enumerate() {
        assert!((my[c] - a * mx[c]).abs() < 1e-12);
        assert!((sy[c] - b * sx[c]).abs() < 1e-12);
    }
}

#[test]
fn fused_op_matches_the_reference_in_values_and_gradients() {
    use advbn_core::nn::advbn::advbn_reference;
    for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5), (DType::BF16, 2e-2)] {
        for relu in [false, true] {
            let mut rng = ChaCha8Rng::seed_from_u64(10);
            let shape = (4, 3, 6, 5);
            let x = Var::from_tensor(&random(shape, &mut rng, 0.0, 2.0).to_dtype(dtype).unwrap()).unwrap();
            let alpha = Var::from_tensor(&random((1, 3, 1, 1), &mut rng, -0.1, 2.1).to_dtype(DType::F32).unwrap()).unwrap();
            let beta = Var::from_tensor(&random((1, 3, 1, 1), &mut rng, -0.1, 2.1).to_dtype(DType::F32).unwrap()).unwrap();
            let w = random(shape, &mut rng, -1.0, 1.0).to_dtype(dtype).unwrap();
            let run = |f: fn(&Tensor, &Tensor, &Tensor, bool) -> candle_core::Result<Tensor>| {
                let (a, b) = (alpha.as_tensor().to_dtype(dtype).unwrap(), beta.as_tensor().to_dtype(dtype).unwrap());
                let y = f(x.as_tensor(), &a, &b, relu).unwrap();
                let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
                let g = |v: &Var| values(grads.get(v.as_tensor()).unwrap());
                (values(&y), g(&x), g(&alpha), g(&beta))
            };
            let fused = run(advbn);
            let reference = run(advbn_reference);
            let close = |a: &[f64], b: &[f64], what: &str| {
                let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (i, (p, q)) in a.iter().zip(b).enumerate() {
                    assert!((p - q).abs() <= tol * scale, "{dtype:?} relu={relu} {what}[{i}]: fused {p} vs reference {q}");
                }
            };
            close(&fused.0, &reference.0, "y");
            close(&fused.1, &reference.1, "dx");
            close(&fused.2, &reference.2, "dalpha");
            close(&fused.3, &reference.3, "dbeta");
        }
    }
}

#[test]
fn no_input_gradient_is_computed_for_detached_features() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let x = random((2, 2, 4, 4), &mut rng, 0.0, 1.0);
    let alpha = Var::from_tensor(&Tensor::ones((1, 2, 1, 1), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let beta = Var::from_tensor(&Tensor::ones((1, 2, 1, 1), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let grads = advbn(&x, alpha.as_tensor(), beta.as_tensor(), true).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none());
    assert!(grads.get(alpha.as_tensor()).is_some());
}
