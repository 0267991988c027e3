//! Fused optimiser updates as in-place Candle ops (`Tensor::inplace_op2/3`). Each op mutates
//! ONLY its first argument (a parameter or a state buffer the optimiser owns); the gradient and
//! every other argument are read. Passes over the data per parameter and step:
//!
//! - SGD without momentum: 1 (`SgdParam` on p with g).
//! - SGD with momentum (plain or Nesterov): 2 (`SgdMomentum` on buf, then `SgdParam` on p).
//! - AdamW: 2 (`AdamWMoments` on the packed moments [m; v], then `AdamWParam` on p).
//!
//! AdamW keeps m and v in ONE buffer of shape [2, numel] (m first) so the moments take one
//! pass that reads the gradient once. All arguments share one float dtype and are contiguous.
//! The CPU computes in f64 for f64 tensors and in f32 otherwise, with the same operations in
//! the same order as the composite Candle formulas they replace (PyTorch's update rules); the
//! CUDA kernels (f32 and bf16) compute in f32.

use std::ops::{Add, Div, Mul, Sub};

use rayon::prelude::*;

use super::cpu::simd::vectorized;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, WithDType};
use half::{bf16, f16};

/// SGD momentum buffer, in place on `buf` (`buf.inplace_op3(g, p, ..)`):
/// g' = g + weight_decay * p; buf = momentum * buf + g', or buf = g' on the first step
/// (PyTorch), where buf's previous contents are ignored.
#[derive(Debug, Clone, Copy)]
pub struct SgdMomentum {
    pub momentum: f64,
    pub weight_decay: f64,
    pub first: bool,
}

/// SGD parameter update, in place on `p`: p -= lr * d with g' = g + weight_decay * p and
/// d = g' without momentum (`p.inplace_op2(g, ..)`), or with the momentum buffer already
/// updated (`p.inplace_op3(g, buf, ..)`) d = buf, or g' + momentum * buf for Nesterov.
#[derive(Debug, Clone, Copy)]
pub struct SgdParam {
    pub lr: f64,
    pub weight_decay: f64,
    pub momentum: f64,
    pub nesterov: bool,
}

/// AdamW moments, in place on the packed [m; v] buffer (`mv.inplace_op2(g, ..)`, mv has twice
/// g's elements): m = beta1 * m + (1 - beta1) * g, v = beta2 * v + (1 - beta2) * g^2; on the
/// first step the previous contents are ignored (m = (1 - beta1) g, v = (1 - beta2) g^2).
#[derive(Debug, Clone, Copy)]
pub struct AdamWMoments {
    pub beta1: f64,
    pub beta2: f64,
    pub first: bool,
}

/// AdamW parameter update, in place on `p` (`p.inplace_op2(mv, ..)`), decoupled decay:
/// p = p * (1 - lr * weight_decay) - lr * (m / bc1) / (sqrt(v / bc2) + eps) with the bias
/// corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t of step t (see `AdamWParam::new`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWParam {
    pub lr: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub bias_correction1: f64,
    pub bias_correction2: f64,
}

impl AdamWParam {
    /// The update of step `t` (1-based).
    pub fn new(lr: f64, weight_decay: f64, eps: f64, beta1: f64, beta2: f64, t: u64) -> Self {
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        Self { lr, weight_decay, eps, bias_correction1: 1.0 - beta1.powi(t), bias_correction2: 1.0 - beta2.powi(t) }
    }
}

/// The arithmetic the CPU computes in (f64 for f64 tensors, f32 for the others).
trait Num: Copy + Send + Sync + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self> {
    fn of(v: f64) -> Self;
    fn sqrt(self) -> Self;
}

impl Num for f32 {
    #[inline]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Num for f64 {
    #[inline]
    fn of(v: f64) -> Self {
        v
    }
    #[inline]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// A storage element type and the arithmetic it is updated in.
trait Elem: WithDType {
    type C: Num;
    fn load(self) -> Self::C;
    fn store(c: Self::C) -> Self;
    fn vec_mut(s: &mut CpuStorage) -> Option<&mut Vec<Self>>;
}

macro_rules! elem {
    ($t:ty, $c:ty, $variant:ident, $load:expr, $store:expr) => {
        impl Elem for $t {
            type C = $c;
            #[inline]
            fn load(self) -> $c {
                $load(self)
            }
            #[inline]
            fn store(c: $c) -> Self {
                $store(c)
            }
            fn vec_mut(s: &mut CpuStorage) -> Option<&mut Vec<Self>> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}

elem!(f32, f32, F32, |v| v, |c| c);
elem!(f64, f64, F64, |v| v, |c| c);
elem!(bf16, f32, BF16, bf16::to_f32, bf16::from_f32);
elem!(f16, f32, F16, f16::to_f32, f16::from_f32);

/// One fused update on typed slices: `x` is mutated, `a` and `b` are read (ops with one
/// input get it twice).
trait CpuUpdate {
    fn update<T: Elem>(&self, x: &mut [T], a: &[T], b: &[T]) -> Result<()>;
}

fn range(layout: &Layout, len: usize, what: &str) -> Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end <= len => Ok(start..end),
        _ => candle_core::bail!("{what} must be contiguous"),
    }
}

fn run_typed<T: Elem, U: CpuUpdate>(op: &U, x: &mut CpuStorage, xl: &Layout, a: (&CpuStorage, &Layout), b: (&CpuStorage, &Layout), name: &str) -> Result<()> {
    let (a_all, b_all) = (a.0.as_slice::<T>()?, b.0.as_slice::<T>()?);
    let a = &a_all[range(a.1, a_all.len(), name)?];
    let b = &b_all[range(b.1, b_all.len(), name)?];
    let x_all = T::vec_mut(x).ok_or_else(|| candle_core::Error::Msg(format!("{name}: mixed dtypes")))?;
    let r = range(xl, x_all.len(), name)?;
    op.update(&mut x_all[r], a, b)
}

fn run<U: CpuUpdate>(op: &U, name: &str, x: &mut CpuStorage, xl: &Layout, a: (&CpuStorage, &Layout), b: (&CpuStorage, &Layout)) -> Result<()> {
    use candle_core::backend::BackendStorage;
    let dtype = x.dtype();
    if a.0.dtype() != dtype || b.0.dtype() != dtype {
        candle_core::bail!("{name}: every argument must have the dtype of the updated tensor ({dtype:?})");
    }
    match dtype {
        DType::F32 => run_typed::<f32, U>(op, x, xl, a, b, name),
        DType::F64 => run_typed::<f64, U>(op, x, xl, a, b, name),
        DType::BF16 => run_typed::<bf16, U>(op, x, xl, a, b, name),
        DType::F16 => run_typed::<f16, U>(op, x, xl, a, b, name),
        other => candle_core::bail!("{name}: unsupported dtype {other:?}"),
    }
}

/// Elements per task of an update (each element is updated on its own: no order to keep).
const CHUNK: usize = 1 << 15;

/// Runs `f` over matching chunks of `x`, `a` and `b` on rayon's threads, compiled for the CPU's
/// vector instruction set.
fn chunked3<T: Send + Sync>(x: &mut [T], a: &[T], b: &[T], f: impl Fn(&mut [T], &[T], &[T]) + Sync) {
    x.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((x, a), b)| vectorized(|| f(x, a, b)));
}

fn check_len(name: &str, x: usize, inputs: &[usize]) -> Result<()> {
    if inputs.iter().any(|&n| n != x) {
        candle_core::bail!("{name}: element counts differ ({x} vs {inputs:?})");
    }
    Ok(())
}

impl CpuUpdate for SgdMomentum {
    fn update<T: Elem>(&self, buf: &mut [T], g: &[T], p: &[T]) -> Result<()> {
        check_len("sgd-momentum", buf.len(), &[g.len(), p.len()])?;
        let (momentum, wd) = (T::C::of(self.momentum), T::C::of(self.weight_decay));
        let decay = self.weight_decay > 0.0;
        chunked3(buf, g, p, |buf, g, p| {
            for ((b, &g), &p) in buf.iter_mut().zip(g).zip(p) {
                let g = if decay { g.load() + p.load() * wd } else { g.load() };
                *b = T::store(if self.first { g } else { b.load() * momentum + g });
            }
        });
        Ok(())
    }
}

impl CpuUpdate for SgdParam {
    fn update<T: Elem>(&self, p: &mut [T], g: &[T], buf: &[T]) -> Result<()> {
        check_len("sgd-param", p.len(), &[g.len(), buf.len()])?;
        let (lr, wd, momentum) = (T::C::of(self.lr), T::C::of(self.weight_decay), T::C::of(self.momentum));
        let (decay, with_buf) = (self.weight_decay > 0.0, self.momentum > 0.0);
        chunked3(p, g, buf, |p, g, buf| {
            for ((p, &g), &buf) in p.iter_mut().zip(g).zip(buf) {
                let pv = p.load();
                let g = if decay { g.load() + pv * wd } else { g.load() };
                let d = match (with_buf, self.nesterov) {
                    (false, _) => g,
                    (true, false) => buf.load(),
                    (true, true) => g + buf.load() * momentum,
                };
                *p = T::store(pv - d * lr);
            }
        });
        Ok(())
    }
}

impl CpuUpdate for AdamWMoments {
    fn update<T: Elem>(&self, mv: &mut [T], g: &[T], _: &[T]) -> Result<()> {
        check_len("adamw-moments", mv.len(), &[2 * g.len()])?;
        let (b1, b2) = (T::C::of(self.beta1), T::C::of(self.beta2));
        let (c1, c2) = (T::C::of(1.0 - self.beta1), T::C::of(1.0 - self.beta2));
        let (m, v) = mv.split_at_mut(g.len());
        m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)).zip(g.par_chunks(CHUNK)).for_each(|((m, v), g)| {
            vectorized(|| {
                for ((m, v), &g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
                    let g = g.load();
                    let (dm, dv) = (g * c1, (g * g) * c2);
                    if self.first {
                        *m = T::store(dm);
                        *v = T::store(dv);
                    } else {
                        *m = T::store(m.load() * b1 + dm);
                        *v = T::store(v.load() * b2 + dv);
                    }
                }
            })
        });
        Ok(())
    }
}

impl CpuUpdate for AdamWParam {
    fn update<T: Elem>(&self, p: &mut [T], mv: &[T], _: &[T]) -> Result<()> {
        check_len("adamw-param", 2 * p.len(), &[mv.len()])?;
        let lr = T::C::of(self.lr);
        let decay = T::C::of(1.0 - self.lr * self.weight_decay);
        let (inv1, inv2) = (T::C::of(1.0 / self.bias_correction1), T::C::of(1.0 / self.bias_correction2));
        let eps = T::C::of(self.eps);
        let (m, v) = mv.split_at(p.len());
        chunked3(p, m, v, |p, m, v| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                let update = (m.load() * inv1) / ((v.load() * inv2).sqrt() + eps);
                *p = T::store(p.load() * decay - update * lr);
            }
        });
        Ok(())
    }
}

impl InplaceOp3 for SgdMomentum {
    fn name(&self) -> &'static str {
        "sgd-momentum"
    }

    fn cpu_fwd(&self, buf: &mut CpuStorage, bl: &Layout, g: &CpuStorage, gl: &Layout, p: &CpuStorage, pl: &Layout) -> Result<()> {
        run(self, self.name(), buf, bl, (g, gl), (p, pl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        buf: &mut candle_core::CudaStorage,
        bl: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
        p: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> Result<()> {
        super::cuda::optim::sgd_momentum(self, buf, bl, g, gl, p, pl)
    }
}

impl InplaceOp2 for SgdParam {
    fn name(&self) -> &'static str {
        "sgd-param"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        if self.momentum > 0.0 {
            candle_core::bail!("sgd-param with momentum needs the momentum buffer (inplace_op3)");
        }
        run(self, "sgd-param", p, pl, (g, gl), (g, gl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, p: &mut candle_core::CudaStorage, pl: &Layout, g: &candle_core::CudaStorage, gl: &Layout) -> Result<()> {
        if self.momentum > 0.0 {
            candle_core::bail!("sgd-param with momentum needs the momentum buffer (inplace_op3)");
        }
        super::cuda::optim::sgd_param(self, p, pl, g, gl, g, gl)
    }
}

impl InplaceOp3 for SgdParam {
    fn name(&self) -> &'static str {
        "sgd-param"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout, g: &CpuStorage, gl: &Layout, buf: &CpuStorage, bl: &Layout) -> Result<()> {
        run(self, "sgd-param", p, pl, (g, gl), (buf, bl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        p: &mut candle_core::CudaStorage,
        pl: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
        buf: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<()> {
        super::cuda::optim::sgd_param(self, p, pl, g, gl, buf, bl)
    }
}

impl InplaceOp2 for AdamWMoments {
    fn name(&self) -> &'static str {
        "adamw-moments"
    }

    fn cpu_fwd(&self, mv: &mut CpuStorage, ml: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        run(self, self.name(), mv, ml, (g, gl), (g, gl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, mv: &mut candle_core::CudaStorage, ml: &Layout, g: &candle_core::CudaStorage, gl: &Layout) -> Result<()> {
        super::cuda::optim::adamw_moments(self, mv, ml, g, gl)
    }
}

impl InplaceOp2 for AdamWParam {
    fn name(&self) -> &'static str {
        "adamw-param"
    }

    fn cpu_fwd(&self, p: &mut CpuStorage, pl: &Layout, mv: &CpuStorage, ml: &Layout) -> Result<()> {
        run(self, self.name(), p, pl, (mv, ml), (mv, ml))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, p: &mut candle_core::CudaStorage, pl: &Layout, mv: &candle_core::CudaStorage, ml: &Layout) -> Result<()> {
        super::cuda::optim::adamw_param(self, p, pl, mv, ml)
    }
}
