//! CPU timing of our fused ops against the Candle composites they replaced, side by side in one
//! run: BatchNorm+ReLU training forward+backward, the ResNet stem max-pool forward+backward, and
//! one SGD-momentum step over ResNet-18's parameters.
//! `cargo bench -p advbn-core --bench cpu_ops` prints a markdown table of medians.

use std::hint::black_box;
use std::time::Instant;

use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::ops::batch_norm::{batch_norm_fused, batch_stats, BnOptions};
use advbn_core::ops::max_pool::max_pool2d;
use advbn_core::params::is_buffer;
use advbn_core::train::{Optimizer, OptimizerConfig};
use candle_core::backprop::GradStore;
use candle_core::{Device, Result, Tensor, Var};

const RUNS: usize = 7;

fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[RUNS / 2])
}

fn bn_relu_composite(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let c = x.dim(1)?;
    let mean = x.mean_keepdim((0, 2, 3))?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
    let scale = (var + 1e-5)?.sqrt()?.recip()?.broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?;
    centered.broadcast_mul(&scale)?.broadcast_add(&beta.reshape((1, c, 1, 1))?)?.relu()
}

/// The stem pool as nine strided maxima over a zero-padded input (valid after a ReLU).
fn max_pool_composite(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
    let x = x.pad_with_zeros(2, 1, 2 * oh + 1 - h)?.pad_with_zeros(3, 1, 2 * ow + 1 - w)?;
    let mut out: Option<Tensor> = None;
    for dy in 0..3 {
        for dx in 0..3 {
            let window = x.narrow(2, dy, 2 * oh)?.narrow(3, dx, 2 * ow)?;
            let window = window.reshape((n, c, oh, 2, ow, 2))?.narrow(3, 0, 1)?.narrow(5, 0, 1)?.reshape((n, c, oh, ow))?;
            out = Some(match out {
                None => window,
                Some(acc) => acc.maximum(&window)?,
            });
        }
    }
    Ok(out.expect("nine windows"))
}

fn main() -> Result<()> {
    let cpu = Device::Cpu;
    let mut rows = Vec::new();

    let x = Var::from_tensor(&Tensor::rand(0f32, 2f32, (32, 64, 56, 56), &cpu)?)?;
    let g = Tensor::rand(-1f32, 1f32, (32, 64, 56, 56), &cpu)?;
    let gamma = Var::from_tensor(&Tensor::ones(64, candle_core::DType::F32, &cpu)?)?;
    let beta = Var::from_tensor(&Tensor::zeros(64, candle_core::DType::F32, &cpu)?)?;
    let fused = median_ms(|| {
        let (mean, var) = batch_stats(x.as_tensor())?;
        let opts = BnOptions { eps: 1e-5, relu: true, train: true };
        let y = batch_norm_fused(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), &mean, &var, opts)?;
        black_box((y * &g)?.sum_all()?.backward()?);
        Ok(())
    })?;
    let composite = median_ms(|| {
        black_box((bn_relu_composite(x.as_tensor(), gamma.as_tensor(), beta.as_tensor())? * &g)?.sum_all()?.backward()?);
        Ok(())
    })?;
    rows.push(("BatchNorm+ReLU train fwd+bwd [32, 64, 56, 56] f32", fused, composite));

    let x = Var::from_tensor(&Tensor::rand(0f32, 1f32, (32, 64, 112, 112), &cpu)?)?;
    let g = Tensor::rand(-1f32, 1f32, (32, 64, 56, 56), &cpu)?;
    let ours = median_ms(|| {
        black_box((max_pool2d(x.as_tensor(), 3, 2, 1)? * &g)?.sum_all()?.backward()?);
        Ok(())
    })?;
    let composite = median_ms(|| {
        black_box((max_pool_composite(x.as_tensor())? * &g)?.sum_all()?.backward()?);
        Ok(())
    })?;
    rows.push(("max-pool 3x3/2 pad 1 fwd+bwd [32, 64, 112, 112] f32", ours, composite));

    // SGD momentum 0.9 + weight decay 1e-4 over ResNet-18's 62 parameter tensors (11.7 M).
    let model = ResNet::new(ModelConfig::new(Arch::ResNet18, 1000), &cpu).map_err(candle_core::Error::wrap)?;
    let params: Vec<Var> = model.params().select(|name| !is_buffer(name)).into_iter().map(|(_, v)| v).collect();
    let loss = params.iter().map(|v| v.as_tensor().sqr()?.sum_all()).collect::<Result<Vec<_>>>()?;
    let loss = loss.into_iter().reduce(|a, b| (a + b).expect("scalars")).expect("parameters");
    let grads: GradStore = loss.backward()?;
    let mut optimizer =
        Optimizer::new(OptimizerConfig::Sgd { momentum: 0.9, weight_decay: 1e-4, nesterov: false }, params.clone()).map_err(candle_core::Error::wrap)?;
    let fused = median_ms(|| optimizer.step(&grads, 1e-3))?;
    let mut buffers: Vec<Option<Tensor>> = vec![None; params.len()];
    let composite = median_ms(|| {
        for (var, buf) in params.iter().zip(buffers.iter_mut()) {
            let p = var.as_tensor().detach();
            let g = (grads.get(var.as_tensor()).expect("gradient").detach() + p.affine(1e-4, 0.0)?)?;
            let next = match buf.as_ref() {
                Some(b) => (b.affine(0.9, 0.0)? + &g)?,
                None => g,
            };
            var.set(&(p - next.affine(1e-3, 0.0)?)?)?;
            *buf = Some(next);
        }
        Ok(())
    })?;
    rows.push(("SGD momentum + decay step, ResNet-18 parameters (11.7 M) f32", fused, composite));

    println!("| op | ours (ms) | Candle composite (ms) | ratio |\n|---|---|---|---|");
    for (name, ours, composite) in rows {
        println!("| {name} | {ours:.1} | {composite:.1} | {:.1}x |", composite / ours);
    }
    Ok(())
}
