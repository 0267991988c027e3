//! conv2d forward, backward-data and backward-filter through cuDNN (NCHW, groups 1).
//!
//! cuDNN handles are per thread (they are neither Send nor Sync) and bound to the device's
//! stream, like Candle's own. Algorithms come from cuDNN's heuristics once per shape and are
//! cached; workspaces are allocated from the stream-ordered pool per call (no zero fill).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::cuda_backend::cudarc::cudnn::{self, sys, ConvBackwardData, ConvBackwardFilter, ConvForward, Cudnn, CudnnDataType};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr};
use candle_core::cuda_backend::{CudaStorageSlice, DeviceId};
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape, WithDType};
use half::{bf16, f16};

use super::{alloc_like, contiguous};
use crate::ops::conv::{tf32_enabled, ConvParams};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Pass {
    Forward,
    BackwardData,
    BackwardFilter,
}

/// Everything an algorithm choice depends on.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct AlgoKey {
    device: DeviceId,
    pass: Pass,
    dtype: sys::cudnnDataType_t,
    x: [i32; 4],
    w: [i32; 4],
    params: ConvParams,
    math: sys::cudnnMathType_t,
}

thread_local! {
    static HANDLES: RefCell<HashMap<DeviceId, Arc<Cudnn>>> = RefCell::new(HashMap::new());
    static ALGOS: RefCell<HashMap<AlgoKey, Algo>> = RefCell::new(HashMap::new());
}

fn handle(dev: &CudaDevice) -> Result<Arc<Cudnn>> {
    HANDLES.with(|handles| {
        if let Some(h) = handles.borrow().get(&dev.id()) {
            return Ok(h.clone());
        }
        let h = Cudnn::new(dev.cuda_stream()).map_err(candle_core::Error::wrap)?;
        handles.borrow_mut().insert(dev.id(), h.clone());
        Ok(h)
    })
}

/// float32 is strict FMA math unless TF32 is enabled; half types use tensor cores.
fn math_type<T: CudnnDataType>() -> sys::cudnnMathType_t {
    match T::DATA_TYPE {
        sys::cudnnDataType_t::CUDNN_DATA_FLOAT if !tf32_enabled() => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        sys::cudnnDataType_t::CUDNN_DATA_FLOAT => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
        _ => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
    }
}

fn wrap<T>(r: std::result::Result<T, cudnn::CudnnError>) -> Result<T> {
    r.map_err(candle_core::Error::wrap)
}

/// cuDNN takes each dimension as an `int`: checked.
fn dims4(shape: &Shape) -> Result<[i32; 4]> {
    let (a, b, c, d) = shape.dims4()?;
    Ok([super::int("N", a)?, super::int("C", b)?, super::int("H", c)?, super::int("W", d)?])
}

/// The descriptors of one convolution: x [N, C, H, W], w [O, C, KH, KW], y [N, O, OH, OW].
struct Problem {
    x: [i32; 4],
    w: [i32; 4],
    params: ConvParams,
}

impl Problem {
    fn y(&self) -> Result<[i32; 4]> {
        let out_h = self.params.out_size(self.x[2] as usize, self.w[2] as usize)?;
        let out_w = self.params.out_size(self.x[3] as usize, self.w[3] as usize)?;
        Ok([self.x[0], self.w[0], super::int("output height", out_h)?, super::int("output width", out_w)?])
    }
}

/// Runs `f` with the descriptors for `problem` in dtype T and the cached algorithm chooser.
macro_rules! with_descriptors {
    ($T:ty, $dev:expr, $problem:expr, $pass:expr, |$conv:ident, $x:ident, $w:ident, $y:ident, $key:ident| $body:expr) => {{
        let cudnn = handle($dev)?;
        let p = $problem;
        let pad = p.params.padding as i32;
        let stride = p.params.stride as i32;
        let mut $conv = wrap(cudnn.create_conv2d::<f32>([pad, pad], [stride, stride], [1, 1], sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION))?;
        let math = math_type::<$T>();
        wrap($conv.set_math_type(math))?;
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let $x = wrap(cudnn.create_4d_tensor::<$T>(nchw, p.x))?;
        let $w = wrap(cudnn.create_4d_filter::<$T>(nchw, p.w))?;
        let $y = wrap(cudnn.create_4d_tensor::<$T>(nchw, p.y()?))?;
        let $key = AlgoKey { device: $dev.id(), pass: $pass, dtype: <$T as CudnnDataType>::DATA_TYPE, x: p.x, w: p.w, params: p.params, math };
        $body
    }};
}

/// A cuDNN algorithm of one of the three passes.
#[derive(Clone, Copy)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    BackwardData(sys::cudnnConvolutionBwdDataAlgo_t),
    BackwardFilter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

fn cached_algo(key: AlgoKey, pick: impl FnOnce() -> Result<Algo>) -> Result<Algo> {
    if let Some(a) = ALGOS.with(|m| m.borrow().get(&key).copied()) {
        return Ok(a);
    }
    let a = pick()?;
    ALGOS.with(|m| m.borrow_mut().insert(key, a));
    Ok(a)
}

fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    // SAFETY: cuDNN's scratch space; nothing reads it before cuDNN writes it.
    Ok(if bytes == 0 { None } else { Some(unsafe { dev.alloc::<u8>(bytes)? }) })
}

fn forward_typed<T: DeviceRepr + CudnnDataType + WithDType>(dev: &CudaDevice, x: &CudaView<T>, w: &CudaView<T>, problem: &Problem) -> Result<CudaSlice<T>> {
    let y_len: usize = problem.y()?.iter().map(|&d| d as usize).product();
    let mut out = alloc_like::<T>(dev, y_len)?;
    with_descriptors!(T, dev, problem, Pass::Forward, |conv, xd, wd, yd, key| {
        let op = ConvForward { conv: &conv, x: &xd, w: &wd, y: &yd };
        let Algo::Forward(algo) = cached_algo(key, || Ok(Algo::Forward(wrap(op.pick_algorithm())?)))? else { unreachable!("keyed by pass") };
        let mut ws = workspace(dev, wrap(op.get_workspace_size(algo))?)?;
        // SAFETY: buffers match the descriptors (contiguous NCHW of these shapes, dtype T).
        wrap(unsafe { op.launch(algo, ws.as_mut(), (T::from_f64(1.0), T::from_f64(0.0)), x, w, &mut out) })?;
    });
    Ok(out)
}

fn backward_data_typed<T: DeviceRepr + CudnnDataType + WithDType>(
    dev: &CudaDevice,
    g: &CudaView<T>,
    w: &CudaView<T>,
    problem: &Problem,
) -> Result<CudaSlice<T>> {
    let x_len: usize = problem.x.iter().map(|&d| d as usize).product();
    let mut dx = alloc_like::<T>(dev, x_len)?;
    with_descriptors!(T, dev, problem, Pass::BackwardData, |conv, xd, wd, yd, key| {
        let op = ConvBackwardData { conv: &conv, dx: &xd, w: &wd, dy: &yd };
        let Algo::BackwardData(algo) = cached_algo(key, || Ok(Algo::BackwardData(wrap(op.pick_algorithm())?)))? else { unreachable!("keyed by pass") };
        let mut ws = workspace(dev, wrap(op.get_workspace_size(algo))?)?;
        // SAFETY: buffers match the descriptors; beta = 0 overwrites every element of dx.
        wrap(unsafe { op.launch(algo, ws.as_mut(), (T::from_f64(1.0), T::from_f64(0.0)), &mut dx, w, g) })?;
    });
    Ok(dx)
}

fn backward_filter_typed<T: DeviceRepr + CudnnDataType + WithDType>(
    dev: &CudaDevice,
    x: &CudaView<T>,
    g: &CudaView<T>,
    problem: &Problem,
) -> Result<CudaSlice<T>> {
    let w_len: usize = problem.w.iter().map(|&d| d as usize).product();
    let mut dw = alloc_like::<T>(dev, w_len)?;
    with_descriptors!(T, dev, problem, Pass::BackwardFilter, |conv, xd, wd, yd, key| {
        let op = ConvBackwardFilter { conv: &conv, x: &xd, dw: &wd, dy: &yd };
        let Algo::BackwardFilter(algo) = cached_algo(key, || Ok(Algo::BackwardFilter(wrap(op.pick_algorithm())?)))? else { unreachable!("keyed by pass") };
        let mut ws = workspace(dev, wrap(op.get_workspace_size(algo))?)?;
        // SAFETY: buffers match the descriptors; beta = 0 overwrites every element of dw.
        wrap(unsafe { op.launch(algo, ws.as_mut(), (T::from_f64(1.0), T::from_f64(0.0)), x, &mut dw, g) })?;
    });
    Ok(dw)
}

/// Dispatches a two-input cuDNN call on the dtype both storages share.
macro_rules! dispatch2 {
    ($a:expr, $al:expr, $b:expr, $bl:expr, |$va:ident, $vb:ident| $call:expr) => {
        match (&$a.slice, &$b.slice) {
            (CudaStorageSlice::F32(a), CudaStorageSlice::F32(b)) => {
                let ($va, $vb) = (contiguous(a, $al, "conv2d input")?, contiguous(b, $bl, "conv2d input")?);
                CudaStorageSlice::F32($call)
            }
            (CudaStorageSlice::BF16(a), CudaStorageSlice::BF16(b)) => {
                let ($va, $vb) = (contiguous::<bf16>(a, $al, "conv2d input")?, contiguous::<bf16>(b, $bl, "conv2d input")?);
                CudaStorageSlice::BF16($call)
            }
            (CudaStorageSlice::F16(a), CudaStorageSlice::F16(b)) => {
                let ($va, $vb) = (contiguous::<f16>(a, $al, "conv2d input")?, contiguous::<f16>(b, $bl, "conv2d input")?);
                CudaStorageSlice::F16($call)
            }
            _ => candle_core::bail!("conv2d on CUDA (cuDNN): both inputs must be float32, bfloat16 or float16 of the same dtype"),
        }
    };
}

pub fn forward(xs: &CudaStorage, xl: &Layout, ws: &CudaStorage, wl: &Layout, params: ConvParams) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let problem = Problem { x: dims4(xl.shape())?, w: dims4(wl.shape())?, params };
    let slice = dispatch2!(xs, xl, ws, wl, |x, w| forward_typed(dev, &x, &w, &problem)?);
    let y = problem.y()?.map(|d| d as usize);
    Ok((CudaStorage { slice, device: dev.clone() }, Shape::from(y.to_vec())))
}

/// dL/dx [`input`] from (grad [N, O, OH, OW], w).
pub fn backward_data(gs: &CudaStorage, gl: &Layout, ws: &CudaStorage, wl: &Layout, params: ConvParams, input: &Shape) -> Result<(CudaStorage, Shape)> {
    let dev = &gs.device;
    let problem = Problem { x: dims4(input)?, w: dims4(wl.shape())?, params };
    if problem.y()? != dims4(gl.shape())? {
        candle_core::bail!("conv2d backward: gradient shape {:?} does not match the forward output", gl.shape());
    }
    let slice = dispatch2!(gs, gl, ws, wl, |g, w| backward_data_typed(dev, &g, &w, &problem)?);
    Ok((CudaStorage { slice, device: dev.clone() }, input.clone()))
}

/// dL/dw [`weight`] from (x, grad [N, O, OH, OW]).
pub fn backward_filter(xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout, params: ConvParams, weight: &Shape) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let problem = Problem { x: dims4(xl.shape())?, w: dims4(weight)?, params };
    if problem.y()? != dims4(gl.shape())? {
        candle_core::bail!("conv2d backward: gradient shape {:?} does not match the forward output", gl.shape());
    }
    let slice = dispatch2!(xs, xl, gs, gl, |x, g| backward_filter_typed(dev, &x, &g, &problem)?);
    Ok((CudaStorage { slice, device: dev.clone() }, weight.clone()))
}
