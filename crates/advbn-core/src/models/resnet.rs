//! ResNets addressable by stage, so a model can be cut into a frozen encoder and a tail.
//! Tensor names follow torchvision (conv1, bn1, layer1.0.conv1, ..., fc).

use std::ops::Range;

use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module};

use super::blocks::{dual_bn, BasicBlock, Block, Bottleneck, Unit};
use super::config::{ModelConfig, StageLayout};
use crate::error::{Error, Result};
use crate::nn::layers::{conv2d, global_avg_pool, linear, Conv2d};
use crate::nn::{conv_bn, DualBatchNorm, ForwardMode, ADV_BN_PREFIX};
use crate::params::{is_buffer, ParamStore};

/// Max-pooling with a backward for any kernel/stride/padding (PyTorch semantics); the stem
/// uses 3x3, stride 2, padding 1 like torchvision.
pub use crate::ops::max_pool::max_pool2d;
use crate::ops::max_pool::MaxPool2d;

/// The ImageNet stem's max-pool (torchvision's).
pub(crate) const STEM_POOL: MaxPool2d = MaxPool2d { kernel: 3, stride: 2, padding: 1 };

pub struct ResNet {
    config: ModelConfig,
    layout: StageLayout,
    stem_conv: Conv2d,
    stem_bn: DualBatchNorm,
    stages: Vec<Vec<Block>>,
    fc: Linear,
    store: ParamStore,
}

impl ResNet {
    pub fn new(config: ModelConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let layout = config.arch.layout()?;
        let store = ParamStore::new(config.seed, config.dtype, device);
        let vb = store.var_builder();
        let (kernel, stride, padding) = if layout.imagenet_stem { (7, 2, 3) } else { (3, 1, 1) };
        let stem_conv = conv2d(config.in_channels, layout.stem_channels, kernel, stride, padding, vb.pp("conv1"))?;
        let stem_bn = dual_bn(layout.stem_channels, vb.pp("bn1"), &store)?;
        let expansion = if layout.bottleneck { Bottleneck::EXPANSION } else { BasicBlock::EXPANSION };
        let mut in_c = layout.stem_channels;
        let mut stages = Vec::new();
        for (i, (&n_blocks, &planes)) in layout.blocks.iter().zip(&layout.planes).enumerate() {
            let stage_vb = vb.pp(format!("layer{}", i + 1));
            let mut blocks = Vec::with_capacity(n_blocks);
            for b in 0..n_blocks {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                let block_vb = stage_vb.pp(b.to_string());
                blocks.push(if layout.bottleneck {
                    Block::Bottleneck(Bottleneck::new(in_c, planes, stride, block_vb, &store)?)
                } else {
                    Block::Basic(BasicBlock::new(in_c, planes, stride, block_vb, &store)?)
                });
                in_c = planes * expansion;
            }
            stages.push(blocks);
        }
        let fc = linear(in_c, config.num_classes, vb.pp("fc"))?;
        Ok(Self { config, layout, stem_conv, stem_bn, stages, fc, store })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn num_stages(&self) -> usize {
        self.stages.len()
    }

    pub fn num_classes(&self) -> usize {
        self.config.num_classes
    }

    pub fn device(&self) -> &Device {
        self.store.device()
    }

    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// Output channels after `stage` (1-based); 0 is the stem.
    pub fn channels_after(&self, stage: usize) -> usize {
        if stage == 0 {
            return self.layout.stem_channels;
        }
        let expansion = if self.layout.bottleneck { Bottleneck::EXPANSION } else { BasicBlock::EXPANSION };
        self.layout.planes[stage - 1] * expansion
    }

    /// Checks a cut point: 0 (nothing frozen) up to the number of stages.
    pub fn check_cut(&self, cut: usize, min: usize) -> Result<()> {
        if cut < min || cut > self.num_stages() {
            return Err(Error::invalid_option(
                "cut",
                cut,
                format!("must be in {min}..={} for {} ({} stages)", self.num_stages(), self.config.arch.name(), self.num_stages()),
            ));
        }
        Ok(())
    }

    /// Checks that images fit the model: [N, in_channels, H, W] with N >= 1.
    pub fn check_input(&self, x: &Tensor) -> Result<()> {
        match x.dims() {
            [n, c, h, w] if *n >= 1 && *c == self.config.in_channels && *h >= 8 && *w >= 8 => Ok(()),
            dims => Err(Error::invalid_data(format!(
                "images must have shape [N, {}, H, W] with N >= 1 and H, W >= 8 for this model, got {dims:?}",
                self.config.in_channels
            ))),
        }
    }

    fn forward_stem(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        let (z, _, _) = self.run_stem(x, |(conv, bn), x| Ok((conv_bn(conv, bn, x, mode, None, true)?, ())))?;
        Ok(z)
    }

    /// The stem's wiring with `unit` computing its conv + BN + ReLU and what the caller keeps of
    /// it; the ImageNet stem then max-pools. Returns the output, the keep, and the max-pool's
    /// input (ImageNet stem only).
    pub(crate) fn run_stem<K>(
        &self,
        x: &Tensor,
        unit: impl FnOnce(Unit<'_>, &Tensor) -> candle_core::Result<(Tensor, K)>,
    ) -> candle_core::Result<(Tensor, K, Option<Tensor>)> {
        let (z, kept) = unit((&self.stem_conv, &self.stem_bn), x)?;
        if self.layout.imagenet_stem {
            Ok((max_pool2d(&z, STEM_POOL.kernel, STEM_POOL.stride, STEM_POOL.padding)?, kept, Some(z)))
        } else {
            Ok((z, kept, None))
        }
    }

    /// Runs stages `range` (0-based indices into the stage list).
    fn forward_stages(&self, mut x: Tensor, range: Range<usize>, mode: ForwardMode) -> candle_core::Result<Tensor> {
        for stage in &self.stages[range] {
            for block in stage {
                x = block.forward(&x, mode)?;
            }
        }
        Ok(x)
    }

    /// The frozen part before `cut`: stem and stages 1..=cut, running statistics, no gradient.
    /// With cut 0 the encoder is the identity.
    pub fn encode(&self, x: &Tensor, cut: usize) -> candle_core::Result<Tensor> {
        if cut == 0 {
            return Ok(x.detach());
        }
        // Frozen: no gradient ever flows here, so no weight is tracked.
        let mode = ForwardMode::EVAL_CLEAN.with_frozen_weights();
        let h = self.forward_stem(&x.detach(), mode)?;
        Ok(self.forward_stages(h, 0..cut, mode)?.detach())
    }

    /// Everything after `cut`: stages cut+1.., pooling and classifier (the stem too if cut is 0).
    pub fn forward_tail(&self, h: &Tensor, cut: usize, mode: ForwardMode) -> candle_core::Result<Tensor> {
        let h = if cut == 0 { self.forward_stem(h, mode)? } else { h.clone() };
        let h = self.forward_stages(h, cut..self.stages.len(), mode)?;
        self.head(&h)
    }

    /// Global average pooling and the classifier: logits from the last stage's feature map.
    pub fn head(&self, features: &Tensor) -> candle_core::Result<Tensor> {
        self.fc.forward(&global_avg_pool(features)?)
    }

    pub(crate) fn stages(&self) -> &[Vec<Block>] {
        &self.stages
    }

    /// The whole network.
    pub fn forward(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        self.forward_tail(x, 0, mode)
    }

    /// True once any BN has an adversarial branch.
    pub fn has_adv_bn(&self) -> bool {
        self.stem_bn.has_adv() || self.stages.iter().flatten().any(|b| b.batch_norms().iter().any(|bn| bn.has_adv()))
    }

    /// Creates the adversarial BN branch (a copy of the clean one) in every BN after `cut`.
    pub fn ensure_adv_bn(&mut self, cut: usize) -> candle_core::Result<()> {
        if cut == 0 {
            self.stem_bn.ensure_adv(&self.store)?;
        }
        for stage in &mut self.stages[cut..] {
            for block in stage {
                for bn in block.batch_norms_mut() {
                    bn.ensure_adv(&self.store)?;
                }
            }
        }
        Ok(())
    }

    /// Names of the parameters a fine-tune with this cut trains (buffers excluded).
    pub fn is_tail_param(&self, name: &str, cut: usize) -> bool {
        if is_buffer(name) {
            return false;
        }
        let name = name.strip_prefix(&format!("{ADV_BN_PREFIX}.")).unwrap_or(name);
        if cut == 0 || name.starts_with("fc.") {
            return true;
        }
        name.strip_prefix("layer").and_then(|rest| rest.split('.').next()).and_then(|n| n.parse::<usize>().ok()).is_some_and(|stage| stage > cut)
    }
}
