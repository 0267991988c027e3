//! A tiny AdvBN step on a device, used by `advbn doctor` to prove the device really works.

use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::models::{Arch, ModelConfig, ResNet};
use crate::train::{Method, TrainConfig, Trainer};

pub struct SelfCheck {
    pub ok: bool,
    pub clean_loss: f64,
    pub adv_loss: f64,
    pub millis: f64,
    pub message: String,
}

/// Builds a small ResNet, runs one AdvBN step (K = 3) on random data and checks the losses
/// are finite and the attack did not lower the loss.
pub fn self_check(device: &Device) -> Result<SelfCheck> {
    let start = Instant::now();
    let mut model = ResNet::new(ModelConfig { seed: 1, ..ModelConfig::new(Arch::SmallResNet { depth: 8, width: 8 }, 4) }, device)?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, c, h, w) = (8, 3, 16, 16);
    let pixels: Vec<f32> = (0..n * c * h * w).map(|_| rng.gen_range(0.0..1.0)).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
    let images = Tensor::from_vec(pixels, (n, c, h, w), device)?;
    let labels = Tensor::from_vec(labels, n, device)?;
    let mut config = TrainConfig::reference(Method::AdvBn, 1);
    config.attack.steps = 3;
    let mut trainer = Trainer::new(&mut model, config)?;
    let logs = trainer.step(&model, &images, &labels, 0, 0)?;
    let attack_ok = logs.attack_loss.unwrap_or(f64::NAN) + 1e-6 >= logs.attack_clean_loss.unwrap_or(f64::NAN);
    let finite = logs.loss.is_finite() && logs.clean_loss.is_finite() && logs.adv_loss.is_some_and(f64::is_finite);
    let ok = attack_ok && finite;
    let message = if ok { "AdvBN step ran: losses finite, attack raised the loss".to_string() } else { format!("AdvBN step gave wrong results: {logs:?}") };
    Ok(SelfCheck { ok, clean_loss: logs.clean_loss, adv_loss: logs.adv_loss.unwrap_or(f64::NAN), millis: start.elapsed().as_secs_f64() * 1e3, message })
}
