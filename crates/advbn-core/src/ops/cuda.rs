//! Launches of our CUDA kernels (advbn-kernels' PTX) on Candle's CUDA storage.

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaDevice, CudaStorage, Layout, Result, Shape};
use half::bf16;

const MODULE: &str = "advbn";
const THREADS: u32 = 256;

fn contiguous<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout, what: &str) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice(start..end)),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

fn f32_slice<'a>(storage: &'a CudaStorage, layout: &Layout, what: &str) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    match &storage.slice {
        CudaStorageSlice::F32(s) => contiguous(s, layout, what),
        _ => candle_core::bail!("{what} must be float32"),
    }
}

/// Blocks per channel for the two-phase sums: enough blocks to fill the GPU, at most N.
fn sum_chunks(n: usize, c: usize) -> usize {
    n.clamp(1, 1024usize.div_ceil(c).max(1))
}

fn plane_grid(planes: usize, hw: usize) -> LaunchConfig {
    let per_plane = (hw as u32).div_ceil(THREADS).clamp(1, 64);
    LaunchConfig { grid_dim: (planes as u32, per_plane, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 }
}

fn dims(layout: &Layout) -> Result<(usize, usize, usize)> {
    let (n, c, h, w) = layout.shape().dims4()?;
    Ok((n, c, h * w))
}

/// Reduces [K*C, chunks] partials into a new [K*C] buffer scaled by `scale`.
fn reduce(dev: &CudaDevice, partial: &CudaSlice<f32>, kc: usize, chunks: usize, scale: f32) -> Result<CudaSlice<f32>> {
    let func = dev.get_or_load_custom_func("reduce_partials", MODULE, advbn_kernels::ADVBN)?;
    let out = alloc_like::<f32>(dev, kc)?;
    let mut b = func.builder();
    let (kc_i, chunks_i) = (kc as i32, chunks as i32);
    b.arg(partial);
    b.arg(&out);
    b.arg(&kc_i);
    b.arg(&chunks_i);
    b.arg(&scale);
    let cfg = LaunchConfig { grid_dim: ((kc as u32).div_ceil(THREADS), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: argument list matches the kernel signature.
    unsafe { b.launch(cfg) }.w()?;
    Ok(out)
}

fn suffix(storage: &CudaStorage) -> Result<&'static str> {
    match &storage.slice {
        CudaStorageSlice::F32(_) => Ok("f32"),
        CudaStorageSlice::BF16(_) => Ok("bf16"),
        _ => candle_core::bail!("the fused AdvBN kernels support float32 and bfloat16 on CUDA"),
    }
}

/// Pushes a contiguous view of a float32 or bf16 storage as a kernel argument.
macro_rules! with_view {
    ($storage:expr, $layout:expr, $what:expr, |$view:ident| $body:expr) => {
        match &$storage.slice {
            CudaStorageSlice::F32(s) => {
                let $view = contiguous(s, $layout, $what)?;
                $body
            }
            CudaStorageSlice::BF16(s) => {
                let $view = contiguous(s, $layout, $what)?;
                $body
            }
            _ => candle_core::bail!("{}: the fused AdvBN kernels support float32 and bfloat16", $what),
        }
    };
}

pub fn channel_mean(storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
    let dev = &storage.device;
    let (n, c, hw) = dims(layout)?;
    let chunks = sum_chunks(n, c);
    let func = dev.get_or_load_custom_func(&format!("channel_sum_partials_{}", suffix(storage)?), MODULE, advbn_kernels::ADVBN)?;
    let partial = alloc_like::<f32>(dev, c * chunks)?;
    let (n_i, c_i, hw_i, chunks_i) = (n as i32, c as i32, hw as i32, chunks as i32);
    with_view!(storage, layout, "advbn input", |x| {
        let mut b = func.builder();
        b.arg(&x);
        b.arg(&partial);
        b.arg(&n_i);
        b.arg(&c_i);
        b.arg(&hw_i);
        b.arg(&chunks_i);
        let cfg = LaunchConfig { grid_dim: (chunks as u32, c as u32, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: argument list matches the kernel signature.
        unsafe { b.launch(cfg) }.w()?;
    });
    let mean = reduce(dev, &partial, c, chunks, 1.0 / (n * hw) as f32)?;
    Ok((CudaStorage { slice: CudaStorageSlice::F32(mean), device: dev.clone() }, Shape::from(c)))
}

/// Set ADVBN_POISON_OUTPUTS=1 to fill every kernel output with 0xFF bytes (NaN) before the
/// launch, so tests catch elements a kernel forgot to write.
fn poison_outputs() -> bool {
    static POISON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *POISON.get_or_init(|| std::env::var_os("ADVBN_POISON_OUTPUTS").is_some_and(|v| v != "0"))
}

fn alloc_like<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the caller's kernel writes every element (poisoning below checks it in tests).
    let mut slice = unsafe { dev.alloc::<T>(len)? };
    if poison_outputs() {
        let stream = dev.cuda_stream();
        let bytes = len * std::mem::size_of::<T>();
        let (ptr, _sync) = slice.device_ptr_mut(&stream);
        // SAFETY: ptr covers `bytes` bytes of the allocation just made on this stream.
        unsafe { candle_core::cuda_backend::cudarc::driver::result::memset_d8_async(ptr, 0xFF, bytes, stream.cu_stream()) }.w()?;
        drop(_sync);
    }
    Ok(slice)
}

fn wrap_output(dev: &CudaDevice, like: &CudaStorage, len: usize, launch: impl FnOnce(&CudaStorageSlice) -> Result<()>) -> Result<CudaStorage> {
    let slice = match &like.slice {
        CudaStorageSlice::F32(_) => CudaStorageSlice::F32(alloc_like::<f32>(dev, len)?),
        CudaStorageSlice::BF16(_) => CudaStorageSlice::BF16(alloc_like::<bf16>(dev, len)?),
        _ => candle_core::bail!("the fused AdvBN kernels support float32 and bfloat16 on CUDA"),
    };
    launch(&slice)?;
    Ok(CudaStorage { slice, device: dev.clone() })
}

fn push_out<'a>(b: &mut candle_core::cuda_backend::cudarc::driver::LaunchArgs<'a>, out: &'a CudaStorageSlice) -> Result<()> {
    match out {
        CudaStorageSlice::F32(s) => {
            b.arg(s);
        }
        CudaStorageSlice::BF16(s) => {
            b.arg(s);
        }
        _ => candle_core::bail!("unsupported output dtype"),
    }
    Ok(())
}

pub fn advbn_apply(xs: &CudaStorage, xl: &Layout, ps: &CudaStorage, pl: &Layout, relu: bool) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let (n, c, hw) = dims(xl)?;
    let params = f32_slice(ps, pl, "advbn params")?;
    let func = dev.get_or_load_custom_func(&format!("advbn_apply_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let (c_i, hw_i, relu_i) = (c as i32, hw as i32, relu as i32);
    let out = wrap_output(dev, xs, n * c * hw, |out| {
        with_view!(xs, xl, "advbn input", |x| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&params);
            push_out(&mut b, out)?;
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&relu_i);
            // SAFETY: argument list matches the kernel signature.
            unsafe { b.launch(plane_grid(n * c, hw)) }.w()?;
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}

pub fn advbn_grad_sums(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    ps: &CudaStorage,
    pl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let (n, c, hw) = dims(xl)?;
    let chunks = sum_chunks(n, c);
    let params = f32_slice(ps, pl, "advbn params")?;
    let func = dev.get_or_load_custom_func(&format!("advbn_backward_partials_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let partial = alloc_like::<f32>(dev, 2 * c * chunks)?;
    let (n_i, c_i, hw_i, chunks_i, relu_i) = (n as i32, c as i32, hw as i32, chunks as i32, relu as i32);
    with_view!(xs, xl, "advbn input", |x| {
        with_view!(gs, gl, "advbn grad", |g| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&g);
            b.arg(&params);
            b.arg(&partial);
            b.arg(&n_i);
            b.arg(&c_i);
            b.arg(&hw_i);
            b.arg(&chunks_i);
            b.arg(&relu_i);
            let cfg = LaunchConfig { grid_dim: (chunks as u32, c as u32, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: argument list matches the kernel signature.
            unsafe { b.launch(cfg) }.w()?;
        })
    });
    let sums = reduce(dev, &partial, 2 * c, chunks, 1.0)?;
    Ok((CudaStorage { slice: CudaStorageSlice::F32(sums), device: dev.clone() }, Shape::from(2 * c)))
}

pub fn advbn_input_grad(
    xs: &CudaStorage,
    xl: &Layout,
    gs: &CudaStorage,
    gl: &Layout,
    cs: &CudaStorage,
    cl: &Layout,
    relu: bool,
) -> Result<(CudaStorage, Shape)> {
    let dev = &xs.device;
    let (n, c, hw) = dims(xl)?;
    let coeffs = f32_slice(cs, cl, "advbn coefficients")?;
    let sums = coeffs.slice(3 * c..4 * c);
    let params = coeffs.slice(0..3 * c);
    let func = dev.get_or_load_custom_func(&format!("advbn_input_grad_{}", suffix(xs)?), MODULE, advbn_kernels::ADVBN)?;
    let (c_i, hw_i, m_i, relu_i) = (c as i32, hw as i32, (n * hw) as i32, relu as i32);
    let out = wrap_output(dev, xs, n * c * hw, |out| {
        with_view!(xs, xl, "advbn input", |x| {
            with_view!(gs, gl, "advbn grad", |g| {
                let mut b = func.builder();
                b.arg(&x);
                b.arg(&g);
                b.arg(&params);
                b.arg(&sums);
                push_out(&mut b, out)?;
                b.arg(&c_i);
                b.arg(&hw_i);
                b.arg(&m_i);
                b.arg(&relu_i);
                // SAFETY: argument list matches the kernel signature.
                unsafe { b.launch(plane_grid(n * c, hw)) }.w()?;
            })
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}
