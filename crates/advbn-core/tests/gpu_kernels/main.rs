//! Our CUDA kernels against the CPU path on fresh random inputs (fp32 <= 1e-4, bf16 <= 1e-2
//! relative error), with outputs poisoned first (ADVBN_POISON_OUTPUTS) so an unwritten element
//! shows as NaN. Needs the `cuda` feature and a GPU; otherwise every test says so and passes.
#![cfg(feature = "cuda")]

#[path = "../common/mod.rs"]
mod common;

// One module per kernel family; shared helpers below.
mod advbn;
mod batch_norm;
mod conv;
mod max_pool;
mod optim;

use candle_core::{DType, Device, Tensor};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn gpu() -> Option<Device> {
    match advbn_core::device::parse_device("cuda") {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED: no usable CUDA device ({e})");
            None
        }
    }
}

pub fn random(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (common::values(a), common::values(b));
    assert!(a.iter().all(|v| v.is_finite()), "non-finite output: an element was not written");
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-30)).sqrt()
}

/// Asserts every named output is within `tol` relative error of its reference.
pub fn assert_close(what: &str, names: &[&str], got: &[Tensor], reference: &[Tensor], tol: f64) {
    for (name, (g, r)) in names.iter().zip(got.iter().zip(reference)) {
        let err = rel_err(g, r);
        assert!(err <= tol, "{what} {name}: relative error {err:.2e} > {tol:.0e}");
    }
}

/// A tensor on the CPU as f64, for comparisons.
pub fn to_cpu_f64(t: &Tensor) -> Tensor {
    t.to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap()
}
