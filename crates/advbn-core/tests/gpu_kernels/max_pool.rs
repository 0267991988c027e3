//! Max-pooling: forward and the gather backward against the CPU op, in float32 and bfloat16.

use advbn_core::models::resnet::max_pool2d;
use candle_core::{DType, Device, Tensor, Var};

use crate::{assert_close, gpu, random, to_cpu_f64};

/// (seed, input shape, (kernel, stride, padding)).
type Case = (u64, [usize; 4], (usize, usize, usize));

/// y and dx of sum(max_pool2d(x) * w) on `device`.
fn pool_outputs(x: &Tensor, w: &Tensor, (k, s, p): (usize, usize, usize), device: &Device) -> Vec<Tensor> {
    let x = Var::from_tensor(&x.to_device(device).unwrap()).unwrap();
    let w = w.to_device(device).unwrap();
    let y = max_pool2d(x.as_tensor(), k, s, p).unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    [&y, grads.get(x.as_tensor()).unwrap()].map(to_cpu_f64).to_vec()
}

#[test]
fn max_pool_kernels_match_cpu() {
    std::env::set_var("ADVBN_POISON_OUTPUTS", "1");
    let Some(gpu) = gpu() else { return };
    let cases: [Case; 7] = [
        (1, [64, 64, 112, 112], (3, 2, 1)), // ResNet's stem pool
        (2, [8, 16, 7, 9], (3, 2, 1)),
        (3, [3, 5, 1, 1], (3, 2, 1)),
        (4, [130, 3, 33, 17], (2, 2, 0)),
        (5, [2, 7, 2, 3], (2, 1, 1)),
        (6, [4, 9, 31, 29], (5, 3, 2)),
        (7, [5, 4, 12, 10], (3, 1, 0)),
    ];
    for (seed, shape, cfg) in cases {
        let (k, s, p) = cfg;
        let out = [shape[0], shape[1], (shape[2] + 2 * p - k) / s + 1, (shape[3] + 2 * p - k) / s + 1];
        let x = random(&shape, seed, -3.0, 3.0);
        let w = random(&out, seed + 100, -1.0, 1.0);
        for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 1e-2)] {
            // The reference sees the same (rounded) values, so argmaxes agree.
            let (x, w) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
            let reference = pool_outputs(&x, &w, cfg, &Device::Cpu);
            let got = pool_outputs(&x, &w, cfg, &gpu);
            assert_close(&format!("max_pool2d {shape:?} k={k} s={s} p={p} {dtype:?}"), &["y", "dx"], &got, &reference, tol);
        }
    }
}

#[test]
fn max_pool_ties_and_nan_match_cpu_exactly() {
    std::env::set_var("ADVBN_POISON_OUTPUTS", "1");
    let Some(gpu) = gpu() else { return };
    let shape = [4usize, 6, 15, 13];
    // Values in {0, 1, 2}: many ties, which must resolve to the same (first) element.
    let x = (random(&shape, 21, 0.0, 3.0).floor().unwrap()).to_dtype(DType::F32).unwrap();
    let mut v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for i in (0..v.len()).step_by(97) {
        v[i] = f32::NAN;
    }
    let x = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu).unwrap();
    for cfg in [(3, 2, 1), (2, 1, 1), (3, 3, 0)] {
        let (k, s, p) = cfg;
        let out = [shape[0], shape[1], (shape[2] + 2 * p - k) / s + 1, (shape[3] + 2 * p - k) / s + 1];
        let w = random(&out, 22, -1.0, 1.0);
        for dtype in [DType::F32, DType::BF16] {
            let (x, w) = (x.to_dtype(dtype).unwrap(), w.to_dtype(dtype).unwrap());
            let reference = pool_outputs(&x, &w, cfg, &Device::Cpu);
            let got = pool_outputs(&x, &w, cfg, &gpu);
            for (name, (g, r)) in ["y", "dx"].iter().zip(got.iter().zip(&reference)) {
                let (g, r) = (g.flatten_all().unwrap().to_vec1::<f64>().unwrap(), r.flatten_all().unwrap().to_vec1::<f64>().unwrap());
                for (i, (a, b)) in g.iter().zip(&r).enumerate() {
                    // dx sums at most a few gradients; only their order of rounding may differ.
                    let ok = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-2 * b.abs().max(1e-3);
                    assert!(ok, "max_pool2d ties/NaN k={k} s={s} p={p} {dtype:?} {name}[{i}]: {a} vs cpu {b}");
                }
            }
        }
    }
}
