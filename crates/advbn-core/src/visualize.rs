//! Pictures of adversarial features (the paper's figure): a small decoder learns to invert the
//! frozen encoder at the cut (pixel MSE + a small total-variation term), then renders the
//! AdvBN-perturbed features of a few inputs at increasing attack strength.

use candle_core::{DType, Device, Tensor};

use crate::attack::{attack, AttackConfig};
use crate::data::Image;
use crate::error::{Error, Result};
use crate::models::ResNet;
use crate::nn::layers::{conv2d, Conv2d};
use crate::nn::readout::scalar;
use crate::nn::ForwardMode;
use crate::params::ParamStore;
use crate::train::{Optimizer, OptimizerConfig};

/// conv3x3 + ReLU blocks with nearest 2x upsampling until the input resolution is reached.
pub struct Decoder {
    blocks: Vec<(bool, Conv2d)>,
    store: ParamStore,
}

impl Decoder {
    /// Maps `channels` feature maps `upsamples` times 2x up to an image of `out_channels`.
    pub fn new(channels: usize, out_channels: usize, upsamples: usize, seed: u64, device: &Device) -> Result<Self> {
        let store = ParamStore::new(seed, DType::F32, device);
        let vb = store.var_builder();
        let width = 32;
        let mut blocks = vec![(false, conv2d(channels, width, 3, 1, 1, vb.pp("in"))?)];
        for i in 0..upsamples {
            blocks.push((true, conv2d(width, width, 3, 1, 1, vb.pp(format!("up{i}")))?));
        }
        blocks.push((false, conv2d(width, width, 3, 1, 1, vb.pp("mid"))?));
        blocks.push((false, conv2d(width, out_channels, 3, 1, 1, vb.pp("out"))?));
        Ok(Self { blocks, store })
    }

    /// Image in [0, 1] from features [N, C, h, w].
    pub fn forward(&self, h: &Tensor) -> candle_core::Result<Tensor> {
        let last = self.blocks.len() - 1;
        let mut x = h.clone();
        for (i, (upsample, conv)) in self.blocks.iter().enumerate() {
            if *upsample {
                let (_, _, hh, ww) = x.dims4()?;
                x = x.upsample_nearest2d(2 * hh, 2 * ww)?;
            }
            x = conv.forward(&x, ForwardMode::TRAIN_CLEAN)?;
            x = if i == last { candle_nn::ops::sigmoid(&x)? } else { x.relu()? };
        }
        Ok(x)
    }
}

/// Settings of [`visualize`].
#[derive(Debug, Clone, PartialEq)]
pub struct VisualizeConfig {
    pub cut: usize,
    /// Decoder training steps (Adam).
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Weight of the total-variation term.
    pub tv_weight: f64,
    /// Attack box half-widths, one picture column each (the attack uses K = 6, step eps / 5.5).
    pub strengths: Vec<f64>,
    /// Rows of the picture.
    pub rows: usize,
    pub seed: u64,
}

impl Default for VisualizeConfig {
    fn default() -> Self {
        Self { cut: 1, steps: 300, batch_size: 32, lr: 2e-3, tv_weight: 1e-3, strengths: vec![0.3, 0.6, 1.1], rows: 6, seed: 0 }
    }
}

fn total_variation(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let dy = (x.narrow(2, 1, h - 1)? - x.narrow(2, 0, h - 1)?)?.abs()?.mean_all()?;
    let dx = (x.narrow(3, 1, w - 1)? - x.narrow(3, 0, w - 1)?)?.abs()?.mean_all()?;
    dy + dx
}

/// Trains the decoder on `images` ([N, C, H, W] in [0, 1]), then returns the picture (rows of
/// input, reconstruction, decoded perturbed features per strength) and the training losses
/// (on the CPU compute pool for CPU models).
impl VisualizeConfig {
    /// The options' own ranges (the cut and the row count are checked against the model and
    /// the images too).
    pub fn validate(&self) -> Result<()> {
        use crate::options::{VISUALIZE_BATCH_SIZE, VISUALIZE_LR, VISUALIZE_ROWS, VISUALIZE_STEPS, VISUALIZE_STRENGTH, VISUALIZE_TV_WEIGHT};
        if self.strengths.is_empty() {
            return Err(Error::invalid_option("strengths", "[]", "needs at least one strength"));
        }
        for &strength in &self.strengths {
            VISUALIZE_STRENGTH.check(strength)?;
        }
        VISUALIZE_STEPS.check(self.steps as f64)?;
        VISUALIZE_BATCH_SIZE.check(self.batch_size as f64)?;
        VISUALIZE_LR.check(self.lr)?;
        VISUALIZE_TV_WEIGHT.check(self.tv_weight)?;
        VISUALIZE_ROWS.check(self.rows as f64).map(|_| ())
    }
}

pub fn visualize(model: &ResNet, images: &Tensor, labels: &Tensor, cfg: &VisualizeConfig) -> Result<(Image, Vec<f64>)> {
    crate::threads::run_on(model.device(), || visualize_here(model, images, labels, cfg))
}

fn visualize_here(model: &ResNet, images: &Tensor, labels: &Tensor, cfg: &VisualizeConfig) -> Result<(Image, Vec<f64>)> {
    model.check_cut(cfg.cut, 1)?;
    model.check_input(images)?;
    cfg.validate()?;
    let (n, channels, height, width) = images.dims4()?;
    if cfg.rows > n {
        return Err(Error::invalid_option("rows", cfg.rows, format!("must be at most the {n} images given")));
    }
    let probe = model.encode(&images.narrow(0, 0, 1)?, cfg.cut)?;
    let (_, feat_c, feat_h, _) = probe.dims4()?;
    let upsamples = (height / feat_h).max(1).trailing_zeros() as usize;
    let decoder = Decoder::new(feat_c, channels, upsamples, cfg.seed, images.device())?;
    let params = decoder.store.all().into_iter().map(|(_, v)| v).collect();
    let mut optimizer = Optimizer::new(OptimizerConfig::AdamW { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }, params)?;
    let mut losses = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let start = (step * cfg.batch_size) % n;
        let len = cfg.batch_size.min(n - start);
        let x = images.narrow(0, start, len)?;
        let y = decoder.forward(&model.encode(&x, cfg.cut)?)?;
        let y = if y.dims() == x.dims() { y } else { y.upsample_nearest2d(height, width)? };
        let loss = ((&y - &x)?.sqr()?.mean_all()? + (total_variation(&y)? * cfg.tv_weight)?)?;
        losses.push(scalar(&loss)?);
        optimizer.step(&loss.backward()?, cfg.lr)?;
    }
    // Columns: input, reconstruction, then one per attack strength.
    let x = images.narrow(0, 0, cfg.rows)?;
    let y = labels.narrow(0, 0, cfg.rows)?;
    let features = model.encode(&x, cfg.cut)?;
    let render = |h: &Tensor| -> candle_core::Result<Tensor> {
        let img = decoder.forward(h)?;
        if img.dims() == x.dims() {
            Ok(img)
        } else {
            img.upsample_nearest2d(height, width)
        }
    };
    let mut columns = vec![x.clone(), render(&features)?];
    for &eps in &cfg.strengths {
        let attack_cfg = AttackConfig { steps: 6, step_size: eps / 5.5, epsilon: eps, relu_clamp: true };
        columns.push(render(&attack(model, &features, &y, cfg.cut, &attack_cfg)?.features)?);
    }
    Ok((grid(&columns, cfg.rows, channels, height, width)?, losses))
}

/// Tiles columns of [rows, C, H, W] images in [0, 1] into one RGB image with 2 px gaps.
fn grid(columns: &[Tensor], rows: usize, channels: usize, height: usize, width: usize) -> Result<Image> {
    let gap = 2;
    let (gw, gh) = (columns.len() * (width + gap) + gap, rows * (height + gap) + gap);
    let mut out = Image::filled(gw, gh, 3, 1.0);
    for (col, t) in columns.iter().enumerate() {
        let v = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        for r in 0..rows {
            for yy in 0..height {
                for xx in 0..width {
                    for c in 0..3 {
                        let src = ((r * channels + c.min(channels - 1)) * height + yy) * width + xx;
                        let (ox, oy) = (gap + col * (width + gap) + xx, gap + r * (height + gap) + yy);
                        let i = out.index(ox, oy, c);
                        out.data[i] = v[src].clamp(0.0, 1.0);
                    }
                }
            }
        }
    }
    Ok(out)
}
