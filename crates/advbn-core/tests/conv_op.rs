//! Our conv2d op against Candle's conv2d (forward and both gradients, every ResNet geometry),
//! and the weight gradient skipped when the weights are constants (AdvBN's attack).

mod common;

use advbn_core::ops::conv::{conv2d, ConvParams};
use candle_core::{DType, Device, Tensor, Var};
use common::values;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.gen_range(-1.0..1.0)).collect::<Vec<f64>>(), shape, &Device::Cpu).unwrap()
}

fn worst_relative(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f64::max)
}

#[test]
fn matches_candle_conv_and_its_gradients_for_resnet_geometries() {
    // (x shape, out channels, kernel, stride, padding): stem 7x7/2, 3x3/1, 3x3/2, 1x1/1, 1x1/2, odd sizes.
    let cases =
        [([2, 3, 17, 15], 4, 7, 2, 3), ([2, 4, 9, 9], 5, 3, 1, 1), ([3, 4, 10, 10], 6, 3, 2, 1), ([2, 6, 5, 7], 3, 1, 1, 0), ([2, 6, 7, 7], 8, 1, 2, 0)];
    for (seed, (shape, out, k, stride, padding)) in cases.into_iter().enumerate() {
        let seed = seed as u64;
        let x = Var::from_tensor(&random(&shape, seed)).unwrap();
        let w = Var::from_tensor(&random(&[out, shape[1], k, k], seed + 10)).unwrap();
        let ours = conv2d(x.as_tensor(), w.as_tensor(), ConvParams { stride, padding }).unwrap();
        let theirs = x.as_tensor().conv2d(w.as_tensor(), padding, stride, 1, 1).unwrap();
        assert_eq!(ours.dims(), theirs.dims());
        assert!(worst_relative(&values(&ours), &values(&theirs)) < 1e-12);
        let read_out = random(ours.dims(), seed + 20);
        let g_ours = (&ours * &read_out).unwrap().sum_all().unwrap().backward().unwrap();
        let g_theirs = (&theirs * &read_out).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, v) in [("dx", &x), ("dw", &w)] {
            let (a, b) = (values(g_ours.get(v.as_tensor()).unwrap()), values(g_theirs.get(v.as_tensor()).unwrap()));
            assert!(worst_relative(&a, &b) < 1e-12, "{shape:?} k{k} s{stride} p{padding}: {name} differs");
        }
    }
}

#[test]
fn non_square_inputs_with_different_parities_match_finite_differences() {
    // H odd, W even with stride 2: the two dims need different output paddings in the backward.
    let x = Var::from_tensor(&random(&[1, 2, 5, 4], 7)).unwrap();
    let w = random(&[3, 2, 3, 3], 8);
    let params = ConvParams { stride: 2, padding: 1 };
    let read_out = random(&[1, 3, 3, 2], 9);
    let loss = |x: &Tensor| (conv2d(x, &w, params).unwrap() * &read_out).unwrap().sum_all().unwrap();
    let analytic = values(loss(x.as_tensor()).backward().unwrap().get(x.as_tensor()).unwrap());
    let base = values(x.as_tensor());
    for i in 0..base.len() {
        let eval = |d: f64| {
            let mut v = base.clone();
            v[i] += d;
            loss(&Tensor::from_vec(v, (1, 2, 5, 4), &Device::Cpu).unwrap()).to_scalar::<f64>().unwrap()
        };
        let numeric = (eval(1e-6) - eval(-1e-6)) / 2e-6;
        assert!((numeric - analytic[i]).abs() < 1e-6, "dx[{i}]: {numeric} vs {}", analytic[i]);
    }
}

#[test]
fn constant_weights_get_no_gradient_and_the_input_gradient_is_unchanged() {
    let x = Var::from_tensor(&random(&[2, 3, 8, 8], 1)).unwrap();
    let w = Var::from_tensor(&random(&[4, 3, 3, 3], 2)).unwrap();
    let params = ConvParams { stride: 1, padding: 1 };
    let full = conv2d(x.as_tensor(), w.as_tensor(), params).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let frozen = conv2d(x.as_tensor(), &w.as_tensor().detach(), params).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(frozen.get(w.as_tensor()).is_none());
    assert_eq!(values(full.get(x.as_tensor()).unwrap()), values(frozen.get(x.as_tensor()).unwrap()));
}

#[test]
fn bad_geometry_is_a_clear_error() {
    let x = Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((4, 3, 5, 5), DType::F32, &Device::Cpu).unwrap();
    let err = conv2d(&x, &w, ConvParams { stride: 1, padding: 0 }).unwrap_err().to_string();
    assert!(err.contains("smaller than the kernel"), "{err}");
    let w = Tensor::zeros((4, 2, 1, 1), DType::F32, &Device::Cpu).unwrap();
    let err = conv2d(&x, &w, ConvParams { stride: 1, padding: 0 }).unwrap_err().to_string();
    assert!(err.contains("3 channels") && err.contains("expects 2"), "{err}");
}

/// The eval-mode BN folded into its conv (values and the gradients of x and the residual)
/// against the conv op, the BN op, the add and Candle's ReLU, in f64; every kernel geometry.
#[test]
fn folded_conv_and_eval_batch_norm_match_the_separate_ops() {
    use advbn_core::ops::batch_norm::{batch_norm_fused, BnOptions};
    use advbn_core::ops::conv_affine::conv_affine;
    let cases =
        [([2, 3, 17, 15], 4, 7, 2, 3), ([3, 4, 9, 9], 5, 3, 1, 1), ([3, 4, 10, 10], 6, 3, 2, 1), ([2, 6, 5, 7], 3, 1, 1, 0), ([2, 6, 7, 7], 8, 1, 2, 0)];
    for (seed, (shape, out, k, stride, padding)) in cases.into_iter().enumerate() {
        let seed = seed as u64 + 40;
        let params = ConvParams { stride, padding };
        let x = Var::from_tensor(&random(&shape, seed)).unwrap();
        let w = random(&[out, shape[1], k, k], seed + 1);
        let (gamma, beta) = ((random(&[out], seed + 2) + 1.5).unwrap(), random(&[out], seed + 3));
        let (mean, var) = (random(&[out], seed + 4), (random(&[out], seed + 5) + 1.5).unwrap());
        let y_shape = conv2d(x.as_tensor(), &w, params).unwrap().dims().to_vec();
        let r = Var::from_tensor(&random(&y_shape, seed + 6)).unwrap();
        let read_out = random(&y_shape, seed + 7);
        let scale = (&gamma * (&var + 1e-5).unwrap().sqrt().unwrap().recip().unwrap()).unwrap();
        let shift = (&beta - (&mean * &scale).unwrap()).unwrap();
        for (residual, relu) in [(false, false), (false, true), (true, true)] {
            let r_in = residual.then(|| r.as_tensor());
            let folded = conv_affine(x.as_tensor(), &w, &scale, &shift, r_in, relu, params).unwrap();
            let options = BnOptions { eps: 1e-5, relu: relu && !residual, train: false };
            let mut separate = batch_norm_fused(&conv2d(x.as_tensor(), &w, params).unwrap(), &gamma, &beta, &mean, &var, options).unwrap();
            if residual {
                separate = (separate + r.as_tensor()).unwrap().relu().unwrap();
            }
            assert!(worst_relative(&values(&folded), &values(&separate)) < 1e-12, "{shape:?} k{k} s{stride}: forward");
            let g_folded = (&folded * &read_out).unwrap().sum_all().unwrap().backward().unwrap();
            let g_separate = (&separate * &read_out).unwrap().sum_all().unwrap().backward().unwrap();
            let mut vars = vec![("dx", &x)];
            if residual {
                vars.push(("dr", &r));
            }
            for (name, v) in vars {
                let (a, b) = (values(g_folded.get(v.as_tensor()).unwrap()), values(g_separate.get(v.as_tensor()).unwrap()));
                assert!(worst_relative(&a, &b) < 1e-12, "{shape:?} k{k} s{stride} residual={residual} relu={relu}: {name}");
            }
        }
    }
}
