//! A convolution with constant weights followed by a per-channel affine map, an optional
//! residual and an optional ReLU: y = ReLU(conv2d(x, w) * scale + shift + r). It is an eval-mode
//! BatchNorm folded into its conv, the shape of every layer in AdvBN's attack (frozen weights,
//! running statistics) and in evaluation. CPU only (float32, float64).
//!
//! The forward writes the conv's output once and maps it in place, instead of a conv op, a BN op
//! and their intermediate tensor. The backward needs only the output (the ReLU's mask is y > 0)
//! and the weights scaled per output channel (d/dx of conv(x, w) * scale is the input gradient of
//! conv(x, w * scale)); nothing is stored besides what the graph holds anyway.
//!
//! AdvBN's attack passes on the CPU run the same op outside Candle's graph
//! ([`conv_affine_recorded`], `models::backprop`), keeping what the input gradient needs.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::conv::{input_gradient, ConvParams};
use super::cpu::conv::Geometry;
use super::cpu::simd::vectorized;
use super::gradient::Grad;

/// Fewest elements per task of the in-place map.
const TASK: usize = 1 << 15;

#[derive(Clone)]
struct ConvAffine {
    params: ConvParams,
    /// Constant weights, contiguous.
    weight: Tensor,
    /// Per output channel.
    scale: Vec<f64>,
    shift: Vec<f64>,
    relu: bool,
}

/// The elements our CPU conv kernels take.
trait Element: super::cpu::gemm::Float + candle_core::WithDType {}

impl Element for f32 {}

impl Element for f64 {}

impl ConvAffine {
    /// The op and its contiguous input.
    fn new(x: &Tensor, w: &Tensor, scale: &Tensor, shift: &Tensor, relu: bool, params: ConvParams) -> Result<(Self, Tensor)> {
        if !supported(x) {
            candle_core::bail!("conv-affine runs on CPU float32 / float64 tensors, got {:?} on {:?}", x.dtype(), x.device());
        }
        let values = |t: &Tensor| t.detach().to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
        let op = Self { params, weight: w.detach().to_dtype(x.dtype())?.contiguous()?, scale: values(scale)?, shift: values(shift)?, relu };
        let o = op.weight.dim(0)?;
        if op.scale.len() != o || op.shift.len() != o {
            candle_core::bail!("conv-affine: {o} output channels but {} scales and {} shifts", op.scale.len(), op.shift.len());
        }
        Ok((op, x.contiguous()?))
    }

    fn forward<T: Element>(&self, x: &[T], w: &[T], residual: Option<&[T]>, g: &Geometry) -> Result<Vec<T>> {
        // The "same" kernels apply the map as their tiles store (f32).
        if let (true, Some(x32), Some(w32)) = (super::cpu::same::suits(g), T::as_f32(x), T::as_f32(w)) {
            let narrow = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (scale, shift) = (narrow(&self.scale), narrow(&self.shift));
            let residual = match residual {
                Some(r) => Some(T::as_f32(r).ok_or_else(|| candle_core::Error::Msg("conv-affine: residual dtype".into()))?),
                None => None,
            };
            let epilogue = super::cpu::same::Epilogue { scale: &scale, shift: &shift, residual, relu: self.relu };
            let y = super::cpu::same::forward_affine(x32, w32, g, &epilogue)?;
            return Ok(T::from_f32(y).expect("T is f32"));
        }
        let mut y = super::cpu::conv::forward(x, w, g)?;
        let ohw = g.oh * g.ow;
        if let Some(r) = residual {
            if r.len() != y.len() {
                candle_core::bail!("conv-affine: residual has {} elements, the output {}", r.len(), y.len());
            }
        }
        let planes_per_task = TASK.div_ceil(ohw.max(1)).max(1);
        y.par_chunks_mut(ohw.max(1)).with_min_len(planes_per_task).enumerate().for_each(|(q, plane)| {
            let o = q % g.o;
            let (scale, shift) = (<T as candle_core::WithDType>::from_f64(self.scale[o]), <T as candle_core::WithDType>::from_f64(self.shift[o]));
            vectorized(|| match residual {
                Some(r) => {
                    for (v, res) in plane.iter_mut().zip(&r[q * ohw..][..ohw]) {
                        *v = relu_if(*v * scale + shift + *res, self.relu);
                    }
                }
                None => {
                    for v in plane.iter_mut() {
                        *v = relu_if(*v * scale + shift, self.relu);
                    }
                }
            });
        });
        Ok(y)
    }

    fn cpu(&self, xs: &CpuStorage, xl: &Layout, residual: Option<(&CpuStorage, &Layout)>) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.shape().dims4()?, self.weight.dims4()?, self.params)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let candle_core::Storage::Cpu(ws) = &*ws else {
            candle_core::bail!("conv-affine: the weights are not on the CPU");
        };
        let offsets = |l: &Layout| l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("conv-affine: tensors must be contiguous".into()));
        let ((x0, x1), (w0, w1)) = (offsets(xl)?, offsets(wl)?);
        let shape = Shape::from((g.n, g.o, g.oh, g.ow));
        let r = match residual {
            Some((rs, rl)) => Some((rs, offsets(rl)?)),
            None => None,
        };
        let out = match (xs, ws) {
            (CpuStorage::F32(x), CpuStorage::F32(w)) => {
                let r = match r {
                    Some((CpuStorage::F32(r), (a, b))) => Some(&r[a..b]),
                    Some(_) => candle_core::bail!("conv-affine: residual and input differ in dtype"),
                    None => None,
                };
                CpuStorage::F32(self.forward(&x[x0..x1], &w[w0..w1], r, &g)?)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w)) => {
                let r = match r {
                    Some((CpuStorage::F64(r), (a, b))) => Some(&r[a..b]),
                    Some(_) => candle_core::bail!("conv-affine: residual and input differ in dtype"),
                    None => None,
                };
                CpuStorage::F64(self.forward(&x[x0..x1], &w[w0..w1], r, &g)?)
            }
            _ => candle_core::bail!("conv-affine: input and weights must both be float32 or both float64"),
        };
        Ok((out, shape))
    }

    /// The gradient reaching the affine map's output (masked by the ReLU), and the input's
    /// when `need_x`.
    fn backward(&self, x: &Tensor, y: &Tensor, grad: &Grad, need_x: bool) -> Result<(Tensor, Option<Tensor>)> {
        let masked = if self.relu { grad.relu_masked(y)? } else { grad.total()?.contiguous()? };
        let d_x = if need_x {
            let o = self.weight.dim(0)?;
            let scale = Tensor::from_vec(self.scale.clone(), (o, 1, 1, 1), x.device())?.to_dtype(self.weight.dtype())?;
            let scaled = self.weight.broadcast_mul(&scale)?.contiguous()?;
            Some(input_gradient(x, &scaled, &masked, self.params)?)
        } else {
            None
        };
        Ok((masked, d_x))
    }
}

#[inline(always)]
fn relu_if<T: Element>(v: T, relu: bool) -> T {
    if relu && !matches!(v.partial_cmp(&T::ZERO), Some(std::cmp::Ordering::Greater)) {
        T::ZERO
    } else {
        v
    }
}

/// Without a residual: x.
struct Plain(ConvAffine);
/// With one: x, r.
struct WithResidual(ConvAffine);

impl CustomOp1 for Plain {
    fn name(&self) -> &'static str {
        "conv-affine"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.0.cpu(xs, xl, None)
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.0.backward(x, res, &Grad::Whole(grad.clone()), x.track_op())?.1)
    }
}

impl CustomOp2 for WithResidual {
    fn name(&self) -> &'static str {
        "conv-affine-residual"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, rs: &CpuStorage, rl: &Layout) -> Result<(CpuStorage, Shape)> {
        if xl.shape().dims4()?.0 != rl.shape().dims4()?.0 {
            candle_core::bail!("conv-affine: residual {:?} does not match the input's batch {:?}", rl.shape(), xl.shape());
        }
        self.0.cpu(xs, xl, Some((rs, rl)))
    }

    fn bwd(&self, x: &Tensor, r: &Tensor, res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (masked, d_x) = self.0.backward(x, res, &Grad::Whole(grad.clone()), x.track_op())?;
        Ok((d_x, r.track_op().then_some(masked)))
    }
}

/// Whether `conv_affine` runs for this input: a float32 or float64 tensor on the CPU.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// ReLU?(conv2d(x, w) * scale + shift (+ residual)) with w, scale and shift [O] constants
/// (detached here); gradients flow to x and the residual. CPU, float32 or float64.
pub fn conv_affine(x: &Tensor, w: &Tensor, scale: &Tensor, shift: &Tensor, residual: Option<&Tensor>, relu: bool, params: ConvParams) -> Result<Tensor> {
    let (op, x) = ConvAffine::new(x, w, scale, shift, relu, params)?;
    match residual {
        Some(r) => x.apply_op2(&r.contiguous()?, WithResidual(op)),
        None => x.apply_op1(Plain(op)),
    }
}

/// A [`conv_affine`] computed outside Candle's graph, with what its input gradient needs.
pub struct FrozenUnit {
    op: ConvAffine,
    x: Tensor,
    y: Tensor,
    residual: bool,
}

/// [`conv_affine`] without a graph: the same output, and the record of the unit.
pub fn conv_affine_recorded(
    x: &Tensor,
    w: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    residual: Option<&Tensor>,
    relu: bool,
    params: ConvParams,
) -> Result<(Tensor, FrozenUnit)> {
    let (op, x) = ConvAffine::new(x, w, scale, shift, relu, params)?;
    let y = match residual {
        Some(r) => x.apply_op2_no_bwd(&r.contiguous()?, &WithResidual(op.clone()))?,
        None => x.apply_op1_no_bwd(&Plain(op.clone()))?,
    };
    Ok((y.clone(), FrozenUnit { op, x, y, residual: residual.is_some() }))
}

impl FrozenUnit {
    /// From the output's gradient: the input's (when `need_x`) and the residual's (for a unit
    /// that adds one), as the graph's backward of [`conv_affine`] computes them.
    pub fn backward(&self, grad: &Grad, need_x: bool) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (masked, d_x) = self.op.backward(&self.x, &self.y, grad, need_x)?;
        Ok((d_x, self.residual.then_some(masked)))
    }
}
