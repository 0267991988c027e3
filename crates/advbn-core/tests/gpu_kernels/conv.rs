//! conv2d through cuDNN (forward, backward-data, backward-filter) against the CPU, for every
//! ResNet geometry, strict float32 (TF32 off), TF32 on, and bfloat16.
#![cfg(feature = "cudnn")]

use advbn_core::ops::conv::{conv2d, set_tf32, ConvParams};
use candle_core::{DType, Device, Tensor, Var};

use crate::{assert_close, gpu, random, to_cpu_f64};

/// [y, dx, dw] of sum(conv(x, w) * r) on `device` in `dtype`.
fn outputs(x: &Tensor, w: &Tensor, params: ConvParams, read_out: &Tensor, device: &Device, dtype: DType) -> Vec<Tensor> {
    let on = |t: &Tensor| t.to_device(device).unwrap().to_dtype(dtype).unwrap();
    let (x, w) = (Var::from_tensor(&on(x)).unwrap(), Var::from_tensor(&on(w)).unwrap());
    let y = conv2d(x.as_tensor(), w.as_tensor(), params).unwrap();
    let grads = (&y * on(read_out)).unwrap().sum_all().unwrap().backward().unwrap();
    [&y, grads.get(x.as_tensor()).unwrap(), grads.get(w.as_tensor()).unwrap()].map(to_cpu_f64).to_vec()
}

#[test]
fn cudnn_conv_matches_cpu() {
    std::env::set_var("ADVBN_POISON_OUTPUTS", "1");
    let Some(gpu) = gpu() else { return };
    // ResNet-50's geometries (stem 7x7/2, 1x1, 3x3/1, 3x3/2, 1x1/2) plus odd, non-square sizes.
    let cases = [
        ([8usize, 3, 224, 224], 64usize, 7usize, 2usize, 3usize),
        ([16, 64, 56, 56], 64, 1, 1, 0),
        ([16, 64, 56, 56], 64, 3, 1, 1),
        ([16, 128, 56, 56], 128, 3, 2, 1),
        ([16, 256, 56, 56], 512, 1, 2, 0),
        ([3, 5, 13, 10], 7, 3, 2, 1),
    ];
    for (seed, (shape, out, k, stride, padding)) in cases.into_iter().enumerate() {
        let seed = seed as u64;
        let params = ConvParams { stride, padding };
        let x = random(&shape, seed, -1.0, 1.0);
        let w = random(&[out, shape[1], k, k], seed + 10, -0.2, 0.2);
        let y_shape = [shape[0], out, params.out_size(shape[2], k).unwrap(), params.out_size(shape[3], k).unwrap()];
        let read_out = random(&y_shape, seed + 20, -1.0, 1.0);
        let reference = outputs(&x, &w, params, &read_out, &Device::Cpu, DType::F64);
        for (tf32, dtype, tol) in [(false, DType::F32, 1e-4), (true, DType::F32, 5e-3), (false, DType::BF16, 1e-2)] {
            set_tf32(tf32);
            let got = outputs(&x, &w, params, &read_out, &gpu, dtype);
            set_tf32(false);
            let what = format!("conv {shape:?} k{k} s{stride} p{padding} {dtype:?} tf32={tf32}");
            assert_close(&what, &["y", "dx", "dw"], &got, &reference, tol);
        }
    }
}

#[test]
fn frozen_weights_get_no_gradient_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let x = Var::from_tensor(&random(&[2, 8, 9, 9], 1, -1.0, 1.0).to_dtype(DType::F32).unwrap().to_device(&gpu).unwrap()).unwrap();
    let w = random(&[4, 8, 3, 3], 2, -1.0, 1.0).to_dtype(DType::F32).unwrap().to_device(&gpu).unwrap();
    let wv = Var::from_tensor(&w).unwrap();
    let params = ConvParams { stride: 1, padding: 1 };
    let frozen = conv2d(x.as_tensor(), &wv.as_tensor().detach(), params).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(frozen.get(wv.as_tensor()).is_none());
    let full = conv2d(x.as_tensor(), wv.as_tensor(), params).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
    let (a, b) = (to_cpu_f64(frozen.get(x.as_tensor()).unwrap()), to_cpu_f64(full.get(x.as_tensor()).unwrap()));
    assert_close("frozen vs full dx", &["dx"], &[a], &[b], 0.0);
}
