//! Model shapes, torchvision tensor names and parameter counts, cut checks, the stem max-pool.

mod common;

use advbn_core::models::{Arch, ModelConfig, ResNet};
use advbn_core::nn::ForwardMode;
use candle_core::{DType, Device, Tensor};

#[test]
fn torchvision_parameter_counts_and_names() {
    // Counts from torchvision.models.resnet{18,34,50}(): sum(p.numel() for p in m.parameters()).
    for (arch, count, stages) in [(Arch::ResNet18, 11_689_512, 4), (Arch::ResNet34, 21_797_672, 4), (Arch::ResNet50, 25_557_032, 4)] {
        let model = ResNet::new(ModelConfig::new(arch, 1000), &Device::Cpu).unwrap();
        assert_eq!(model.params().parameter_count(), count, "{arch:?}");
        assert_eq!(model.num_stages(), stages);
    }
    let model = ResNet::new(ModelConfig::new(Arch::ResNet50, 10), &Device::Cpu).unwrap();
    let names: Vec<String> = model.params().all().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv3.weight",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
        "layer4.2.bn3.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert_eq!(model.params().var("fc.weight").unwrap().dims(), &[10, 2048]);
}

#[test]
fn forward_shapes_and_cut_points() {
    let model = ResNet::new(ModelConfig::new(Arch::ResNet18, 7), &Device::Cpu).unwrap();
    let x = Tensor::zeros((2, 3, 64, 64), DType::F32, &Device::Cpu).unwrap().affine(1.0, 0.5).unwrap();
    assert_eq!(model.forward(&x, ForwardMode::EVAL_CLEAN).unwrap().dims(), &[2, 7]);
    for (cut, channels, size) in [(1, 64, 16), (2, 128, 8), (3, 256, 4)] {
        let h = model.encode(&x, cut).unwrap();
        assert_eq!(h.dims(), &[2, channels, size, size]);
        assert_eq!(model.channels_after(cut), channels);
        assert_eq!(model.forward_tail(&h, cut, ForwardMode::EVAL_CLEAN).unwrap().dims(), &[2, 7]);
    }
    assert!(model.check_cut(4, 0).is_ok());
    let err = model.check_cut(5, 1).unwrap_err();
    assert_eq!(err.option(), Some("cut"));
    let small = common::tiny_model(0, DType::F32, 3);
    assert_eq!(small.num_stages(), 3);
    assert_eq!(small.encode(&Tensor::ones((1, 3, 28, 28), DType::F32, &Device::Cpu).unwrap(), 2).unwrap().dims(), &[1, 16, 14, 14]);
}

#[test]
fn split_forward_equals_whole_forward() {
    let model = common::tiny_model(1, DType::F32, 5);
    let (images, _) = common::separable_batch(4, 5, 16, 1, DType::F32);
    let whole = model.forward(&images, ForwardMode::EVAL_CLEAN).unwrap();
    for cut in 0..=3 {
        let split = model.forward_tail(&model.encode(&images, cut).unwrap(), cut, ForwardMode::EVAL_CLEAN).unwrap();
        assert!(common::max_abs_diff(&whole, &split) < 1e-5, "cut {cut}");
    }
}

#[test]
fn seeds_fix_the_weights() {
    let a = common::tiny_model(9, DType::F32, 3);
    let b = common::tiny_model(9, DType::F32, 3);
    let c = common::tiny_model(10, DType::F32, 3);
    let w = |m: &ResNet| common::values(m.params().var("layer2.0.conv1.weight").unwrap().as_tensor());
    assert_eq!(w(&a), w(&b));
    assert_ne!(w(&a), w(&c));
}

#[test]
fn bad_configs_are_rejected_by_name() {
    let err = Arch::SmallResNet { depth: 9, width: 16 }.layout().unwrap_err();
    assert_eq!(err.option(), Some("depth"));
    let err = Arch::SmallResNet { depth: 20, width: 0 }.layout().unwrap_err();
    assert_eq!(err.option(), Some("width"));
    let err = ResNet::new(ModelConfig::new(Arch::ResNet18, 0), &Device::Cpu).err().unwrap();
    assert_eq!(err.option(), Some("numClasses"));
    let model = common::tiny_model(0, DType::F32, 3);
    let wrong_channels = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.check_input(&wrong_channels).unwrap_err().code(), "ADVBN_INVALID_DATA");
}

#[test]
fn stem_max_pool_matches_reference_and_has_a_gradient() {
    // Reference: max over the 3x3 window with -inf padding, computed directly.
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for size in [7usize, 8] {
        let v: Vec<f32> = (0..2 * size * size).map(|_| rng.gen_range(0.0..1.0)).collect();
        let x = candle_core::Var::from_vec(v.clone(), (1, 2, size, size), &Device::Cpu).unwrap();
        let out = advbn_core::models::resnet::max_pool2d(x.as_tensor(), 3, 2, 1).unwrap();
        let o = (size - 1) / 2 + 1;
        assert_eq!(out.dims(), &[1, 2, o, o]);
        let got = common::values(&out);
        for c in 0..2 {
            for i in 0..o {
                for j in 0..o {
                    let mut best = f32::NEG_INFINITY;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            let (y, x) = ((2 * i + dy) as isize - 1, (2 * j + dx) as isize - 1);
                            if y >= 0 && x >= 0 && (y as usize) < size && (x as usize) < size {
                                best = best.max(v[(c * size + y as usize) * size + x as usize]);
                            }
                        }
                    }
                    assert_eq!(got[(c * o + i) * o + j], best as f64);
                }
            }
        }
        let grads = out.sum_all().unwrap().backward().unwrap();
        let g = common::values(grads.get(x.as_tensor()).unwrap());
        assert!((g.iter().sum::<f64>() - (2 * o * o) as f64).abs() < 1e-4, "gradient mass is one per output");
    }
}
