//! The two backward passes BatchNorm and AdvBN both have, from (x, the gradient g of the op's
//! output, the op's packed coefficients): per-channel sums ([2C]) and the input's gradient (x's
//! shape). Each op says what its passes compute (`GradientPass`); the custom-op plumbing (dtype
//! dispatch, layouts, the output's shape and the CUDA launch) is here once.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};

use super::cpu::channels::{coefficients, float_slices, Elem};
use super::storage::{nchw, stats_storage};

/// What a pass returns on the CPU.
pub(crate) enum PassOutput {
    /// [first (C), second (C)] sums, in f64 (stored as the op's statistics dtype).
    Sums(Vec<f64>),
    /// A tensor of x's shape and dtype.
    LikeInput(CpuStorage),
}

#[cfg(feature = "cuda")]
pub(crate) use super::cuda::CudaArg;

pub(crate) trait GradientPass: Send + Sync {
    const NAME: &'static str;

    /// The pass over contiguous x and g ([N, C, H, W] with planes of `hw`), the coefficients as f64.
    fn cpu<T: Elem>(&self, x: &[T], g: &[T], coeffs: &[f64], c: usize, hw: usize) -> PassOutput;

    #[cfg(feature = "cuda")]
    fn cuda(&self, x: CudaArg, g: CudaArg, coeffs: CudaArg) -> Result<(candle_core::CudaStorage, Shape)>;
}

/// A [`GradientPass`] as a custom op on (x, g, coeffs); it has no backward of its own.
pub(crate) struct Pass<P>(pub P);

impl<P: GradientPass> CustomOp3 for Pass<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout, cs: &CpuStorage, cl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = nchw(xl)?;
        if gl.shape() != xl.shape() {
            candle_core::bail!("{}: gradient {:?} and input {:?} differ in shape", P::NAME, gl.shape(), xl.shape());
        }
        let coeffs = coefficients(P::NAME, cs, cl)?;
        Ok(match float_slices!(P::NAME, xs, xl, gs, gl, |x, g| self.0.cpu(x, g, &coeffs, c, hw)) {
            PassOutput::Sums(sums) => (stats_storage(sums, xs), Shape::from(2 * c)),
            PassOutput::LikeInput(out) => (out, xl.shape().clone()),
        })
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        cs: &candle_core::CudaStorage,
        cl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.0.cuda((xs, xl), (gs, gl), (cs, cl))
    }
}
