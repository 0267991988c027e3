//! Model variants and their construction options, kept apart from the model code (timm-style).

use candle_core::DType;

use crate::error::{Error, Result};
use crate::options;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    /// CIFAR-style ResNet (He et al. 2016) for 28-96 px inputs: 3 stages of basic blocks,
    /// `depth` = 6n + 2, first stage `width` channels, doubling per stage.
    SmallResNet {
        depth: usize,
        width: usize,
    },
}

/// How a stage list is laid out: block kind, blocks per stage, and base widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLayout {
    pub bottleneck: bool,
    pub blocks: Vec<usize>,
    pub planes: Vec<usize>,
    /// ImageNet stem (7x7/2 conv + 3x3/2 max-pool) or CIFAR stem (3x3/1 conv).
    pub imagenet_stem: bool,
    pub stem_channels: usize,
}

impl Arch {
    pub fn name(&self) -> String {
        match self {
            Arch::ResNet18 => "resnet18".into(),
            Arch::ResNet34 => "resnet34".into(),
            Arch::ResNet50 => "resnet50".into(),
            Arch::SmallResNet { .. } => "small_resnet".into(),
        }
    }

    pub fn layout(&self) -> Result<StageLayout> {
        let imagenet = |bottleneck, blocks: [usize; 4]| StageLayout {
            bottleneck,
            blocks: blocks.to_vec(),
            planes: vec![64, 128, 256, 512],
            imagenet_stem: true,
            stem_channels: 64,
        };
        Ok(match *self {
            Arch::ResNet18 => imagenet(false, [2, 2, 2, 2]),
            Arch::ResNet34 => imagenet(false, [3, 4, 6, 3]),
            Arch::ResNet50 => imagenet(true, [3, 4, 6, 3]),
            Arch::SmallResNet { depth, width } => {
                options::SMALL_RESNET_DEPTH.check(depth as f64)?;
                if (depth - 2) % 6 != 0 {
                    return Err(Error::invalid_option("depth", depth, "must be of the form 6n+2 (8, 14, 20, 32, 44, 56, ...)"));
                }
                options::SMALL_RESNET_WIDTH.check(width as f64)?;
                let n = (depth - 2) / 6;
                StageLayout { bottleneck: false, blocks: vec![n; 3], planes: vec![width, 2 * width, 4 * width], imagenet_stem: false, stem_channels: width }
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: Arch,
    pub num_classes: usize,
    pub in_channels: usize,
    pub seed: u64,
    pub dtype: DType,
}

impl ModelConfig {
    pub fn new(arch: Arch, num_classes: usize) -> Self {
        Self { arch, num_classes, in_channels: options::IN_CHANNELS.default_value() as usize, seed: 0, dtype: DType::F32 }
    }

    pub fn validate(&self) -> Result<()> {
        options::NUM_CLASSES.check(self.num_classes as f64)?;
        options::IN_CHANNELS.check(self.in_channels as f64)?;
        self.arch.layout().map(|_| ())
    }
}
