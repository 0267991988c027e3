//! The elementwise passes over gradients that the CPU backward of a ResNet runs outside its fused
//! ops: a ReLU's gradient (the gradient where the ReLU's output is positive), the sum of a
//! residual block's two input gradients (branch and identity), and both in one pass.
//!
//! A block's input is the previous block's output, a ReLU's: its gradient is the sum of the two
//! parts, masked by that ReLU. [`Grad::Parts`] carries the parts to the unit that masks them, so
//! the sum and the mask cost one pass over four tensors instead of two passes over six. The sum
//! is rounded once and then masked, as in two passes: the same bits.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::cpu::channels::{float_slices, map_planes, Elem, Real};
use super::cpu::simd::multiversion;

/// The gradient of one tensor: whole, or the two parts a residual block's input receives.
pub enum Grad {
    Whole(Tensor),
    Parts(Tensor, Tensor),
}

impl Grad {
    /// The gradient as one tensor (the parts summed).
    pub fn total(&self) -> Result<Tensor> {
        match self {
            Grad::Whole(g) => Ok(g.clone()),
            Grad::Parts(a, b) => sum_grads(a, b),
        }
    }

    /// The gradient through a ReLU whose output is `y`: the gradient where y > 0, else 0 (the
    /// parts summed in the same pass).
    pub fn relu_masked(&self, y: &Tensor) -> Result<Tensor> {
        match self {
            Grad::Whole(g) => relu_grad(g, y),
            Grad::Parts(a, b) => a.contiguous()?.apply_op3_no_bwd(&b.contiguous()?, &y.contiguous()?, &MaskedSum),
        }
    }
}

/// The gradient through a ReLU from its output `y`: `grad` where y > 0, else 0 (CPU).
pub(crate) fn relu_grad(grad: &Tensor, y: &Tensor) -> Result<Tensor> {
    grad.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &Pairwise::ReluGrad)
}

/// The sum of two gradients of one tensor (a block's branch and skip), elementwise on the compute
/// pool (Candle's add runs on one thread); the same values as `a + b` (CPU).
pub(crate) fn sum_grads(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.contiguous()?.apply_op2_no_bwd(&b.contiguous()?, &Pairwise::Sum)
}

multiversion! {
    /// a + b.
    fn sum_chunk<T: Elem>(a: &[T], b: &[T], out: &mut [MaybeUninit<T>]) -> () {
        for ((o, av), bv) in out.iter_mut().zip(a).zip(b) {
            o.write(T::put(av.get() + bv.get()));
        }
    }
}

multiversion! {
    /// g where y > 0, else 0.
    fn relu_grad_chunk<T: Elem>(g: &[T], y: &[T], out: &mut [MaybeUninit<T>]) -> () {
        for ((o, gv), yv) in out.iter_mut().zip(g).zip(y) {
            o.write(if yv.get() > T::R::ZERO { *gv } else { T::put(T::R::ZERO) });
        }
    }
}

multiversion! {
    /// a + b where y > 0, else 0.
    fn masked_sum_chunk<T: Elem>(a: &[T], b: &[T], y: &[T], out: &mut [MaybeUninit<T>]) -> () {
        for (((o, av), bv), yv) in out.iter_mut().zip(a).zip(b).zip(y) {
            o.write(if yv.get() > T::R::ZERO { T::put(av.get() + bv.get()) } else { T::put(T::R::ZERO) });
        }
    }
}

/// The two-operand passes, over tensors of one shape (CPU, on the compute pool).
#[derive(Clone, Copy)]
enum Pairwise {
    /// (g, y): g where the ReLU's output y is positive, else 0.
    ReluGrad,
    /// (a, b): a + b.
    Sum,
}

/// (a, b, y): a + b where y is positive, else 0.
struct MaskedSum;

/// Elements per task of an elementwise pass.
const ELEMENTWISE_CHUNK: usize = 1 << 14;

/// An elementwise pass of `len` elements on the compute pool: `chunk(range, out)` writes every
/// element of `out`, the output's `range`.
fn by_chunks<T: Elem>(len: usize, chunk: impl Fn(std::ops::Range<usize>, &mut [MaybeUninit<T>]) + Sync) -> CpuStorage {
    // SAFETY: `chunk` writes every element of each chunk (each kernel below does).
    let out = unsafe { map_planes(len, 1, ELEMENTWISE_CHUNK, |q, _, out| chunk(q * ELEMENTWISE_CHUNK..q * ELEMENTWISE_CHUNK + out.len(), out)) };
    T::to_cpu_storage_owned(out)
}

fn same_shapes(name: &str, shapes: &[&Shape]) -> Result<()> {
    if shapes.windows(2).any(|w| w[0] != w[1]) {
        candle_core::bail!("{name}: operands {shapes:?} differ in shape");
    }
    Ok(())
}

impl CustomOp2 for Pairwise {
    fn name(&self) -> &'static str {
        match self {
            Self::ReluGrad => "relu-grad",
            Self::Sum => "grad-sum",
        }
    }

    fn cpu_fwd(&self, a_s: &CpuStorage, al: &Layout, b_s: &CpuStorage, bl: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        same_shapes(name, &[al.shape(), bl.shape()])?;
        let out = float_slices!(name, a_s, al, b_s, bl, |a, b| by_chunks(a.len(), |r, out| match self {
            Self::ReluGrad => relu_grad_chunk(&a[r.clone()], &b[r], out),
            Self::Sum => sum_chunk(&a[r.clone()], &b[r], out),
        }));
        Ok((out, al.shape().clone()))
    }
}

impl CustomOp3 for MaskedSum {
    fn name(&self) -> &'static str {
        "masked-grad-sum"
    }

    fn cpu_fwd(&self, a_s: &CpuStorage, al: &Layout, b_s: &CpuStorage, bl: &Layout, y_s: &CpuStorage, yl: &Layout) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        same_shapes(name, &[al.shape(), bl.shape(), yl.shape()])?;
        let out =
            float_slices!(name, a_s, al, b_s, bl, y_s, yl, |a, b, y| by_chunks(a.len(), |r, out| masked_sum_chunk(&a[r.clone()], &b[r.clone()], &y[r], out)));
        Ok((out, al.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn values(n: usize, seed: u64, dtype: DType) -> Tensor {
        let v: Vec<f64> = (0..n as u64).map(|i| (((i + seed) * 2_654_435_761 % 10_007) as f64 / 777.0 - 6.0) * 1.000_001f64.powi((i % 97) as i32)).collect();
        Tensor::from_vec(v, (n,), &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        t.to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The pooled sum gives Candle's `a + b` bit for bit (over several chunks and a partial one),
    /// the ReLU's gradient Candle's `where`, and the masked sum the two passes it replaces.
    #[test]
    fn the_passes_match_candles_ops_bit_for_bit() {
        for dtype in [DType::F32, DType::F64] {
            let n = 3 * ELEMENTWISE_CHUNK + 17;
            let (a, b, y) = (values(n, 1, dtype), values(n, 2, dtype), values(n, 3, dtype));
            let sum = (&a + &b).unwrap();
            assert_eq!(bits(&sum_grads(&a, &b).unwrap()), bits(&sum), "{dtype:?}");
            let zeros = sum.zeros_like().unwrap();
            let positive = y.gt(0.0).unwrap();
            assert_eq!(bits(&relu_grad(&a, &y).unwrap()), bits(&positive.where_cond(&a, &zeros).unwrap()), "{dtype:?}");
            let masked = Grad::Parts(a.clone(), b.clone()).relu_masked(&y).unwrap();
            assert_eq!(bits(&masked), bits(&positive.where_cond(&sum, &zeros).unwrap()), "{dtype:?}");
            assert_eq!(bits(&masked), bits(&relu_grad(&sum_grads(&a, &b).unwrap(), &y).unwrap()), "{dtype:?}");
            assert_eq!(bits(&Grad::Whole(a.clone()).relu_masked(&y).unwrap()), bits(&relu_grad(&a, &y).unwrap()), "{dtype:?}");
            assert_eq!(bits(&Grad::Parts(a.clone(), b.clone()).total().unwrap()), bits(&sum), "{dtype:?}");
        }
    }

    #[test]
    fn operands_of_different_shapes_are_refused() {
        let (a, b) = (Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap(), Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap());
        let err = sum_grads(&a, &b).unwrap_err().to_string();
        assert!(err.contains("differ in shape"), "{err}");
        let err = Grad::Parts(a.clone(), a.clone()).relu_masked(&b).unwrap_err().to_string();
        assert!(err.contains("masked-grad-sum") && err.contains("differ in shape"), "{err}");
        let err = relu_grad(&a, &a.to_dtype(DType::F64).unwrap()).unwrap_err().to_string();
        assert!(err.contains("relu-grad") && err.contains("dtype"), "{err}");
    }
}
