//! GPU benchmark of our side (run by bench/run_gpu.sh next to bench/torch_reference.py):
//! device-to-device copy bandwidth (the ceiling), the AdvBN layer forward+backward on
//! [64, 256, 56, 56] (composite reference vs fused kernels, fp32 and bf16), the BatchNorm(+ReLU)
//! layer likewise, one cuDNN 3x3 conv forward+backward, and one ResNet-50 AdvBN step (K = 6) and
//! one ERM step at 224 px, batch 64, in fp32, TF32 and bf16 with peak pool memory. Prints one
//! JSON object.
//! Build here with `--features cuda` (scripts/build-cuda.sh --device-bundle); needs a GPU.

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("bench_gpu measures CUDA kernels: build it with `--features cuda` and run it on a GPU");
    std::process::exit(2);
}

#[cfg(feature = "cuda")]
fn main() -> advbn_core::Result<()> {
    use advbn_core::device::memory_pool;
    use advbn_core::models::{Arch, ModelConfig, ResNet};
    use advbn_core::nn::advbn::{advbn, advbn_reference};
    use advbn_core::ops::batch_norm::{batch_norm_fused, batch_stats, BnOptions};
    use advbn_core::ops::conv::{conv2d, set_tf32, ConvParams};
    use advbn_core::train::{Method, TrainConfig, Trainer};
    use candle_core::{DType, Device, Tensor, Var};
    use std::time::Instant;

    let device = advbn_core::device::parse_device("cuda")?;
    let sync = |d: &Device| d.synchronize();
    // Median of `reps` timed runs after `warm` warm-ups, synchronising around each.
    let time = |warm: usize, reps: usize, f: &mut dyn FnMut() -> advbn_core::Result<()>| -> advbn_core::Result<f64> {
        for _ in 0..warm {
            f()?;
        }
        sync(&device)?;
        let mut samples = Vec::with_capacity(reps);
        for _ in 0..reps {
            let t = Instant::now();
            f()?;
            sync(&device)?;
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Ok(samples[reps / 2])
    };
    let mut out = serde_like::Object::default();

    // Ceiling: a large device-to-device copy (bytes read + written).
    let big = Tensor::rand(0f32, 1f32, (64 * 256 * 56 * 56,), &device)?;
    let copy_ms = time(3, 20, &mut || {
        big.copy()?;
        Ok(())
    })?;
    let copy_gbs = 2.0 * big.elem_count() as f64 * 4.0 / (copy_ms * 1e-3) / 1e9;
    out.num("copy_gb_per_s", copy_gbs);

    // The AdvBN layer: forward + backward w.r.t. alpha and beta (the attack's need).
    for (dtype, name) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
        let x = Tensor::rand(0f32, 2f32, (64, 256, 56, 56), &device)?.to_dtype(dtype)?;
        let g = Tensor::rand(-1f32, 1f32, (64, 256, 56, 56), &device)?.to_dtype(dtype)?;
        let alpha = Var::from_tensor(&Tensor::ones((1, 256, 1, 1), DType::F32, &device)?)?;
        let beta = Var::from_tensor(&Tensor::ones((1, 256, 1, 1), DType::F32, &device)?)?;
        for (label, f) in [("reference", advbn_reference as fn(&Tensor, &Tensor, &Tensor, bool) -> candle_core::Result<Tensor>), ("fused", advbn)] {
            let ms = time(3, 20, &mut || {
                let (a, b) = (alpha.as_tensor().to_dtype(dtype)?, beta.as_tensor().to_dtype(dtype)?);
                let y = f(&x, &a, &b, true)?;
                (y * &g)?.sum_all()?.backward()?;
                Ok(())
            })?;
            // Bytes the fused version must move at least: 3 passes forward + 2 backward (x, g).
            let bytes = 5.0 * x.elem_count() as f64 * dtype.size_in_bytes() as f64;
            out.num(&format!("advbn_layer_{name}_{label}_ms"), ms);
            out.num(&format!("advbn_layer_{name}_{label}_gb_per_s"), bytes / (ms * 1e-3) / 1e9);
        }
    }

    // BatchNorm (+ ReLU) training forward + backward on the same tensor: fused vs composite.
    for (dtype, name) in [(DType::F32, "f32"), (DType::BF16, "bf16")] {
        let x = Tensor::rand(0f32, 2f32, (64, 256, 56, 56), &device)?.to_dtype(dtype)?;
        let g = Tensor::rand(-1f32, 1f32, (64, 256, 56, 56), &device)?.to_dtype(dtype)?;
        let gamma = Var::from_tensor(&Tensor::ones(256, DType::F32, &device)?)?;
        let beta = Var::from_tensor(&Tensor::zeros(256, DType::F32, &device)?)?;
        let xv = Var::from_tensor(&x)?;
        let fused = time(3, 20, &mut || {
            let (mean, var) = batch_stats(xv.as_tensor())?;
            let opts = BnOptions { eps: 1e-5, relu: true, train: true };
            let y = batch_norm_fused(xv.as_tensor(), gamma.as_tensor(), beta.as_tensor(), &mean, &var, opts)?;
            (y * &g)?.sum_all()?.backward()?;
            Ok(())
        })?;
        let composite = time(3, 20, &mut || {
            let x = xv.as_tensor();
            let mean = x.mean_keepdim((0, 2, 3))?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim((0, 2, 3))?;
            let scale = (var + 1e-5)?.sqrt()?.recip()?.broadcast_mul(&gamma.as_tensor().to_dtype(dtype)?.reshape((1, 256, 1, 1))?)?;
            let y = centered.broadcast_mul(&scale)?.broadcast_add(&beta.as_tensor().to_dtype(dtype)?.reshape((1, 256, 1, 1))?)?.relu()?;
            (y * &g)?.sum_all()?.backward()?;
            Ok(())
        })?;
        // Least traffic of the fused version: stats (x) + apply (x, y) + sums (x, g) + dx (x, g, dx).
        let bytes = 8.0 * x.elem_count() as f64 * dtype.size_in_bytes() as f64;
        out.num(&format!("bn_layer_{name}_fused_ms"), fused);
        out.num(&format!("bn_layer_{name}_fused_gb_per_s"), bytes / (fused * 1e-3) / 1e9);
        out.num(&format!("bn_layer_{name}_composite_ms"), composite);
    }

    // One 3x3 conv of ResNet-50's layer2 ([64, 128, 28, 28]): forward + both backward passes.
    for (precision, dtype) in [("fp32", DType::F32), ("tf32", DType::F32), ("bf16", DType::BF16)] {
        set_tf32(precision == "tf32");
        let x = Var::from_tensor(&Tensor::rand(-1f32, 1f32, (64, 128, 28, 28), &device)?.to_dtype(dtype)?)?;
        let w = Var::from_tensor(&Tensor::rand(-0.1f32, 0.1f32, (128, 128, 3, 3), &device)?.to_dtype(dtype)?)?;
        let ms = time(3, 20, &mut || {
            conv2d(x.as_tensor(), w.as_tensor(), ConvParams { stride: 1, padding: 1 })?.sum_all()?.backward()?;
            Ok(())
        })?;
        let flops = 3.0 * 2.0 * 64.0 * 128.0 * 28.0 * 28.0 * 128.0 * 9.0;
        out.num(&format!("conv3x3_{precision}_ms"), ms);
        out.num(&format!("conv3x3_{precision}_tflops"), flops / (ms * 1e-3) / 1e12);
    }
    set_tf32(false);

    // One ResNet-50 step, 224 px, batch 64: AdvBN (K = 6) and plain ERM, in strict fp32, TF32
    // (convolutions and matmuls) and bf16 (weights and activations in bf16: no fp32 master
    // copy, unlike PyTorch's autocast).
    let labels = Tensor::from_vec((0..64u32).map(|i| i % 1000).collect::<Vec<_>>(), 64, &device)?;
    for (precision, dtype) in [("fp32", DType::F32), ("tf32", DType::F32), ("bf16", DType::BF16)] {
        set_tf32(precision == "tf32");
        let images = Tensor::rand(0f32, 1f32, (64, 3, 224, 224), &device)?.to_dtype(dtype)?;
        for method in [Method::AdvBn, Method::Erm] {
            let mut model = ResNet::new(ModelConfig { dtype, ..ModelConfig::new(Arch::ResNet50, 1000) }, &device)?;
            let mut trainer = Trainer::new(&mut model, TrainConfig::reference(method, 1))?;
            sync(&device)?;
            memory_pool::reset_peak(0)?;
            let ms = time(2, 5, &mut || {
                trainer.step(&model, &images, &labels, 0, 0)?;
                Ok(())
            })?;
            let tag = format!("resnet50_{}_{precision}", method.name());
            out.num(&format!("{tag}_step_ms"), ms);
            out.num(&format!("{tag}_images_per_s"), 64.0 / (ms * 1e-3));
            out.num(&format!("{tag}_peak_gib"), memory_pool::peak_bytes(0)? as f64 / (1u64 << 30) as f64);
        }
    }
    set_tf32(false);
    println!("{}", out.render());
    Ok(())
}

/// A flat JSON object of numbers, without a serde dependency.
#[cfg(feature = "cuda")]
mod serde_like {
    #[derive(Default)]
    pub struct Object(Vec<(String, f64)>);

    impl Object {
        pub fn num(&mut self, key: &str, value: f64) {
            eprintln!("{key}: {value:.4}");
            self.0.push((key.to_string(), value));
        }

        pub fn render(&self) -> String {
            let body: Vec<String> = self.0.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        }
    }
}
