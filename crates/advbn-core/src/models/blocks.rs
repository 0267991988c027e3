//! ResNet residual blocks with torchvision's layout and tensor names.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::nn::layers::{conv2d, Conv2d};
use crate::nn::{batch_norm, conv_bn, DualBatchNorm, ForwardMode};
use crate::params::ParamStore;

/// Builds `<prefix>` as a dual BN (only the clean branch exists at first).
pub(crate) fn dual_bn(channels: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<DualBatchNorm> {
    let name = vb.prefix();
    Ok(DualBatchNorm::new(name, batch_norm(channels, vb, store)?))
}

/// `downsample.0` (1x1 conv) + `downsample.1` (BN), used when the shape changes.
#[derive(Clone)]
pub struct Downsample {
    conv: Conv2d,
    bn: DualBatchNorm,
}

impl Downsample {
    fn new(in_c: usize, out_c: usize, stride: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<Self> {
        Ok(Self { conv: conv2d(in_c, out_c, 1, stride, 0, vb.pp("0"))?, bn: dual_bn(out_c, vb.pp("1"), store)? })
    }
}

fn downsample_if_needed(in_c: usize, out_c: usize, stride: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<Option<Downsample>> {
    if stride != 1 || in_c != out_c {
        Ok(Some(Downsample::new(in_c, out_c, stride, vb.pp("downsample"), store)?))
    } else {
        Ok(None)
    }
}

/// Two 3x3 convs (ResNet-18/34 and the CIFAR-style small ResNets). Expansion 1.
#[derive(Clone)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: DualBatchNorm,
    conv2: Conv2d,
    bn2: DualBatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    pub const EXPANSION: usize = 1;

    pub fn new(in_c: usize, planes: usize, stride: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<Self> {
        Ok(Self {
            conv1: conv2d(in_c, planes, 3, stride, 1, vb.pp("conv1"))?,
            bn1: dual_bn(planes, vb.pp("bn1"), store)?,
            conv2: conv2d(planes, planes, 3, 1, 1, vb.pp("conv2"))?,
            bn2: dual_bn(planes, vb.pp("bn2"), store)?,
            downsample: downsample_if_needed(in_c, planes, stride, vb, store)?,
        })
    }
}

/// 1x1 -> 3x3 (strided, torchvision v1.5) -> 1x1 convs (ResNet-50). Expansion 4.
#[derive(Clone)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: DualBatchNorm,
    conv2: Conv2d,
    bn2: DualBatchNorm,
    conv3: Conv2d,
    bn3: DualBatchNorm,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    pub const EXPANSION: usize = 4;

    pub fn new(in_c: usize, planes: usize, stride: usize, vb: VarBuilder, store: &ParamStore) -> candle_core::Result<Self> {
        let out_c = planes * Self::EXPANSION;
        Ok(Self {
            conv1: conv2d(in_c, planes, 1, 1, 0, vb.pp("conv1"))?,
            bn1: dual_bn(planes, vb.pp("bn1"), store)?,
            conv2: conv2d(planes, planes, 3, stride, 1, vb.pp("conv2"))?,
            bn2: dual_bn(planes, vb.pp("bn2"), store)?,
            conv3: conv2d(planes, out_c, 1, 1, 0, vb.pp("conv3"))?,
            bn3: dual_bn(out_c, vb.pp("bn3"), store)?,
            downsample: downsample_if_needed(in_c, out_c, stride, vb, store)?,
        })
    }
}

/// A conv and the BN after it.
pub type Unit<'a> = (&'a Conv2d, &'a DualBatchNorm);

/// Either block kind; a ResNet stage is a list of these.
#[derive(Clone)]
pub enum Block {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Block {
    /// The residual branch's units in order (each ends in a ReLU; the last one adds the identity
    /// before it), and the downsample unit (no ReLU) when the shape changes.
    fn units(&self) -> (Vec<Unit<'_>>, Option<Unit<'_>>) {
        let (units, downsample) = match self {
            Block::Basic(b) => (vec![(&b.conv1, &b.bn1), (&b.conv2, &b.bn2)], &b.downsample),
            Block::Bottleneck(b) => (vec![(&b.conv1, &b.bn1), (&b.conv2, &b.bn2), (&b.conv3, &b.bn3)], &b.downsample),
        };
        (units, downsample.as_ref().map(|d| (&d.conv, &d.bn)))
    }

    /// The block's wiring with `unit` computing each conv + BN (+ residual) (+ ReLU) and what
    /// the caller keeps of it: the branch's units in order, each ending in a ReLU; the downsample
    /// unit (no ReLU) on the block's input when the shape changes; the last unit adds the
    /// identity before its ReLU. Returns the output, the branch units' keeps in order and the
    /// downsample unit's.
    pub fn run_units<K>(
        &self,
        x: &Tensor,
        mut unit: impl FnMut(Unit<'_>, &Tensor, Option<&Tensor>, bool) -> candle_core::Result<(Tensor, K)>,
    ) -> candle_core::Result<(Tensor, Vec<K>, Option<K>)> {
        let (units, downsample) = self.units();
        let Some((&last, first)) = units.split_last() else { candle_core::bail!("a residual block without units") };
        let mut kept = Vec::with_capacity(units.len());
        let mut y = x.clone();
        for &u in first {
            let (z, k) = unit(u, &y, None, true)?;
            kept.push(k);
            y = z;
        }
        let (identity, downsample) = match downsample {
            Some(u) => {
                let (z, k) = unit(u, x, None, false)?;
                (z, Some(k))
            }
            None => (x.clone(), None),
        };
        let (z, k) = unit(last, &y, Some(&identity), true)?;
        kept.push(k);
        Ok((z, kept, downsample))
    }

    /// ReLU(residual branch + identity); the last conv, its BN, the add and the ReLU as one unit.
    pub fn forward(&self, x: &Tensor, mode: ForwardMode) -> candle_core::Result<Tensor> {
        let (z, _, _) = self.run_units(x, |(conv, bn), x, residual, relu| Ok((conv_bn(conv, bn, x, mode, residual, relu)?, ())))?;
        Ok(z)
    }

    /// Every BN of the block, for branch management.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut DualBatchNorm> {
        let (mut bns, downsample): (Vec<&mut DualBatchNorm>, _) = match self {
            Block::Basic(b) => (vec![&mut b.bn1, &mut b.bn2], &mut b.downsample),
            Block::Bottleneck(b) => (vec![&mut b.bn1, &mut b.bn2, &mut b.bn3], &mut b.downsample),
        };
        if let Some(d) = downsample {
            bns.push(&mut d.bn);
        }
        bns
    }

    pub fn batch_norms(&self) -> Vec<&DualBatchNorm> {
        let (mut bns, downsample): (Vec<&DualBatchNorm>, _) = match self {
            Block::Basic(b) => (vec![&b.bn1, &b.bn2], &b.downsample),
            Block::Bottleneck(b) => (vec![&b.bn1, &b.bn2, &b.bn3], &b.downsample),
        };
        if let Some(d) = downsample {
            bns.push(&d.bn);
        }
        bns
    }
}
