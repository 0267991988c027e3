//! The per-channel launches the BatchNorm and AdvBN ops share (the CUDA side of
//! `ops::cpu::channels`). Both ops have a kernel of each kind below, and kernels of one kind take
//! the same arguments, ending in the flags `(float eps, int relu, int train)` (AdvBN's kernels
//! ignore eps and train):
//! - map: `(const T* x, const float* coeffs, T* y, int C, int HW, flags)`, one block row per plane;
//! - pair sums: `(const T* x, const T* g, const float* coeffs, float* partial, int N, int C,
//!   int HW, int chunks, flags)` on a (chunks, C) grid, then reduced in a fixed order to [2C];
//! - gradient map: `(const T* x, const T* g, const float* coeffs, const float* sums, T* dx, int C,
//!   int HW, int M, flags)`, one block row per plane.
//!
//! x and g are contiguous [N, C, H, W] of one dtype (g is the gradient of the op's output, so it
//! has x's shape); coeffs and sums are float32, read at `c < C` per channel field.

use candle_core::cuda_backend::cudarc::driver::{CudaView, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Shape};

use super::{alloc_like, channel_grid, f32_slice, int, plane_grid, push_out, reduce, suffix, sum_chunks, wrap_output, CudaArg, Sizes};

/// One kernel of the kinds above.
pub(crate) struct Kernel {
    /// The PTX module and its source (advbn-kernels).
    pub module: &'static str,
    pub ptx: &'static str,
    /// The kernel's name without its dtype suffix.
    pub name: &'static str,
    /// What it computes, for error messages.
    pub what: &'static str,
    /// Floats per channel the kernel reads from `coeffs` (C-long fields, one after another).
    pub coeffs: usize,
    /// Floats per channel it reads from `sums` (gradient maps).
    pub sums: usize,
}

/// The flags every kernel of these kinds ends with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flags {
    pub eps: f32,
    pub relu: bool,
    pub train: bool,
}

impl Kernel {
    /// The kernel's name for the dtype of `xs` (loaded where it is used: Candle does not export
    /// the type of a loaded function).
    fn name_for(&self, xs: &CudaStorage) -> Result<String> {
        Ok(format!("{}_{}", self.name, suffix(xs)?))
    }

    /// Refuses `coeffs` shorter than the fields the kernel reads, so the launches below index in range.
    fn check(&self, what: &str, coeffs: &CudaView<f32>, fields: usize, c: usize) -> Result<()> {
        if coeffs.len() < fields * c {
            candle_core::bail!("{what}: {} needs {fields} floats per channel ({} for {c} channels), got {}", self.name, fields * c, coeffs.len());
        }
        Ok(())
    }
}

/// Refuses a gradient whose shape or dtype is not the input's (the kernels index both alike).
fn like_input(what: &str, xs: &CudaStorage, xl: &Layout, gs: &CudaStorage, gl: &Layout) -> Result<()> {
    use candle_core::backend::BackendStorage;
    if gl.shape() != xl.shape() || gs.dtype() != xs.dtype() {
        candle_core::bail!("{what}: gradient {:?} {:?} and input {:?} {:?} differ", gs.dtype(), gl.shape(), xs.dtype(), xl.shape());
    }
    Ok(())
}

/// y = the kernel's map of x, per plane.
pub(crate) fn map(k: &Kernel, (xs, xl): CudaArg, (cs, cl): CudaArg, flags: Flags) -> Result<(CudaStorage, Shape)> {
    let what = k.what;
    let coeffs = f32_slice(cs, cl, what)?;
    let size = Sizes::of(xl)?;
    k.check(what, &coeffs, k.coeffs, size.c)?;
    let func = xs.device.get_or_load_custom_func(&k.name_for(xs)?, k.module, k.ptx)?;
    let (eps, relu, train) = (flags.eps, flags.relu as i32, flags.train as i32);
    let grid = plane_grid(size.n * size.c, size.hw)?;
    let out = wrap_output(&xs.device, xs, size.n * size.c * size.hw, |out| {
        with_view!(xs, xl, what, |x| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&coeffs);
            push_out(&mut b, out)?;
            b.arg(&size.c_i);
            b.arg(&size.hw_i);
            b.arg(&eps);
            b.arg(&relu);
            b.arg(&train);
            // SAFETY: the pushed arguments are a map kernel's (x, coeffs, y, C, HW, eps, relu, train), in order
            // (module docs), with T the dtype `suffix` named, which `wrap_output` allocated y in. The grid
            // has N * C block rows and `for_each_in_plane` stops at HW, so x and y (N * C * HW elements each)
            // are indexed in range; coeffs holds the k.coeffs * C floats the kernel reads (checked above).
            unsafe { b.launch(grid) }.w()?;
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}

/// [first sum (C), second sum (C)] float32: the kernel's partials per (chunk, channel), reduced.
pub(crate) fn pair_sums(k: &Kernel, (xs, xl): CudaArg, (gs, gl): CudaArg, (cs, cl): CudaArg, flags: Flags) -> Result<(CudaStorage, Shape)> {
    let what = k.what;
    let coeffs = f32_slice(cs, cl, what)?;
    let dev = &xs.device;
    let size = Sizes::of(xl)?;
    like_input(what, xs, xl, gs, gl)?;
    k.check(what, &coeffs, k.coeffs, size.c)?;
    let func = xs.device.get_or_load_custom_func(&k.name_for(xs)?, k.module, k.ptx)?;
    let chunks = sum_chunks(size.n, size.c);
    let partial = alloc_like::<f32>(dev, 2 * size.c * chunks)?;
    let chunks_i = int("chunks", chunks)?;
    let (eps, relu, train) = (flags.eps, flags.relu as i32, flags.train as i32);
    let grid = channel_grid(chunks, size.c)?;
    with_view!(xs, xl, what, |x| {
        with_view!(gs, gl, what, |g| {
            let mut b = func.builder();
            b.arg(&x);
            b.arg(&g);
            b.arg(&coeffs);
            b.arg(&partial);
            b.arg(&size.n_i);
            b.arg(&size.c_i);
            b.arg(&size.hw_i);
            b.arg(&chunks_i);
            b.arg(&eps);
            b.arg(&relu);
            b.arg(&train);
            // SAFETY: the pushed arguments are a pair-sums kernel's (x, g, coeffs, partial, N, C, HW, chunks,
            // eps, relu, train), in order (module docs). The (chunks, C) grid is what `channel_pair_partials`
            // expects: it reads planes n < N, elements p < HW of x and g (N * C * HW elements each: g has x's
            // shape and dtype, checked above) and writes
            // partial[(k * C + c) * chunks + chunk] for k < 2, inside the 2 * C * chunks floats allocated
            // above; coeffs holds the k.coeffs * C floats the kernel reads (checked above).
            unsafe { b.launch(grid) }.w()?;
        })
    });
    let sums = reduce(dev, &partial, 2 * size.c, chunks, 1.0)?;
    Ok((CudaStorage { slice: CudaStorageSlice::F32(sums), device: dev.clone() }, Shape::from(2 * size.c)))
}

/// dx = the kernel's gradient map, per plane; `packed` = coeffs (k.coeffs * C) ++ sums (k.sums * C).
pub(crate) fn grad_map(k: &Kernel, (xs, xl): CudaArg, (gs, gl): CudaArg, (ps, pl): CudaArg, flags: Flags) -> Result<(CudaStorage, Shape)> {
    let what = k.what;
    let packed = f32_slice(ps, pl, what)?;
    let size = Sizes::of(xl)?;
    like_input(what, xs, xl, gs, gl)?;
    k.check(what, &packed, k.coeffs + k.sums, size.c)?;
    let (coeffs, sums) = (packed.slice(0..k.coeffs * size.c), packed.slice(k.coeffs * size.c..(k.coeffs + k.sums) * size.c));
    let func = xs.device.get_or_load_custom_func(&k.name_for(xs)?, k.module, k.ptx)?;
    let (eps, relu, train) = (flags.eps, flags.relu as i32, flags.train as i32);
    let grid = plane_grid(size.n * size.c, size.hw)?;
    let out = wrap_output(&xs.device, xs, size.n * size.c * size.hw, |out| {
        with_view!(xs, xl, what, |x| {
            with_view!(gs, gl, what, |g| {
                let mut b = func.builder();
                b.arg(&x);
                b.arg(&g);
                b.arg(&coeffs);
                b.arg(&sums);
                push_out(&mut b, out)?;
                b.arg(&size.c_i);
                b.arg(&size.hw_i);
                b.arg(&size.m_i);
                b.arg(&eps);
                b.arg(&relu);
                b.arg(&train);
                // SAFETY: the pushed arguments are a gradient-map kernel's (x, g, coeffs, sums, dx, C, HW, M, eps,
                // relu, train), in order (module docs), with T the dtype `suffix` named, which `wrap_output`
                // allocated dx in. The grid has N * C block rows and `for_each_in_plane` stops at HW, so x, g and
                // dx (N * C * HW elements; g has x's shape and dtype, checked above) are indexed in range; coeffs and sums
                // are the k.coeffs * C and k.sums * C float views cudarc's `slice` bounds-checked (the packed
                // length was checked above).
                unsafe { b.launch(grid) }.w()?;
            })
        });
        Ok(())
    })?;
    Ok((out, xl.shape().clone()))
}
