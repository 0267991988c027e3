//! The weight formula of `test/fixtures/torch/make_fixture.py` (spec "advbn-parity-v1"): every
//! tensor of torchvision's `resnet18(num_classes=5)` and the test inputs from a hash of the
//! tensor's name and the element's index, the same bit for bit in Python, Rust and TypeScript.
//! Used by the PyTorch parity tests (`torch_parity.rs`, `torch_step_parity.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use advbn_core::models::{Arch, ModelConfig, ResNet};
use candle_core::{DType, Device, Tensor};

pub const NUM_CLASSES: usize = 5;

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test/fixtures/torch")
}

pub fn fnv1a32(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

pub fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

/// bits(name, i) of the spec, with `name_hash = fnv1a32(name)`.
pub fn bits(name_hash: u32, i: usize) -> u32 {
    let i = u32::try_from(i).expect("tensors under 2^32 elements");
    mix32(name_hash ^ mix32(i))
}

/// s(name, i): uniform in [-1, 1), exact in float64.
pub fn unit(name_hash: u32, i: usize) -> f64 {
    bits(name_hash, i) as f64 / 4294967296.0 * 2.0 - 1.0
}

/// The formula's values of tensor `name` of torchvision shape `shape`, as float32.
pub fn formula_values(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let hash = fnv1a32(name);
    let value: Box<dyn Fn(f64) -> f64> = if name.ends_with("running_mean") || name.ends_with(".bias") {
        Box::new(|s| 0.1 * s)
    } else if name.ends_with("running_var") {
        Box::new(|s| 1.0 + 0.5 * s)
    } else if name.ends_with(".weight") {
        match *shape {
            [_, cin, kh, kw] => {
                let gain = (6.0 / (cin * kh * kw) as f64).sqrt();
                Box::new(move |s| s * gain)
            }
            [_, cin] => {
                let root = (cin as f64).sqrt();
                Box::new(move |s| s / root)
            }
            [_] => Box::new(|s| 1.0 + 0.2 * s),
            _ => panic!("no formula for {name} {shape:?}"),
        }
    } else {
        panic!("no formula for {name}")
    };
    (0..n).map(|i| value(unit(hash, i)) as f32).collect()
}

/// An input of the formula: element i is s(name, i) rounded to float32.
pub fn formula_tensor(name: &str, shape: &[usize]) -> Tensor {
    let hash = fnv1a32(name);
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|i| unit(hash, i) as f32).collect();
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

/// torchvision's state-dict entries (`state_dict.txt`): name, dtype, shape.
pub fn torchvision_entries() -> Vec<(String, String, Vec<usize>)> {
    let text = std::fs::read_to_string(fixture_dir().join("state_dict.txt")).unwrap();
    text.lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let name = parts.next().unwrap().to_string();
            let dtype = parts.next().unwrap().to_string();
            (name, dtype, parts.map(|d| d.parse().unwrap()).collect())
        })
        .collect()
}

/// What `torchvision.models.resnet18(num_classes=5).state_dict()` holds after the formula is
/// loaded: the float tensors from the formula, the `num_batches_tracked` counters at 0.
pub fn formula_state() -> HashMap<String, Tensor> {
    torchvision_entries()
        .into_iter()
        .map(|(name, dtype, shape)| {
            let tensor = match dtype.as_str() {
                "float32" => Tensor::from_vec(formula_values(&name, &shape), shape, &Device::Cpu).unwrap(),
                "int64" => Tensor::new(0i64, &Device::Cpu).unwrap(),
                other => panic!("{name}: dtype {other}"),
            };
            (name, tensor)
        })
        .collect()
}

pub fn resnet18(seed: u64) -> ResNet {
    ResNet::new(ModelConfig { seed, ..ModelConfig::new(Arch::ResNet18, NUM_CLASSES) }, &Device::Cpu).unwrap()
}

/// Our ResNet-18 holding the formula's weights (loaded strictly by torchvision's names).
pub fn formula_model() -> ResNet {
    formula_model_in(DType::F32)
}

/// The formula model computing in `dtype` (the float32 formula values, widened or kept).
pub fn formula_model_in(dtype: DType) -> ResNet {
    let config = ModelConfig { seed: 7, dtype, ..ModelConfig::new(Arch::ResNet18, NUM_CLASSES) };
    let mut model = ResNet::new(config, &Device::Cpu).unwrap();
    let report = model.load_state_map(formula_state(), "the parity formula", false).unwrap();
    assert_eq!(report.loaded, 102, "{report:?}");
    assert_eq!(report.ignored.len(), 20, "{report:?}");
    assert!(report.reinitialized.is_empty(), "{report:?}");
    model
}
