//! 2-d max-pooling with a real backward for any kernel, stride and padding (Candle's
//! max_pool2d has none when kernel != stride, e.g. ResNet's 3x3 stride-2 stem pool).
//!
//! PyTorch semantics (`torch.nn.functional.max_pool2d`, dilation 1, ceil_mode false):
//! - output size floor((H + 2p - k) / s) + 1; padding counts as -inf and must be <= k / 2, so
//!   every window holds at least one real element;
//! - the argmax is the first maximum in the window's row-major order; a NaN wins over any
//!   number (the last NaN of the window, as PyTorch's `val > max || isnan(val)` scan picks),
//!   so NaN propagates to the output and its gradient goes to that NaN's position.
//!
//! The backward is a second op, (x, grad_out) -> grad_in, that recomputes each window's argmax
//! from x (nothing is saved by the forward) and sums, for every input element, the gradients
//! of the windows whose argmax it is, in increasing output order. On CUDA every input element
//! gathers them itself (deterministic, no atomics); on the CPU one pass over the windows of a
//! plane adds them in the same order. Gradients are summed in float32 (float64 for float64).
//!
//! The CPU path splits planes across threads for large inputs (std threads, Candle's thread
//! count); planes are independent, so results do not depend on the thread count.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor, WithDType};

/// `MaxPool2d { kernel, stride, padding }` over x [N, C, H, W] (square windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// (x, grad_out) -> grad_in of [`MaxPool2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2dGrad {
    pub pool: MaxPool2d,
}

/// Sizes of one pooling call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl PoolGeometry {
    pub fn planes(&self) -> usize {
        self.n * self.c
    }

    pub fn out_shape(&self) -> Shape {
        Shape::from((self.n, self.c, self.oh, self.ow))
    }
}

impl MaxPool2d {
    /// Checks the arguments alone (not the input size).
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Result<Self> {
        let pool = Self { kernel, stride, padding };
        pool.check()?;
        Ok(pool)
    }

    fn check(&self) -> Result<()> {
        let Self { kernel, stride, padding } = *self;
        if kernel == 0 {
            candle_core::bail!("max_pool2d: kernel size must be >= 1, got 0");
        }
        if stride == 0 {
            candle_core::bail!("max_pool2d: stride must be >= 1, got 0");
        }
        if padding > kernel / 2 {
            candle_core::bail!("max_pool2d: padding must be at most half the kernel size, got padding {padding} for kernel {kernel}");
        }
        Ok(())
    }

    /// Output (height, width) for an input of `h` x `w`, or an error if it would be empty.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        self.check()?;
        let Self { kernel, stride, padding } = *self;
        if h == 0 || w == 0 || h + 2 * padding < kernel || w + 2 * padding < kernel {
            candle_core::bail!("max_pool2d: input {h}x{w} (padding {padding}) is smaller than the {kernel}x{kernel} kernel: the output would be empty");
        }
        Ok(((h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1))
    }

    pub(crate) fn geometry(&self, shape: &Shape) -> Result<PoolGeometry> {
        let &[n, c, h, w] = shape.dims() else {
            candle_core::bail!("max_pool2d: input must be [N, C, H, W], got shape {:?}", shape.dims());
        };
        let (oh, ow) = self.output_size(h, w)?;
        Ok(PoolGeometry { n, c, h, w, oh, ow, kernel: self.kernel, stride: self.stride, padding: self.padding })
    }
}

/// Element types the CPU path handles, with the type their values are compared in: f32 for
/// f32, bf16 and f16 (exact), f64 for f64.
trait PoolElem: WithDType {
    type Key: ScanKey;
    fn key(self) -> Self::Key;
    /// Rounds a gradient sum (accumulated in the key type) to the element type.
    fn from_key(k: Self::Key) -> Self;
}

trait ScanKey: Copy + Default + std::ops::AddAssign {
    const NEG_INF: Self;
    /// All ones when `v` takes over from `best` (`v > best || isnan(v)`), else 0.
    fn take(v: Self, best: Self) -> u32;
    /// `if m != 0 { a } else { b }` as bit operations: the scan loop stays branch-free and
    /// vectorizes (a plain `if` there becomes per-lane conditional stores).
    fn select(m: u32, a: Self, b: Self) -> Self;
}

impl ScanKey for f32 {
    const NEG_INF: f32 = f32::NEG_INFINITY;
    #[inline(always)]
    fn take(v: f32, best: f32) -> u32 {
        ((v > best) | v.is_nan()) as u32 * u32::MAX
    }
    #[inline(always)]
    fn select(m: u32, a: f32, b: f32) -> f32 {
        f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
}

impl ScanKey for f64 {
    const NEG_INF: f64 = f64::NEG_INFINITY;
    #[inline(always)]
    fn take(v: f64, best: f64) -> u32 {
        ((v > best) | v.is_nan()) as u32 * u32::MAX
    }
    #[inline(always)]
    fn select(m: u32, a: f64, b: f64) -> f64 {
        let m = (m as u64) | ((m as u64) << 32);
        f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
    }
}

impl PoolElem for f32 {
    type Key = f32;
    #[inline(always)]
    fn key(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_key(k: f32) -> f32 {
        k
    }
}

impl PoolElem for f64 {
    type Key = f64;
    #[inline(always)]
    fn key(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_key(k: f64) -> f64 {
        k
    }
}

impl PoolElem for half::bf16 {
    type Key = f32;
    #[inline(always)]
    fn key(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn from_key(k: f32) -> Self {
        Self::from_f32(k)
    }
}

impl PoolElem for half::f16 {
    type Key = f32;
    #[inline(always)]
    fn key(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn from_key(k: f32) -> Self {
        Self::from_f32(k)
    }
}

/// Finds the argmax of every window of one output row at a time. A plane is first split by
/// column phase (column mod stride) into contiguous rows of keys, so for each input row and
/// kernel column the windows of an output row read a contiguous run: one branch-free,
/// vectorizable loop per (input row, kernel column) instead of a loop per window.
struct Scanner<K> {
    g: PoolGeometry,
    /// Clipped input rows [start, end) of each output row.
    rows: Vec<(usize, usize)>,
    /// First real column of each output column's window.
    first_col: Vec<u32>,
    /// For each kernel column dx, the output columns [lo, hi) whose column ow*s - p + dx is real.
    dx_outputs: Vec<(usize, usize)>,
    /// Row length of a phase: ceil(W / s).
    phase_w: usize,
    /// keys[(phase * H + y) * phase_w + j] = key of x[y, j * s + phase].
    keys: Vec<K>,
    best: Vec<K>,
    /// Argmax of each window of the current output row, as an index into the plane.
    idx: Vec<u32>,
}

impl<K: ScanKey> Scanner<K> {
    fn new(g: &PoolGeometry) -> Self {
        let (k, s, p) = (g.kernel, g.stride, g.padding);
        let rows = (0..g.oh).map(|o| ((o * s).saturating_sub(p), (o * s + k - p).min(g.h))).collect();
        let first_col = (0..g.ow).map(|o| (o * s).saturating_sub(p) as u32).collect();
        let dx_outputs = (0..k)
            .map(|dx| {
                // ow * s + dx - p in [0, W)  <=>  ow * s in [p - dx, W + p - dx).
                let lo = p.saturating_sub(dx).div_ceil(s);
                let hi = (g.w + p).saturating_sub(dx).div_ceil(s).min(g.ow);
                (lo, hi.max(lo))
            })
            .collect();
        let phase_w = g.w.div_ceil(s);
        let phases = s.min(g.w);
        Self { g: *g, rows, first_col, dx_outputs, phase_w, keys: vec![K::NEG_INF; phases * g.h * phase_w], best: vec![K::NEG_INF; g.ow], idx: vec![0; g.ow] }
    }

    fn load<T: PoolElem<Key = K>>(&mut self, plane: &[T]) {
        let (h, w, s, pw) = (self.g.h, self.g.w, self.g.stride, self.phase_w);
        for (y, row) in plane.chunks_exact(w).enumerate() {
            for phase in 0..s.min(w) {
                let dst = &mut self.keys[(phase * h + y) * pw..][..pw];
                for (d, v) in dst.iter_mut().zip(row[phase..].iter().step_by(s)) {
                    *d = v.key();
                }
            }
        }
    }

    /// Fills `self.best` with the maxima of output row `oh` of the loaded plane: the scan of
    /// [`Scanner::scan`] without the argmax (the forward needs only the values; `select` copies
    /// the winner's bits, so they are those of the element the argmax names, NaN payloads too).
    fn scan_max(&mut self, oh: usize) {
        let (h, s, p, pw) = (self.g.h, self.g.stride, self.g.padding, self.phase_w);
        let (r0, r1) = self.rows[oh];
        self.best.fill(K::NEG_INF);
        for y in r0..r1 {
            for (dx, &(lo, hi)) in self.dx_outputs.iter().enumerate() {
                if lo == hi {
                    continue;
                }
                let start = lo * s + dx - p;
                let src = &self.keys[((start % s) * h + y) * pw + start / s..][..hi - lo];
                for (b, &v) in self.best[lo..hi].iter_mut().zip(src) {
                    *b = K::select(K::take(v, *b), v, *b);
                }
            }
        }
    }

    /// Fills `self.idx` for output row `oh` of the loaded plane. Each window is visited in
    /// row-major order and takes v when `v > best || isnan(v)` from -inf at its first real
    /// element (PyTorch's scan): the first maximum wins ties, the last NaN wins over numbers.
    fn scan(&mut self, oh: usize) {
        let (h, w, s, p, pw) = (self.g.h, self.g.w, self.g.stride, self.g.padding, self.phase_w);
        let (r0, r1) = self.rows[oh];
        self.best.fill(K::NEG_INF);
        for (i, &c) in self.idx.iter_mut().zip(&self.first_col) {
            *i = (r0 * w) as u32 + c;
        }
        for y in r0..r1 {
            for (dx, &(lo, hi)) in self.dx_outputs.iter().enumerate() {
                if lo == hi {
                    continue;
                }
                // Output column lo + j reads x[y, start + j * s].
                let start = lo * s + dx - p;
                let src = &self.keys[((start % s) * h + y) * pw + start / s..][..hi - lo];
                let base = (y * w + start) as u32;
                let (best, idx) = (&mut self.best[lo..hi], &mut self.idx[lo..hi]);
                for (j, ((b, i), &v)) in best.iter_mut().zip(idx.iter_mut()).zip(src).enumerate() {
                    let m = K::take(v, *b);
                    *b = K::select(m, v, *b);
                    *i = ((base + (j * s) as u32) & m) | (*i & !m);
                }
            }
        }
    }
}

/// Calls `work(first_plane, out)` on disjoint runs of planes, on the compute pool's threads
/// for large inputs, each run compiled for the CPU's vector instruction set. Planes are
/// independent, so the result does not depend on the split.
fn for_planes<T: WithDType>(g: &PoolGeometry, out_per_plane: usize, work_per_plane: usize, work: impl Fn(usize, &mut [T]) + Sync) -> Result<Vec<T>> {
    use rayon::prelude::*;
    if u32::try_from(g.h * g.w).is_err() {
        candle_core::bail!("max_pool2d: {}x{} planes are too large for the CPU path", g.h, g.w);
    }
    let planes = g.planes();
    let mut out = vec![T::from_f64(0.0); planes * out_per_plane];
    // Runs of about 256 K element visits: below that a task costs more than it saves.
    let per = ((1usize << 18) / work_per_plane.max(1)).clamp(1, planes.max(1));
    out.par_chunks_mut(per * out_per_plane.max(1)).enumerate().for_each(|(t, chunk)| crate::ops::cpu::simd::vectorized(|| work(t * per, chunk)));
    Ok(out)
}

fn forward<T: PoolElem>(x: &[T], g: &PoolGeometry) -> Result<Vec<T>> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    for_planes(g, ohw, ohw * g.kernel * g.kernel, |first, out: &mut [T]| {
        let mut scan = Scanner::<T::Key>::new(g);
        for (plane, out) in x[first * hw..].chunks_exact(hw).zip(out.chunks_exact_mut(ohw)) {
            scan.load(plane);
            for (oh, out_row) in out.chunks_exact_mut(g.ow).enumerate() {
                scan.scan_max(oh);
                for (o, &b) in out_row.iter_mut().zip(&scan.best) {
                    *o = T::from_key(b);
                }
            }
        }
    })
}

fn backward<T: PoolElem>(x: &[T], grad: &[T], g: &PoolGeometry) -> Result<Vec<T>> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    for_planes(g, hw, ohw * g.kernel * g.kernel, |first, out: &mut [T]| {
        let mut scan = Scanner::<T::Key>::new(g);
        let mut acc = vec![T::Key::default(); hw];
        let planes = x[first * hw..].chunks_exact(hw).zip(grad[first * ohw..].chunks_exact(ohw));
        for ((plane, gp), out) in planes.zip(out.chunks_exact_mut(hw)) {
            scan.load(plane);
            acc.fill(T::Key::default());
            for (oh, g_row) in gp.chunks_exact(g.ow).enumerate() {
                scan.scan(oh);
                // Windows in increasing output order: each input sums its gradients in the same
                // order (and type) as the CUDA gather.
                for (&i, gv) in scan.idx.iter().zip(g_row) {
                    acc[i as usize] += gv.key();
                }
            }
            for (o, &a) in out.iter_mut().zip(&acc) {
                *o = T::from_key(a);
            }
        }
    })
}

fn contiguous_range(layout: &Layout, what: &str) -> Result<(usize, usize)> {
    match layout.contiguous_offsets() {
        Some(r) => Ok(r),
        None => candle_core::bail!("max_pool2d: {what} must be contiguous"),
    }
}

impl CustomOp1 for MaxPool2d {
    fn name(&self) -> &'static str {
        "max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(layout.shape())?;
        let (s, e) = contiguous_range(layout, "input")?;
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(forward(&v[s..e], &g)?),
            CpuStorage::F64(v) => CpuStorage::F64(forward(&v[s..e], &g)?),
            CpuStorage::BF16(v) => CpuStorage::BF16(forward(&v[s..e], &g)?),
            CpuStorage::F16(v) => CpuStorage::F16(forward(&v[s..e], &g)?),
            other => candle_core::bail!("max_pool2d: unsupported dtype {:?} (float types only)", other.dtype()),
        };
        Ok((out, g.out_shape()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, storage: &candle_core::CudaStorage, layout: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = self.geometry(layout.shape())?;
        Ok((super::cuda::max_pool::forward(storage, layout, &g)?, g.out_shape()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(max_pool2d_backward(arg, grad_res, *self)?))
    }
}

impl MaxPool2dGrad {
    fn geometry(&self, xl: &Layout, gl: &Layout) -> Result<PoolGeometry> {
        let g = self.pool.geometry(xl.shape())?;
        if gl.shape() != &g.out_shape() {
            candle_core::bail!("max_pool2d backward: gradient shape {:?}, expected {:?}", gl.shape().dims(), g.out_shape().dims());
        }
        Ok(g)
    }
}

impl CustomOp2 for MaxPool2dGrad {
    fn name(&self) -> &'static str {
        "max-pool2d-grad"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, gs: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.geometry(xl, gl)?;
        let (xa, xb) = contiguous_range(xl, "input")?;
        let (ga, gb) = contiguous_range(gl, "gradient")?;
        let out = match (xs, gs) {
            (CpuStorage::F32(x), CpuStorage::F32(d)) => CpuStorage::F32(backward(&x[xa..xb], &d[ga..gb], &g)?),
            (CpuStorage::F64(x), CpuStorage::F64(d)) => CpuStorage::F64(backward(&x[xa..xb], &d[ga..gb], &g)?),
            (CpuStorage::BF16(x), CpuStorage::BF16(d)) => CpuStorage::BF16(backward(&x[xa..xb], &d[ga..gb], &g)?),
            (CpuStorage::F16(x), CpuStorage::F16(d)) => CpuStorage::F16(backward(&x[xa..xb], &d[ga..gb], &g)?),
            (x, d) => candle_core::bail!("max_pool2d backward: input and gradient must share a float dtype, got {:?} and {:?}", x.dtype(), d.dtype()),
        };
        Ok((out, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, xs: &candle_core::CudaStorage, xl: &Layout, gs: &candle_core::CudaStorage, gl: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        let g = self.geometry(xl, gl)?;
        Ok((super::cuda::max_pool::backward(xs, xl, gs, gl, &g)?, xl.shape().clone()))
    }
}

/// Max-pooling of x [N, C, H, W] with a `kernel` x `kernel` window, PyTorch semantics (see the
/// module docs), differentiable on every device. Any float dtype on the CPU; on CUDA float32 and
/// bfloat16 run our kernels; float16 and float64 go through float32 (exact for float16; float64
/// values are rounded, so near-ties may pick another element than the CPU would).
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let pool = MaxPool2d::new(kernel, stride, padding)?;
    let g = pool.geometry(x.shape())?;
    if x.elem_count() == 0 {
        return Tensor::zeros(g.out_shape(), x.dtype(), x.device());
    }
    let x = x.contiguous()?;
    if x.device().is_cuda() && !matches!(x.dtype(), DType::F32 | DType::BF16) {
        return x.to_dtype(DType::F32)?.apply_op1(pool)?.to_dtype(x.dtype());
    }
    x.apply_op1(pool)
}

/// The input gradient of `pool` over x from the output's gradient (no graph).
pub fn max_pool2d_backward(x: &Tensor, grad: &Tensor, pool: MaxPool2d) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2dGrad { pool })
}
