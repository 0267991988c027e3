//! Launches of our CUDA kernels (advbn-kernels' PTX) on Candle's CUDA storage: shared helpers
//! here, one submodule per op.

use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaDevice, CudaStorage, Layout, Result};
use half::bf16;

/// Pushes a contiguous view of a float32 or bf16 storage as a kernel argument.
macro_rules! with_view {
    ($storage:expr, $layout:expr, $what:expr, |$view:ident| $body:expr) => {
        match &$storage.slice {
            CudaStorageSlice::F32(s) => {
                let $view = $crate::ops::cuda::contiguous(s, $layout, $what)?;
                $body
            }
            CudaStorageSlice::BF16(s) => {
                let $view = $crate::ops::cuda::contiguous(s, $layout, $what)?;
                $body
            }
            _ => candle_core::bail!("{}: the fused AdvBN kernels support float32 and bfloat16", $what),
        }
    };
}

// Declared after the macro so the submodules see it.
pub mod advbn;
pub mod batch_norm;
pub mod channels;
#[cfg(feature = "cudnn")]
pub mod conv;
pub mod max_pool;
pub mod optim;

pub(crate) const THREADS: u32 = 256;

/// A kernel input: its storage and layout.
pub(crate) type CudaArg<'a> = (&'a CudaStorage, &'a Layout);

pub(crate) fn contiguous<'a, T>(slice: &'a CudaSlice<T>, layout: &Layout, what: &str) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(slice.slice(start..end)),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

pub(crate) fn f32_slice<'a>(storage: &'a CudaStorage, layout: &Layout, what: &str) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, f32>> {
    match &storage.slice {
        CudaStorageSlice::F32(s) => contiguous(s, layout, what),
        _ => candle_core::bail!("{what} must be float32"),
    }
}

/// Blocks per channel for the two-phase sums: enough blocks to fill the GPU, at most N.
pub(crate) fn sum_chunks(n: usize, c: usize) -> usize {
    n.clamp(1, 1024usize.div_ceil(c).max(1))
}

/// A size the kernels take as an `int`, checked.
pub(crate) fn int(what: &str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| candle_core::Error::Msg(format!("{what} = {value} exceeds the CUDA kernels' int range ({})", i32::MAX)))
}

/// The sizes of an NCHW tensor, and the kernels' `int`s of them, checked once: N, C, H*W and a
/// channel's element count N*H*W each fit an `int`, and the N*C planes a grid's x dimension.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub n_i: i32,
    pub c_i: i32,
    pub hw_i: i32,
    /// N * H * W: the elements of one channel.
    pub m_i: i32,
}

impl Sizes {
    pub(crate) fn of(layout: &Layout) -> Result<Self> {
        let (n, c, hw) = super::storage::nchw(layout)?;
        let m = n.saturating_mul(hw);
        int("N * C planes", n.saturating_mul(c))?;
        Ok(Self { n, c, hw, n_i: int("N", n)?, c_i: int("C", c)?, hw_i: int("H * W", hw)?, m_i: int("N * H * W", m)? })
    }
}

/// Grid for the two-phase per-channel sums: (chunks, C) blocks of THREADS. C is a grid's y
/// dimension, which CUDA caps at 65535.
pub(crate) fn channel_grid(chunks: usize, c: usize) -> Result<LaunchConfig> {
    const MAX_Y: usize = 65_535;
    if c > MAX_Y {
        candle_core::bail!("{c} channels: the CUDA per-channel sums launch one block row per channel, at most {MAX_Y}");
    }
    Ok(LaunchConfig { grid_dim: (int("chunks", chunks)? as u32, c as u32, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 })
}

/// One block row per plane (`planes` checked by `Sizes::of` or the caller to fit an `int`), up
/// to 64 blocks along each plane.
pub(crate) fn plane_grid(planes: usize, hw: usize) -> Result<LaunchConfig> {
    let planes = u32::try_from(planes).ok().filter(|&p| p <= i32::MAX as u32);
    let Some(planes) = planes else { candle_core::bail!("more planes than a CUDA grid's x dimension holds ({})", i32::MAX) };
    let per_plane = hw.div_ceil(THREADS as usize).clamp(1, 64) as u32;
    Ok(LaunchConfig { grid_dim: (planes, per_plane, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 })
}

/// Reduces [K*C, chunks] partials into a new [K*C] buffer scaled by `scale`.
pub(crate) fn reduce(dev: &CudaDevice, partial: &CudaSlice<f32>, kc: usize, chunks: usize, scale: f32) -> Result<CudaSlice<f32>> {
    let func = dev.get_or_load_custom_func("reduce_partials", advbn::MODULE, advbn_kernels::ADVBN)?;
    let out = alloc_like::<f32>(dev, kc)?;
    let mut b = func.builder();
    let (kc_i, chunks_i) = (int("K * C", kc)?, int("chunks", chunks)?);
    b.arg(partial);
    b.arg(&out);
    b.arg(&kc_i);
    b.arg(&chunks_i);
    b.arg(&scale);
    // KC fits an int, so its block count fits the grid's x dimension.
    let cfg = LaunchConfig { grid_dim: ((kc_i as u32).div_ceil(THREADS), 1, 1), block_dim: (THREADS, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: the pushed arguments are reduce_partials' (const float* partial, float* out, int KC, int
    // chunks, float scale), in order. Threads with i >= KC return; the others read
    // partial[i * chunks + j] for j < chunks, inside the KC * chunks floats every caller's partial
    // buffer holds (2 * C * chunks with KC = 2C), and write out[i] inside the KC floats allocated above.
    unsafe { b.launch(cfg) }.w()?;
    Ok(out)
}

pub(crate) fn suffix(storage: &CudaStorage) -> Result<&'static str> {
    match &storage.slice {
        CudaStorageSlice::F32(_) => Ok("f32"),
        CudaStorageSlice::BF16(_) => Ok("bf16"),
        _ => candle_core::bail!("the fused AdvBN kernels support float32 and bfloat16 on CUDA"),
    }
}

/// Set ADVBN_POISON_OUTPUTS=1 to fill every kernel output with 0xFF bytes (NaN) before the
/// launch, so tests catch elements a kernel forgot to write.
pub(crate) fn poison_outputs() -> bool {
    static POISON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *POISON.get_or_init(|| std::env::var_os("ADVBN_POISON_OUTPUTS").is_some_and(|v| v != "0"))
}

pub(crate) fn alloc_like<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
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

pub(crate) fn wrap_output(dev: &CudaDevice, like: &CudaStorage, len: usize, launch: impl FnOnce(&CudaStorageSlice) -> Result<()>) -> Result<CudaStorage> {
    let slice = match &like.slice {
        CudaStorageSlice::F32(_) => CudaStorageSlice::F32(alloc_like::<f32>(dev, len)?),
        CudaStorageSlice::BF16(_) => CudaStorageSlice::BF16(alloc_like::<bf16>(dev, len)?),
        _ => candle_core::bail!("the fused AdvBN kernels support float32 and bfloat16 on CUDA"),
    };
    launch(&slice)?;
    Ok(CudaStorage { slice, device: dev.clone() })
}

pub(crate) fn push_out<'a>(b: &mut candle_core::cuda_backend::cudarc::driver::LaunchArgs<'a>, out: &'a CudaStorageSlice) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_grids_refuse_what_the_kernels_cannot_index() {
        let layout = |dims: &[usize]| Layout::contiguous(dims);
        let s = Sizes::of(&layout(&[2, 3, 4, 5])).unwrap();
        assert_eq!((s.n, s.c, s.hw, s.n_i, s.c_i, s.hw_i, s.m_i), (2, 3, 20, 2, 3, 20, 40));
        // A channel of more than i32::MAX elements, and more planes than the grid holds.
        assert!(Sizes::of(&layout(&[1 << 16, 1, 1 << 8, 1 << 8])).unwrap_err().to_string().contains("N * H * W"));
        assert!(Sizes::of(&layout(&[1 << 20, 1 << 12, 1, 1])).unwrap_err().to_string().contains("planes"));
        assert!(channel_grid(4, 65_535).is_ok());
        assert!(channel_grid(4, 65_536).unwrap_err().to_string().contains("65535"));
        assert_eq!(plane_grid(6, 1000).unwrap().grid_dim, (6, 4, 1));
        assert!(plane_grid(usize::MAX, 1).is_err());
    }
}
