//! GPU benchmark of our side (run by bench/run_gpu.sh next to bench/torch_reference.py):
//! device-to-device copy bandwidth (the ceiling), the AdvBN layer forward+backward on
//! [64, 256, 56, 56] (composite reference vs fused kernels, fp32 and bf16), and one ResNet-50
//! AdvBN step (K = 6) and one ERM step at 224 px, batch 64. Prints one JSON object.
//! Build here with `--features cuda` (scripts/build-cuda.sh --device-bundle); needs a GPU.

#[cfg(not(feature = "cuda"))]
fn main() {
    eprintln!("bench_gpu measures CUDA kernels: build it with `--features cuda` and run it on a GPU");
    std::process::exit(2);
}

#[cfg(feature = "cuda")]
fn main() -> advbn_core::Result<()> {
    use advbn_core::models::{Arch, ModelConfig, ResNet};
    use advbn_core::nn::advbn::{advbn, advbn_reference};
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

    // One ResNet-50 step, 224 px, batch 64: AdvBN (K = 6) and plain ERM, fp32.
    let images = Tensor::rand(0f32, 1f32, (64, 3, 224, 224), &device)?;
    let labels = Tensor::from_vec((0..64u32).map(|i| i % 1000).collect::<Vec<_>>(), 64, &device)?;
    for method in [Method::AdvBn, Method::Erm] {
        let mut model = ResNet::new(ModelConfig::new(Arch::ResNet50, 1000), &device)?;
        let mut trainer = Trainer::new(&mut model, TrainConfig::reference(method.clone(), 1))?;
        let ms = time(2, 5, &mut || {
            trainer.step(&model, &images, &labels, 0, 0)?;
            Ok(())
        })?;
        out.num(&format!("resnet50_{}_step_ms", method.name()), ms);
        out.num(&format!("resnet50_{}_images_per_s", method.name()), 64.0 / (ms * 1e-3));
    }
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
