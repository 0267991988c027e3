//! The max-pool op against a naive PyTorch-style reference (padding as -inf, first maximum on
//! ties, NaN propagates to the last NaN's position), in every float dtype, on odd sizes; its
//! gradient against finite differences (float64); argument errors.

mod common;

use advbn_core::models::resnet::max_pool2d;
use candle_core::{DType, Device, Tensor, Var};
use common::values;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Output values and the input gradient of sum(pool(x) * grad_out), computed the way PyTorch's
/// CPU kernel scans a window: start from -inf at the window's first element, take v when
/// `v > max || isnan(v)`, then scatter each output gradient to its argmax.
fn reference(x: &[f64], dims: [usize; 4], k: usize, s: usize, p: usize, grad_out: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let [n, c, h, w] = dims;
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = vec![0.0; n * c * oh * ow];
    let mut grad_in = vec![0.0; x.len()];
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let (y0, x0) = ((i * s) as isize - p as isize, (j * s) as isize - p as isize);
                let (ys, xs) = (y0.max(0) as usize, x0.max(0) as usize);
                let (ye, xe) = (((y0 + k as isize) as usize).min(h), ((x0 + k as isize) as usize).min(w));
                let mut best = f64::NEG_INFINITY;
                let mut arg = plane * h * w + ys * w + xs;
                for yy in ys..ye {
                    for xx in xs..xe {
                        let idx = plane * h * w + yy * w + xx;
                        if x[idx] > best || x[idx].is_nan() {
                            best = x[idx];
                            arg = idx;
                        }
                    }
                }
                let o = (plane * oh + i) * ow + j;
                out[o] = x[arg];
                grad_in[arg] += grad_out[o];
            }
        }
    }
    (out, grad_in)
}

fn same(a: f64, b: f64, tol: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Runs the op forward and backward on `x` (as `dtype`) and checks both against the reference.
fn check(x: &[f64], dims: [usize; 4], (k, s, p): (usize, usize, usize), dtype: DType, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let xt = Tensor::from_vec(x.to_vec(), dims.as_slice(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    let xv = Var::from_tensor(&xt).unwrap();
    let y = max_pool2d(xv.as_tensor(), k, s, p).unwrap();
    let (oh, ow) = ((dims[2] + 2 * p - k) / s + 1, (dims[3] + 2 * p - k) / s + 1);
    assert_eq!(y.dims(), &[dims[0], dims[1], oh, ow], "output shape for {dims:?} k={k} s={s} p={p}");
    assert_eq!(y.dtype(), dtype);
    let g: Vec<f64> = (0..y.elem_count()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let gt = Tensor::from_vec(g, y.dims(), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    let grads = (&y * &gt).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(xv.as_tensor()).expect("input gradient");
    assert_eq!(dx.dims(), dims.as_slice());
    // The reference works on the values as stored in `dtype`.
    let (want_y, want_dx) = reference(&values(&xt), dims, k, s, p, &values(&gt));
    let tol = match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-6,
        _ => 1e-2,
    };
    let what = format!("{dims:?} k={k} s={s} p={p} {dtype:?}");
    for (i, (a, b)) in values(&y).iter().zip(&want_y).enumerate() {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what}: y[{i}] = {a}, want {b}");
    }
    for (i, (a, b)) in values(dx).iter().zip(&want_dx).enumerate() {
        assert!(same(*a, *b, tol), "{what}: dx[{i}] = {a}, want {b}");
    }
}

fn uniform(len: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    (0..len).map(|_| rng.gen_range(-2.0..2.0)).collect()
}

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::BF16, DType::F16];

/// (kernel, stride, padding) settings that make a non-empty output for `h` x `w`.
fn configs(h: usize, w: usize) -> Vec<(usize, usize, usize)> {
    let all = [(3, 2, 1), (1, 1, 0), (2, 2, 0), (3, 1, 1), (2, 1, 1), (3, 3, 0), (4, 3, 2), (5, 2, 2), (2, 3, 0), (3, 2, 0)];
    all.into_iter().filter(|&(k, _, p)| h + 2 * p >= k && w + 2 * p >= k).collect()
}

#[test]
fn matches_reference_on_odd_sizes_in_every_dtype() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut seed = 0;
    for dims in [[2, 3, 7, 9], [1, 2, 1, 1], [2, 1, 2, 3], [1, 1, 5, 5], [3, 2, 8, 6]] {
        let x = uniform(dims.iter().product(), &mut rng);
        for cfg in configs(dims[2], dims[3]) {
            for dtype in DTYPES {
                seed += 1;
                check(&x, dims, cfg, dtype, seed);
            }
        }
    }
}

#[test]
fn ties_go_to_the_first_maximum() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut seed = 100;
    // Few distinct values: most windows hold several maxima.
    for dims in [[2, 2, 7, 9], [1, 3, 4, 4], [1, 1, 2, 3]] {
        let x: Vec<f64> = (0..dims.iter().product()).map(|_| rng.gen_range(0..3) as f64).collect();
        for cfg in configs(dims[2], dims[3]) {
            for dtype in DTYPES {
                seed += 1;
                check(&x, dims, cfg, dtype, seed);
            }
        }
    }
    // A constant plane: every window's gradient goes to its first (top-left) real element.
    let x = Var::from_tensor(&Tensor::zeros((1, 1, 3, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
    let y = max_pool2d(x.as_tensor(), 2, 1, 0).unwrap();
    let dx = y.sum_all().unwrap().backward().unwrap().get(x.as_tensor()).unwrap().clone();
    assert_eq!(values(&dx), vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn padding_is_minus_infinity_not_zero() {
    // All negative: zero padding would win every border window.
    let x: Vec<f64> = (0..35).map(|i| -1.0 - i as f64).collect();
    let t = Tensor::from_vec(x.clone(), (1, 1, 5, 7), &Device::Cpu).unwrap();
    let y = values(&max_pool2d(&t, 3, 2, 1).unwrap());
    assert!(y.iter().all(|v| *v < 0.0), "{y:?}");
    assert_eq!(y[0], -1.0);
    for dtype in DTYPES {
        check(&x, [1, 1, 5, 7], (3, 2, 1), dtype, 7);
    }
    // -inf inputs: the output is -inf and the gradient still goes to the window's first element.
    let mut x = vec![f64::NEG_INFINITY; 12];
    x[11] = 0.5;
    for dtype in DTYPES {
        check(&x, [1, 1, 3, 4], (2, 1, 1), dtype, 8);
        check(&x, [1, 1, 3, 4], (3, 2, 1), dtype, 9);
    }
}

#[test]
fn nan_propagates_like_pytorch() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let dims = [2, 2, 7, 9];
    let mut x = uniform(dims.iter().product(), &mut rng);
    // Single NaNs, a pair of adjacent NaNs (the gradient goes to the last one), a NaN in a corner.
    for i in [0, 10, 11, 40, 62, 100, 101, 125, 200, 251] {
        x[i] = f64::NAN;
    }
    for cfg in configs(7, 9) {
        for dtype in DTYPES {
            check(&x, dims, cfg, dtype, 21);
        }
    }
    let t = Tensor::from_vec(vec![1.0f32, f64::NAN as f32, 3.0, 2.0], (1, 1, 2, 2), &Device::Cpu).unwrap();
    assert!(values(&max_pool2d(&t, 2, 2, 0).unwrap())[0].is_nan());
}

#[test]
fn large_inputs_split_across_threads_match_reference() {
    // Over the threading threshold, with a plane count (45) that 4 threads split unevenly.
    std::env::set_var("RAYON_NUM_THREADS", "4");
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let dims = [5, 9, 100, 120];
    let x = uniform(dims.iter().product(), &mut rng);
    for dtype in [DType::F32, DType::BF16] {
        check(&x, dims, (3, 2, 1), dtype, 31);
    }
}

#[test]
fn agrees_with_candle_when_kernel_equals_stride() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let x = Tensor::from_vec(uniform(2 * 3 * 9 * 8, &mut rng), (2, 3, 9, 8), &Device::Cpu).unwrap();
    for k in [1, 2, 3] {
        let ours = max_pool2d(&x, k, k, 0).unwrap();
        let candle = x.max_pool2d(k).unwrap();
        assert_eq!(values(&ours), values(&candle), "k={k}");
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    for (dims, (k, s, p)) in [([2, 2, 7, 9], (3, 2, 1)), ([1, 2, 6, 5], (2, 1, 1)), ([1, 1, 5, 7], (3, 1, 0)), ([2, 1, 1, 1], (3, 2, 1))] {
        let len: usize = dims.iter().product();
        // Distinct values at least 0.01 apart: no ties within the +-h steps.
        let mut perm: Vec<usize> = (0..len).collect();
        perm.shuffle(&mut rng);
        let base: Vec<f64> = perm.iter().map(|&i| i as f64 * 0.01 - 1.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(base.clone(), dims.as_slice(), &Device::Cpu).unwrap()).unwrap();
        let y = max_pool2d(x.as_tensor(), k, s, p).unwrap();
        let wv: Vec<f64> = (0..y.elem_count()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let weights = Tensor::from_vec(wv, y.dims(), &Device::Cpu).unwrap();
        let loss = |t: &Tensor| (max_pool2d(t, k, s, p).unwrap() * &weights).unwrap().sum_all().unwrap();
        let grads = loss(x.as_tensor()).backward().unwrap();
        let analytic = values(grads.get(x.as_tensor()).unwrap());
        let h = 1e-6;
        for i in 0..len {
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                loss(&Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).unwrap()).to_scalar::<f64>().unwrap()
            };
            let numeric = (eval(h) - eval(-h)) / (2.0 * h);
            let err = (numeric - analytic[i]).abs() / numeric.abs().max(1.0);
            assert!(err < 1e-6, "{dims:?} k={k} s={s} p={p}: d/dx[{i}] analytic {} vs numeric {numeric}", analytic[i]);
        }
    }
}

#[test]
fn strided_views_and_empty_batches() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let x = Tensor::from_vec(uniform(2 * 3 * 7 * 9, &mut rng), (2, 3, 7, 9), &Device::Cpu).unwrap();
    let t = x.transpose(2, 3).unwrap();
    assert!(!t.is_contiguous());
    let want = max_pool2d(&t.contiguous().unwrap(), 3, 2, 1).unwrap();
    assert_eq!(values(&max_pool2d(&t, 3, 2, 1).unwrap()), values(&want));
    let empty = Tensor::zeros((0, 3, 7, 9), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(max_pool2d(&empty, 3, 2, 1).unwrap().dims(), &[0, 3, 4, 5]);
}

#[test]
fn bad_arguments_are_rejected_clearly() {
    let x = Tensor::zeros((1, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = |r: candle_core::Result<Tensor>| r.unwrap_err().to_string();
    assert!(err(max_pool2d(&x, 0, 1, 0)).contains("kernel size must be >= 1"));
    assert!(err(max_pool2d(&x, 3, 0, 1)).contains("stride must be >= 1"));
    assert!(err(max_pool2d(&x, 3, 2, 2)).contains("padding must be at most half the kernel size"));
    assert!(err(max_pool2d(&x, 1, 1, 1)).contains("padding must be at most half"));
    assert!(err(max_pool2d(&x, 7, 1, 1)).contains("output would be empty"));
    let flat = Tensor::zeros((2, 4, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(err(max_pool2d(&flat, 3, 2, 1)).contains("[N, C, H, W]"));
    let no_rows = Tensor::zeros((1, 1, 0, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(err(max_pool2d(&no_rows, 1, 1, 0)).contains("output would be empty"));
    let ints = Tensor::zeros((1, 1, 4, 4), DType::U32, &Device::Cpu).unwrap();
    assert!(err(max_pool2d(&ints, 2, 2, 0)).contains("unsupported dtype"));
}
