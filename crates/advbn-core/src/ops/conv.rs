//! conv2d (groups 1, square stride/padding, dilation 1) as a custom op whose backward computes
//! only the gradients someone needs: AdvBN's attack backpropagates to alpha and beta through a
//! tail whose weights are detached, and Candle's own conv backward always computes the weight
//! gradient too (a third of the attack's backward FLOPs).
//!
//! On the CPU, float32 and float64 run our im2col + matrix-product kernels (`ops::cpu::conv`) for
//! all three passes (Candle's conv backward there is a naive conv_transpose2d). With the `cudnn`
//! feature, the three passes on CUDA are cuDNN calls. Other cases (half types on the CPU, CUDA
//! without cuDNN) use Candle's conv ops: the forward is computed before the op and handed to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Storage, Tensor};

use super::cpu::{self, conv::Geometry};

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvParams {
    pub stride: usize,
    pub padding: usize,
}

impl ConvParams {
    /// Output size of one spatial dimension (PyTorch's floor rule, dilation 1).
    pub fn out_size(&self, input: usize, kernel: usize) -> Result<usize> {
        let padded = input + 2 * self.padding;
        if self.stride == 0 || padded < kernel {
            candle_core::bail!("conv2d: input size {input} with padding {} is smaller than the kernel ({kernel}) or stride is 0", self.padding);
        }
        Ok((padded - kernel) / self.stride + 1)
    }
}

static TF32: AtomicBool = AtomicBool::new(false);

/// Lets float32 convolutions and matmuls on CUDA use TF32 tensor cores (10-bit mantissa
/// products, float32 accumulation). Off by default: float32 means float32. PyTorch's default
/// is on for convolutions (`torch.backends.cudnn.allow_tf32`) and off for matmuls.
pub fn set_tf32(enabled: bool) {
    TF32.store(enabled, Ordering::Relaxed);
    #[cfg(feature = "cuda")]
    candle_core::cuda::set_gemm_reduced_precision_f32(enabled);
}

pub fn tf32_enabled() -> bool {
    TF32.load(Ordering::Relaxed)
}

struct Conv2dOp {
    params: ConvParams,
    /// Candle's forward result where the op does not compute it itself; taken by the forward so
    /// the graph does not keep a second reference to it.
    precomputed: Mutex<Option<Tensor>>,
}

impl Conv2dOp {
    fn has_precomputed(&self) -> Result<bool> {
        Ok(self.precomputed.lock().map_err(|_| candle_core::Error::Msg("conv2d: poisoned lock".into()))?.is_some())
    }
}

fn take_precomputed(op: &Conv2dOp) -> Result<Tensor> {
    op.precomputed
        .lock()
        .map_err(|_| candle_core::Error::Msg("conv2d: poisoned lock".into()))?
        .take()
        .ok_or_else(|| candle_core::Error::Msg("conv2d: internal error, the forward result was not computed for this device".into()))
}

/// Whether our CPU kernels run this tensor's convolutions.
pub(crate) fn uses_cpu_kernels(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Whether this build runs `x`'s convolutions through our cuDNN calls.
fn uses_cudnn(x: &Tensor) -> bool {
    cfg!(feature = "cudnn") && x.device().is_cuda()
}

/// Runs `$body` with `$a`, `$b` bound to the contiguous f32 or f64 slices of two CPU storages.
macro_rules! cpu_slices {
    ($what:expr, $as:expr, $al:expr, $bs:expr, $bl:expr, |$a:ident, $b:ident| $body:expr) => {{
        let ((a0, a1), (b0, b1)) = match ($al.contiguous_offsets(), $bl.contiguous_offsets()) {
            (Some(a), Some(b)) => (a, b),
            _ => candle_core::bail!("{}: inputs must be contiguous", $what),
        };
        match ($as, $bs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let ($a, $b) = (&a[a0..a1], &b[b0..b1]);
                CpuStorage::F32($body)
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let ($a, $b) = (&a[a0..a1], &b[b0..b1]);
                CpuStorage::F64($body)
            }
            (a, b) => candle_core::bail!("{}: CPU kernels take float32 or float64 inputs of one dtype, got {:?} and {:?}", $what, a.dtype(), b.dtype()),
        }
    }};
}

impl CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        if !self.has_precomputed()? {
            let g = Geometry::new(xl.shape().dims4()?, wl.shape().dims4()?, self.params)?;
            let y = cpu_slices!("conv2d", xs, xl, ws, wl, |x, w| cpu::conv::forward(x, w, &g)?);
            return Ok((y, Shape::from((g.n, g.o, g.oh, g.ow))));
        }
        let y = take_precomputed(self)?;
        let (storage, layout) = y.storage_and_layout();
        match &*storage {
            Storage::Cpu(s) => Ok((s.try_clone(layout)?, y.shape().clone())),
            _ => candle_core::bail!("conv2d: forward result on the wrong device"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, xs: &candle_core::CudaStorage, xl: &Layout, ws: &candle_core::CudaStorage, wl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        #[cfg(feature = "cudnn")]
        {
            super::cuda::conv::forward(xs, xl, ws, wl, self.params)
        }
        #[cfg(not(feature = "cudnn"))]
        {
            let _ = (xs, xl, ws, wl);
            let y = take_precomputed(self)?;
            let (storage, layout) = y.storage_and_layout();
            match &*storage {
                Storage::Cuda(s) => Ok((s.try_clone(layout)?, y.shape().clone())),
                _ => candle_core::bail!("conv2d: forward result on the wrong device"),
            }
        }
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let d_x = if x.track_op() { Some(input_gradient(x, w, &grad, self.params)?) } else { None };
        let d_w = if w.track_op() { Some(weight_grad(x, w, &grad, self.params)?) } else { None };
        Ok((d_x, d_w))
    }
}

/// dL/dx [`input`] from (grad [N, O, OH, OW], w): our CPU kernels or cuDNN.
struct BackwardData {
    params: ConvParams,
    input: Shape,
}

/// dL/dw [`weight`] from (x, grad [N, O, OH, OW]): our CPU kernels or cuDNN.
struct BackwardFilter {
    params: ConvParams,
    weight: Shape,
}

impl CustomOp2 for BackwardData {
    fn name(&self) -> &'static str {
        "conv2d-backward-data"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(self.input.dims4()?, wl.shape().dims4()?, self.params)?;
        if gl.shape().dims4()? != (g.n, g.o, g.oh, g.ow) {
            candle_core::bail!("conv2d backward: gradient shape {:?} does not match the forward output", gl.shape());
        }
        let dx = cpu_slices!("conv2d backward-data", gs, gl, ws, wl, |dy, w| cpu::conv::backward_data(dy, w, &g)?);
        Ok((dx, self.input.clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, gs: &candle_core::CudaStorage, gl: &Layout, ws: &candle_core::CudaStorage, wl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        #[cfg(feature = "cudnn")]
        {
            super::cuda::conv::backward_data(gs, gl, ws, wl, self.params, &self.input)
        }
        #[cfg(not(feature = "cudnn"))]
        {
            let _ = (gs, gl, ws, wl);
            candle_core::bail!("conv2d-backward-data on CUDA needs the cudnn feature")
        }
    }
}

impl CustomOp2 for BackwardFilter {
    fn name(&self) -> &'static str {
        "conv2d-backward-filter"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(xl.shape().dims4()?, self.weight.dims4()?, self.params)?;
        if gl.shape().dims4()? != (g.n, g.o, g.oh, g.ow) {
            candle_core::bail!("conv2d backward: gradient shape {:?} does not match the forward output", gl.shape());
        }
        let dw = cpu_slices!("conv2d backward-filter", xs, xl, gs, gl, |x, dy| cpu::conv::backward_filter(x, dy, &g)?);
        Ok((dw, self.weight.clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, xs: &candle_core::CudaStorage, xl: &Layout, gs: &candle_core::CudaStorage, gl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        #[cfg(feature = "cudnn")]
        {
            super::cuda::conv::backward_filter(xs, xl, gs, gl, self.params, &self.weight)
        }
        #[cfg(not(feature = "cudnn"))]
        {
            let _ = (xs, xl, gs, gl);
            candle_core::bail!("conv2d-backward-filter on CUDA needs the cudnn feature")
        }
    }
}

/// dL/dx of conv2d(x, w) from the output gradient (x only gives the shape and device).
pub(crate) fn input_gradient(x: &Tensor, w: &Tensor, grad: &Tensor, params: ConvParams) -> Result<Tensor> {
    if uses_cpu_kernels(x) || uses_cudnn(x) {
        return grad.apply_op2_no_bwd(&w.contiguous()?, &BackwardData { params, input: x.shape().clone() });
    }
    // conv_transpose2d's output is (g - 1) * stride - 2 * padding + k + out_padding, with one
    // out_padding for both dims: take the larger and drop the extra row or column (it would be
    // the gradient of positions past the input).
    let (_, _, h, w_in) = x.dims4()?;
    let (_, _, g_h, g_w) = grad.dims4()?;
    let (_, _, k_h, k_w) = w.dims4()?;
    let pad_h = h + 2 * params.padding - ((g_h - 1) * params.stride + k_h);
    let pad_w = w_in + 2 * params.padding - ((g_w - 1) * params.stride + k_w);
    let dx = grad.conv_transpose2d(&w.detach(), params.padding, pad_h.max(pad_w), params.stride, 1)?;
    if dx.dim(2)? == h && dx.dim(3)? == w_in {
        Ok(dx)
    } else {
        dx.narrow(2, 0, h)?.narrow(3, 0, w_in)?.contiguous()
    }
}

pub(crate) fn weight_grad(x: &Tensor, w: &Tensor, grad: &Tensor, params: ConvParams) -> Result<Tensor> {
    if uses_cpu_kernels(x) || uses_cudnn(x) {
        return x.contiguous()?.apply_op2_no_bwd(grad, &BackwardFilter { params, weight: w.shape().clone() });
    }
    // dW[o, i] = sum_n x[n, i] (*) g[n, o] with the stride as dilation (as Candle's backprop).
    let (_, _, k_h, k_w) = w.dims4()?;
    let g = x.detach().transpose(0, 1)?.conv2d(&grad.transpose(0, 1)?, params.padding, 1, params.stride, 1)?.transpose(0, 1)?;
    g.narrow(2, 0, k_h)?.narrow(3, 0, k_w)?.contiguous()
}

/// conv2d(x [N, C, H, W], w [O, C, KH, KW]); gradients flow to whichever of x and w is tracked.
pub fn conv2d(x: &Tensor, w: &Tensor, params: ConvParams) -> Result<Tensor> {
    let (_, c, h, width) = x.dims4()?;
    let (_, wc, kh, kw) = w.dims4()?;
    if c != wc {
        candle_core::bail!("conv2d: input has {c} channels, the kernel expects {wc}");
    }
    params.out_size(h, kh)?;
    params.out_size(width, kw)?;
    let own_forward = (uses_cpu_kernels(x) && x.dtype() == w.dtype()) || uses_cudnn(x);
    if !x.track_op() && !w.track_op() && !own_forward {
        return x.conv2d(w, params.padding, params.stride, 1, 1);
    }
    let precomputed = if own_forward { None } else { Some(x.detach().conv2d(&w.detach(), params.padding, params.stride, 1, 1)?) };
    let op = Conv2dOp { params, precomputed: Mutex::new(precomputed) };
    if x.track_op() || w.track_op() {
        x.contiguous()?.apply_op2(&w.contiguous()?, op)
    } else {
        x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &op)
    }
}
