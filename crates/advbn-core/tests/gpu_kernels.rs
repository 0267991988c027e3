//! Our CUDA kernels against the CPU path on fresh random inputs (fp32 <= 1e-4, bf16 <= 1e-2
//! relative error), with outputs poisoned first (ADVBN_POISON_OUTPUTS) so an unwritten element
//! shows as NaN. Needs the `cuda` feature and a GPU; otherwise every test says so and passes.
#![cfg(feature = "cuda")]

mod common;

use advbn_core::nn::advbn;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gpu() -> Option<Device> {
    match advbn_core::device::parse_device("cuda") {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no usable CUDA device ({e})");
            None
        }
    }
}

fn random(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (common::values(a), common::values(b));
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output: an element was not written");
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-30)).sqrt()
}

/// y, dx, dalpha, dbeta of sum(advbn(x) * w) on `device`.
fn advbn_outputs(x: &Tensor, a: &Tensor, b: &Tensor, w: &Tensor, relu: bool, device: &Device, dtype: DType) -> Vec<Tensor> {
    let x = Var::from_tensor(&x.to_device(device).unwrap().to_dtype(dtype).unwrap()).unwrap();
    let a = Var::from_tensor(&a.to_device(device).unwrap()).unwrap();
    let b = Var::from_tensor(&b.to_device(device).unwrap()).unwrap();
    let w = w.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let y = advbn(x.as_tensor(), a.as_tensor(), b.as_tensor(), relu).unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    vec![cpu(&y), cpu(grads.get(x.as_tensor()).unwrap()), cpu(grads.get(a.as_tensor()).unwrap()), cpu(grads.get(b.as_tensor()).unwrap())]
}

#[test]
fn advbn_kernels_match_cpu() {
    std::env::set_var("ADVBN_POISON_OUTPUTS", "1");
    let Some(gpu) = gpu() else { return };
    for (seed, shape) in [(1u64, [8usize, 16, 7, 9]), (2, [64, 256, 56, 56]), (3, [3, 5, 1, 1]), (4, [130, 3, 33, 17])] {
        let x = random(&shape, seed, 0.0, 3.0);
        let a = random(&[1, shape[1], 1, 1], seed + 100, -0.1, 2.1);
        let b = random(&[1, shape[1], 1, 1], seed + 200, -0.1, 2.1);
        let w = random(&shape, seed + 300, -1.0, 1.0);
        for relu in [false, true] {
            let reference = advbn_outputs(&x, &a, &b, &w, relu, &Device::Cpu, DType::F64);
            for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 1e-2)] {
                let got = advbn_outputs(&x, &a, &b, &w, relu, &gpu, dtype);
                for (name, (g, r)) in ["y", "dx", "dalpha", "dbeta"].iter().zip(got.iter().zip(&reference)) {
                    let err = rel_err(g, r);
                    assert!(err <= tol, "{shape:?} relu={relu} {dtype:?} {name}: relative error {err:.2e} > {tol:.0e}");
                }
            }
        }
    }
}
