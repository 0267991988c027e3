//! The fused BatchNorm (+ ReLU): batch statistics, forward, and the gradients for x, gamma and
//! beta, in training and eval mode.

use advbn_core::ops::batch_norm::{batch_norm_fused, batch_stats, BnOptions};
use candle_core::{DType, Device, Tensor, Var};

use crate::{assert_close, gpu, random, to_cpu_f64};

/// x, gamma, beta, and the read-out w of the loss sum(bn(x) * w).
#[derive(Clone)]
struct Inputs {
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    w: Tensor,
}

/// [mean, var, y, dx, dgamma, dbeta] on `device` in `dtype`; `running` = eval-mode statistics.
fn outputs(inputs: &Inputs, running: Option<(&Tensor, &Tensor)>, relu: bool, device: &Device, dtype: DType) -> Vec<Tensor> {
    let Inputs { x, gamma, beta, w } = inputs;
    let on = |t: &Tensor| t.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let x = Var::from_tensor(&on(x)).unwrap();
    let gamma = Var::from_tensor(&on(gamma)).unwrap();
    let beta = Var::from_tensor(&on(beta)).unwrap();
    let (mean, var, train) = match running {
        Some((m, v)) => (m.to_device(device).unwrap(), v.to_device(device).unwrap(), false),
        None => {
            let (m, v) = batch_stats(x.as_tensor()).unwrap();
            (m, v, true)
        }
    };
    let y = batch_norm_fused(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), &mean, &var, BnOptions { eps: 1e-5, relu, train }).unwrap();
    let grads = (&y * on(w)).unwrap().sum_all().unwrap().backward().unwrap();
    [&mean, &var, &y, grads.get(x.as_tensor()).unwrap(), grads.get(gamma.as_tensor()).unwrap(), grads.get(beta.as_tensor()).unwrap()].map(to_cpu_f64).to_vec()
}

#[test]
fn batch_norm_kernels_match_cpu() {
    std::env::set_var("ADVBN_POISON_OUTPUTS", "1");
    let Some(gpu) = gpu() else { return };
    for (seed, shape) in [(1u64, [8usize, 16, 7, 9]), (2, [64, 256, 56, 56]), (3, [2, 5, 1, 1]), (4, [130, 3, 33, 17])] {
        let c = shape[1];
        // Offset inputs (mean 5, std ~0.6): the statistics must not cancel.
        let x = (random(&shape, seed, -1.0, 1.0) + 5.0).unwrap();
        let gamma = random(&[c], seed + 100, 0.5, 1.5);
        let beta = random(&[c], seed + 200, -0.5, 0.5);
        let w = random(&shape, seed + 300, -1.0, 1.0);
        let inputs = Inputs { x: x.clone(), gamma, beta, w };
        // bf16 rounds x itself (8 bits of mantissa at magnitude 5): its reference uses the rounded x.
        let rounded = Inputs { x: x.to_dtype(DType::BF16).unwrap().to_dtype(DType::F64).unwrap(), ..inputs.clone() };
        let rm = random(&[c], seed + 400, 4.5, 5.5);
        let rv = random(&[c], seed + 500, 0.2, 0.5);
        for running in [None, Some((&rm, &rv))] {
            for relu in [false, true] {
                let reference = outputs(&inputs, running, relu, &Device::Cpu, DType::F64);
                for (dtype, tol) in [(DType::F32, 1e-4), (DType::BF16, 1e-2)] {
                    let got = outputs(&inputs, running, relu, &gpu, dtype);
                    let what = format!("batch norm {shape:?} train={} relu={relu} {dtype:?}", running.is_none());
                    let reference = if dtype == DType::BF16 { outputs(&rounded, running, relu, &Device::Cpu, DType::F64) } else { reference.clone() };
                    assert_close(&what, &["mean", "var", "y", "dx", "dgamma", "dbeta"], &got, &reference, tol);
                }
            }
        }
    }
}
