//! Shared fixtures: tiny seeded models and separable synthetic batches.
#![allow(dead_code)]

pub mod torch_formula;

use advbn_core::models::{Arch, ModelConfig, ResNet};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn tiny_model(seed: u64, dtype: DType, num_classes: usize) -> ResNet {
    let config = ModelConfig { seed, dtype, ..ModelConfig::new(Arch::SmallResNet { depth: 8, width: 8 }, num_classes) };
    ResNet::new(config, &Device::Cpu).unwrap()
}

/// Images whose class shows as a brighter quadrant plus noise, so a small net learns fast.
pub fn separable_batch(n: usize, num_classes: usize, size: usize, seed: u64, dtype: DType) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pixels = vec![0f32; n * 3 * size * size];
    let mut labels = vec![0u32; n];
    let half = size / 2;
    for i in 0..n {
        let label = rng.gen_range(0..num_classes);
        labels[i] = label as u32;
        for c in 0..3 {
            for y in 0..size {
                for x in 0..size {
                    let quadrant = (y / half) * 2 + x / half;
                    let signal = if quadrant % num_classes == label { 0.8 } else { 0.0 };
                    pixels[((i * 3 + c) * size + y) * size + x] = signal + rng.gen_range(-0.3..0.3);
                }
            }
        }
    }
    let images = Tensor::from_vec(pixels, (n, 3, size, size), &Device::Cpu).unwrap().to_dtype(dtype).unwrap();
    (images, Tensor::from_vec(labels, n, &Device::Cpu).unwrap())
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
