//! The fused AdvBN op: forward, and gradients for x, alpha and beta, with and without the ReLU.

use advbn_core::nn::advbn;
use candle_core::{DType, Device, Tensor, Var};

use crate::{assert_close, gpu, random, to_cpu_f64};

/// y, dx, dalpha, dbeta of sum(advbn(x) * w) on `device`.
fn advbn_outputs(x: &Tensor, a: &Tensor, b: &Tensor, w: &Tensor, relu: bool, device: &Device, dtype: DType) -> Vec<Tensor> {
    let x = Var::from_tensor(&x.to_device(device).unwrap().to_dtype(dtype).unwrap()).unwrap();
    let a = Var::from_tensor(&a.to_device(device).unwrap()).unwrap();
    let b = Var::from_tensor(&b.to_device(device).unwrap()).unwrap();
    let w = w.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let y = advbn(x.as_tensor(), a.as_tensor(), b.as_tensor(), relu).unwrap();
    let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
    [&y, grads.get(x.as_tensor()).unwrap(), grads.get(a.as_tensor()).unwrap(), grads.get(b.as_tensor()).unwrap()].map(to_cpu_f64).to_vec()
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
                assert_close(&format!("advbn {shape:?} relu={relu} {dtype:?}"), &["y", "dx", "dalpha", "dbeta"], &got, &reference, tol);
            }
        }
    }
}
