//! The CPU passes through a ResNet's tail without Candle's autograd, for training (batch
//! statistics; weight gradients) and for AdvBN's attack (eval mode, frozen weights; the gradient
//! of the tail's input): the forward keeps each unit's record (`nn::conv_bn_recorded`) and the
//! backward walks the blocks in reverse with our kernels, summing each block's two input
//! gradients (branch and identity) itself, in the pass that masks them by the previous block's
//! ReLU (`ops::gradient::Grad`). Through Candle's graph every intermediate tensor's
//! gradient is accumulated from a zero-filled tensor by a single-threaded add; here only what is
//! asked for is kept.
//!
//! The arithmetic is that of the graph (the same kernels in the same order; sums of two terms,
//! which do not depend on their order), so gradients are bit-identical to `forward_tail`'s.

use candle_core::backprop::GradStore;
use candle_core::Tensor;

use super::resnet::STEM_POOL;
use super::ResNet;
use crate::nn::conv_bn::{conv_bn_recorded, RecordedUnit};
use crate::nn::{BnMode, ForwardMode};
use crate::ops::conv_bn;
use crate::ops::gradient::Grad;
use crate::ops::max_pool::max_pool2d_backward;

/// What the backward of one recorded tail pass needs, in forward order.
pub struct TailRecord {
    /// The stem's unit and, with the ImageNet stem, the max-pool's input.
    stem: Option<(RecordedUnit, Option<Tensor>)>,
    blocks: Vec<BlockRecord>,
}

struct BlockRecord {
    units: Vec<RecordedUnit>,
    downsample: Option<RecordedUnit>,
}

/// Whether [`forward_tail_recorded`] computes a pass over `h` in `mode`: CPU float32 or float64,
/// and training-mode BN with trainable weights or eval-mode BN with frozen ones.
pub fn records(h: &Tensor, mode: ForwardMode) -> bool {
    matches!((mode.bn, mode.frozen_weights), (BnMode::Train, false) | (BnMode::Eval, true)) && conv_bn::supported(h)
}

/// `model.forward_tail(h, cut, mode)` up to the last stage's feature map (the input of
/// [`ResNet::head`]), without a graph, and the record its backward needs.
pub fn forward_tail_recorded(model: &ResNet, h: &Tensor, cut: usize, mode: ForwardMode) -> candle_core::Result<(Tensor, TailRecord)> {
    if !records(h, mode) {
        candle_core::bail!("recorded tail passes train on the CPU in float32 or float64, got {:?} on {:?} in {mode:?}", h.dtype(), h.device());
    }
    let mut x = h.detach();
    let stem = if cut == 0 {
        let (z, unit, pool_input) = model.run_stem(&x, |(conv, bn), x| conv_bn_recorded(conv, bn, x, mode, None, true))?;
        x = z;
        Some((unit, pool_input))
    } else {
        None
    };
    let mut blocks = Vec::new();
    for block in model.stages()[cut..].iter().flatten() {
        let (z, units, downsample) = block.run_units(&x, |(conv, bn), x, residual, relu| conv_bn_recorded(conv, bn, x, mode, residual, relu))?;
        blocks.push(BlockRecord { units, downsample });
        x = z;
    }
    Ok((x, TailRecord { stem, blocks }))
}

impl TailRecord {
    /// Back-propagates `grad`, the gradient of the pass's feature map, adding every trained
    /// weight's gradient to `grads` (summed with what is there: the other pass of a two-pass
    /// step). The tail's input gets no gradient (the image or the frozen encoder's features).
    pub fn backward(self, grad: &Tensor, grads: &mut GradStore) -> candle_core::Result<()> {
        self.walk_back(grad, false, grads).map(|_| ())
    }

    /// [`TailRecord::backward`] down to the tail's input, whose gradient it returns (the
    /// attack's frozen passes, whose perturbation the input carries; they add nothing to
    /// `grads`).
    pub fn input_gradient(self, grad: &Tensor, grads: &mut GradStore) -> candle_core::Result<Tensor> {
        self.walk_back(grad, true, grads)?.ok_or_else(|| candle_core::Error::Msg("recorded tail: internal error, no input gradient".into()))
    }

    fn walk_back(self, grad: &Tensor, need_input: bool, grads: &mut GradStore) -> candle_core::Result<Option<Tensor>> {
        let TailRecord { stem, blocks } = self;
        let mut grad = Some(Grad::Whole(grad.clone()));
        for (i, block) in blocks.into_iter().enumerate().rev() {
            let Some(g) = &grad else { candle_core::bail!("recorded tail: internal error, a block's output gradient is missing") };
            grad = block.backward(g, i > 0 || stem.is_some() || need_input, grads)?;
        }
        if let Some((unit, pool_input)) = stem {
            let Some(mut g) = grad else { candle_core::bail!("recorded tail: internal error, the stem's output gradient is missing") };
            if let Some(z) = pool_input {
                g = Grad::Whole(max_pool2d_backward(&z, &g.total()?, STEM_POOL)?);
            }
            grad = unit.backward(&g, need_input, grads)?.0.map(Grad::Whole);
        }
        grad.map(|g| g.total()).transpose()
    }
}

impl BlockRecord {
    /// The block's backward from its output's gradient; its input's gradient (branch and
    /// identity, left unsummed for the ReLU before the block to mask) when `need_x`.
    fn backward(self, grad: &Grad, need_x: bool, grads: &mut GradStore) -> candle_core::Result<Option<Grad>> {
        // Through the branch, last unit first; the last unit also gives the identity's gradient.
        let (mut g, mut d_identity) = (None, None);
        let last = self.units.len().saturating_sub(1);
        for (i, unit) in self.units.iter().enumerate().rev() {
            let whole;
            let current = if i == last {
                grad
            } else {
                let Some(inner) = g.take() else { candle_core::bail!("recorded block: internal error, a unit's output gradient is missing") };
                whole = Grad::Whole(inner);
                &whole
            };
            let (d_in, d_residual) = unit.backward(current, i > 0 || need_x, grads)?;
            d_identity = d_identity.or(d_residual);
            g = d_in;
        }
        let Some(d_identity) = d_identity else { candle_core::bail!("recorded block: internal error, no unit added the identity") };
        let d_skip = match &self.downsample {
            Some(unit) => unit.backward(&Grad::Whole(d_identity), need_x, grads)?.0,
            None => need_x.then_some(d_identity),
        };
        Ok(match (g, d_skip) {
            (Some(branch), Some(skip)) => Some(Grad::Parts(branch, skip)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Arch, ModelConfig};
    use crate::nn::BnBranch;
    use candle_core::{DType, Device, Var};

    fn bits(t: &Tensor) -> Vec<u64> {
        t.flatten_all().unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    fn model(arch: Arch, dtype: DType, cut: usize, two_branches: bool) -> ResNet {
        let mut config = ModelConfig::new(arch, 5);
        config.dtype = dtype;
        config.seed = 11;
        let mut model = ResNet::new(config, &Device::Cpu).unwrap();
        if two_branches {
            model.ensure_adv_bn(cut).unwrap();
        }
        model
    }

    fn input(shape: &[usize], seed: u64, dtype: DType) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((((i as u64 + seed) * 2_654_435_761) % 1000) as f32 / 500.0) - 1.0).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    /// The passes of a training step, clean and (for two branches) adversarial, through Candle's
    /// graph and recorded: the same loss, bit-identical weight gradients and running statistics.
    fn check(arch: Arch, dtype: DType, cut: usize, two_branches: bool, side: usize) {
        let case = format!("{arch:?}, {dtype:?}, cut {cut}, two branches {two_branches}");
        let (graph, recorded) = (model(arch, dtype, cut, two_branches), model(arch, dtype, cut, two_branches));
        let labels = Tensor::new(&[0u32, 3, 1, 4], &Device::Cpu).unwrap();
        let images = input(&[4, 3, side, side], 1, dtype);
        let modes: Vec<ForwardMode> =
            if two_branches { vec![ForwardMode::TRAIN_CLEAN, ForwardMode::new(BnMode::Train, BnBranch::Adv)] } else { vec![ForwardMode::TRAIN_CLEAN] };

        let h = graph.encode(&images, cut).unwrap();
        let mut total = Tensor::zeros((), dtype, &Device::Cpu).unwrap();
        for &mode in &modes {
            total = (total + candle_nn::loss::cross_entropy(&graph.forward_tail(&h, cut, mode).unwrap(), &labels).unwrap()).unwrap();
        }
        let expected = total.backward().unwrap();

        let h = recorded.encode(&images, cut).unwrap();
        let mut total = Tensor::zeros((), dtype, &Device::Cpu).unwrap();
        let mut passes = Vec::new();
        for &mode in &modes {
            assert!(records(&h, mode), "{case}");
            let (features, record) = forward_tail_recorded(&recorded, &h, cut, mode).unwrap();
            assert!(!features.track_op(), "{case}: the recorded pass builds no graph");
            let features = Var::from_tensor(&features).unwrap();
            total = (total + candle_nn::loss::cross_entropy(&recorded.head(features.as_tensor()).unwrap(), &labels).unwrap()).unwrap();
            passes.push((features, record));
        }
        let mut grads = total.backward().unwrap();
        for (features, record) in passes {
            let grad = grads.remove(features.as_tensor()).unwrap();
            record.backward(&grad, &mut grads).unwrap();
        }

        let (names, params) = (graph.params().all(), recorded.params().all());
        let mut trained = 0;
        for ((name, a), (_, b)) in names.iter().zip(&params) {
            match (expected.get(a.as_tensor()), grads.get(b.as_tensor())) {
                (Some(ga), Some(gb)) => {
                    assert_eq!(bits(ga), bits(gb), "{case}: gradient of {name}");
                    trained += 1;
                }
                (None, None) => {}
                (ga, gb) => panic!("{case}: gradient of {name}: through the graph {}, recorded {}", ga.is_some(), gb.is_some()),
            }
            // Running statistics (and every weight) as well: both models were updated alike.
            assert_eq!(bits(a.as_tensor()), bits(b.as_tensor()), "{case}: {name} after the forward");
        }
        assert!(trained > 10, "{case}: only {trained} parameters got a gradient");
    }

    #[test]
    fn resnet18_whole_network_matches_the_graph_bit_for_bit() {
        // ImageNet stem with its max-pool, downsampling blocks.
        check(Arch::ResNet18, DType::F32, 0, false, 32);
    }

    #[test]
    fn both_branches_of_a_cut_tail_match_the_graph_bit_for_bit() {
        check(Arch::SmallResNet { depth: 14, width: 8 }, DType::F32, 1, true, 16);
        check(Arch::SmallResNet { depth: 8, width: 4 }, DType::F64, 0, true, 12);
    }

    #[test]
    fn bottleneck_blocks_match_the_graph_bit_for_bit() {
        check(Arch::ResNet50, DType::F32, 2, false, 32);
    }

    #[test]
    fn refuses_what_it_does_not_record() {
        let model = model(Arch::SmallResNet { depth: 8, width: 4 }, DType::F32, 1, false);
        let h = input(&[2, 3, 12, 12], 2, DType::F32);
        for mode in [ForwardMode::EVAL_CLEAN, ForwardMode::TRAIN_CLEAN.with_frozen_weights()] {
            assert!(!records(&h, mode));
            assert!(forward_tail_recorded(&model, &h, 0, mode).is_err());
        }
        assert!(!records(&h.to_dtype(DType::BF16).unwrap(), ForwardMode::TRAIN_CLEAN));
    }
}
