//! Per-channel passes over NCHW tensors on the CPU, shared by the BatchNorm and AdvBN ops:
//! per-plane sums reduced to per-channel totals, and elementwise maps, on rayon's threads.
//!
//! Arithmetic runs in the element's own precision (f32 for f32, bf16 and f16; f64 for f64);
//! callers compile their per-plane loops for the CPU's vector instruction set
//! (`simd::multiversion`). Sums accumulate in
//! that precision in `LANES` lanes over blocks of `BLOCK` elements and in f64 across blocks and
//! planes; planes are reduced in plane order, so results do not depend on the thread count.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, Layout, Result, WithDType};
use half::{bf16, f16};
use rayon::prelude::*;

/// Elements summed in the element's precision before the partial goes to f64.
const BLOCK: usize = 256;
/// Fewest elements one task handles (smaller tensors run on fewer threads).
const TASK: usize = 1 << 15;

/// The float type the arithmetic of an element type runs in.
pub trait Real:
    Copy + Send + Sync + PartialOrd + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> + std::ops::AddAssign
{
    const ZERO: Self;
    fn of(v: f64) -> Self;
    fn wide(self) -> f64;

    /// max(self, 0), with NaN giving 0 (as f64::max does).
    #[inline(always)]
    fn relu(self) -> Self {
        if self > Self::ZERO {
            self
        } else {
            Self::ZERO
        }
    }
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
}

/// A storage element type and the precision its arithmetic runs in.
pub trait Elem: WithDType {
    type R: Real;
    fn get(self) -> Self::R;
    fn put(v: Self::R) -> Self;
}

impl Elem for f32 {
    type R = f32;
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
    #[inline(always)]
    fn put(v: f32) -> Self {
        v
    }
}

impl Elem for f64 {
    type R = f64;
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn put(v: f64) -> Self {
        v
    }
}

impl Elem for bf16 {
    type R = f32;
    #[inline(always)]
    fn get(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn put(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Elem for f16 {
    type R = f32;
    #[inline(always)]
    fn get(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn put(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// Runs `$body` with `$x` (and `$g`, `$y`) bound to the contiguous slices of float CPU storages
/// of one dtype; `$what` names the op in errors.
macro_rules! float_slices {
    ($what:expr, $xs:expr, $xl:expr, |$x:ident| $body:expr) => {{
        let (start, end) = $crate::ops::cpu::channels::offsets($what, $xl)?;
        match $xs {
            CpuStorage::F32(v) => {
                let $x = &v[start..end];
                $body
            }
            CpuStorage::F64(v) => {
                let $x = &v[start..end];
                $body
            }
            CpuStorage::BF16(v) => {
                let $x = &v[start..end];
                $body
            }
            CpuStorage::F16(v) => {
                let $x = &v[start..end];
                $body
            }
            other => candle_core::bail!("{}: unsupported dtype {:?}", $what, candle_core::backend::BackendStorage::dtype(other)),
        }
    }};
    ($what:expr, $xs:expr, $xl:expr, $gs:expr, $gl:expr, |$x:ident, $g:ident| $body:expr) => {{
        let (xa, xb) = $crate::ops::cpu::channels::offsets($what, $xl)?;
        let (ga, gb) = $crate::ops::cpu::channels::offsets($what, $gl)?;
        match ($xs, $gs) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let ($x, $g) = (&x[xa..xb], &g[ga..gb]);
                $body
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let ($x, $g) = (&x[xa..xb], &g[ga..gb]);
                $body
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(g)) => {
                let ($x, $g) = (&x[xa..xb], &g[ga..gb]);
                $body
            }
            (CpuStorage::F16(x), CpuStorage::F16(g)) => {
                let ($x, $g) = (&x[xa..xb], &g[ga..gb]);
                $body
            }
            (x, g) => candle_core::bail!(
                "{}: tensors {:?} and {:?} must share a float dtype",
                $what,
                candle_core::backend::BackendStorage::dtype(x),
                candle_core::backend::BackendStorage::dtype(g)
            ),
        }
    }};
    ($what:expr, $xs:expr, $xl:expr, $gs:expr, $gl:expr, $ys:expr, $yl:expr, |$x:ident, $g:ident, $y:ident| $body:expr) => {{
        let (xa, xb) = $crate::ops::cpu::channels::offsets($what, $xl)?;
        let (ga, gb) = $crate::ops::cpu::channels::offsets($what, $gl)?;
        let (ya, yb) = $crate::ops::cpu::channels::offsets($what, $yl)?;
        match ($xs, $gs, $ys) {
            (CpuStorage::F32(x), CpuStorage::F32(g), CpuStorage::F32(y)) => {
                let ($x, $g, $y) = (&x[xa..xb], &g[ga..gb], &y[ya..yb]);
                $body
            }
            (CpuStorage::F64(x), CpuStorage::F64(g), CpuStorage::F64(y)) => {
                let ($x, $g, $y) = (&x[xa..xb], &g[ga..gb], &y[ya..yb]);
                $body
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(g), CpuStorage::BF16(y)) => {
                let ($x, $g, $y) = (&x[xa..xb], &g[ga..gb], &y[ya..yb]);
                $body
            }
            (CpuStorage::F16(x), CpuStorage::F16(g), CpuStorage::F16(y)) => {
                let ($x, $g, $y) = (&x[xa..xb], &g[ga..gb], &y[ya..yb]);
                $body
            }
            (x, g, y) => candle_core::bail!(
                "{}: tensors {:?}, {:?} and {:?} must share a float dtype",
                $what,
                candle_core::backend::BackendStorage::dtype(x),
                candle_core::backend::BackendStorage::dtype(g),
                candle_core::backend::BackendStorage::dtype(y)
            ),
        }
    }};
}
pub(crate) use float_slices;

/// The element range of a contiguous layout.
pub fn offsets(what: &str, layout: &Layout) -> Result<(usize, usize)> {
    layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg(format!("{what}: tensors must be contiguous")))
}

/// A contiguous f32 or f64 storage (per-channel coefficients, sums) as f64 values.
pub fn coefficients(what: &str, storage: &CpuStorage, layout: &Layout) -> Result<Vec<f64>> {
    let (start, end) = offsets(what, layout)?;
    Ok(match storage {
        CpuStorage::F32(v) => v[start..end].iter().map(|&x| x as f64).collect(),
        CpuStorage::F64(v) => v[start..end].to_vec(),
        other => candle_core::bail!("{what}: coefficients must be float32 or float64, got {:?}", candle_core::backend::BackendStorage::dtype(other)),
    })
}

/// Planes per task for planes of `hw` elements.
fn planes_per_task(hw: usize) -> usize {
    TASK.div_ceil(hw.max(1)).max(1)
}

/// Lanes of the partial sums (independent accumulators the compiler can keep in vectors; the
/// lanes are added in a fixed order, so the sum does not depend on the instruction set).
const LANES: usize = 16;

/// Sum of `term(x[i], g[i])` over the two equally long slices: `LANES` accumulators in R over
/// blocks of `BLOCK`, each block's lanes added in order and carried in f64. The lanes are whole
/// arrays (no index, so no bounds check), which is what lets the compiler keep them in vectors.
#[inline(always)]
pub fn sum<E: Copy, R: Real>(x: &[E], g: &[E], term: impl Fn(E, E) -> (R, R)) -> (f64, f64) {
    assert_eq!(x.len(), g.len(), "sum: slices of different lengths");
    let (mut a, mut b) = (0f64, 0f64);
    for (xb, gb) in x.chunks(BLOCK).zip(g.chunks(BLOCK)) {
        let (mut pa, mut pb) = ([R::ZERO; LANES], [R::ZERO; LANES]);
        let ((xl, xr), (gl, gr)) = (xb.as_chunks::<LANES>(), gb.as_chunks::<LANES>());
        // One sweep per accumulator over the (L1-resident) block: each is a plain 16-lane
        // pattern the vectoriser maps onto whole registers, where one sweep for both gets the
        // two sums interleaved into pairs and shuffled every step.
        for (xs, gs) in xl.iter().zip(gl) {
            for l in 0..LANES {
                pa[l] += term(xs[l], gs[l]).0;
            }
        }
        for (xs, gs) in xl.iter().zip(gl) {
            for l in 0..LANES {
                pb[l] += term(xs[l], gs[l]).1;
            }
        }
        for (l, (&xv, &gv)) in xr.iter().zip(gr).enumerate() {
            let (u, v) = term(xv, gv);
            pa[l] += u;
            pb[l] += v;
        }
        for l in 0..LANES {
            a += pa[l].wide();
            b += pb[l].wide();
        }
    }
    (a, b)
}

/// Per-channel totals [first (C), second (C)] of `plane_sums(plane, channel)` over the planes
/// of an [N, C, H, W] tensor with planes of `hw` elements.
pub fn channel_totals(planes: usize, c: usize, hw: usize, plane_sums: impl Fn(usize, usize) -> (f64, f64) + Sync) -> Vec<f64> {
    let partial: Vec<(f64, f64)> = (0..planes).into_par_iter().with_min_len(planes_per_task(hw)).map(|q| plane_sums(q, q % c)).collect();
    let mut totals = vec![0f64; 2 * c];
    for (q, (a, b)) in partial.into_iter().enumerate() {
        totals[q % c] += a;
        totals[c + q % c] += b;
    }
    totals
}

/// A new [N, C, H, W] vector whose plane q (channel q % C) `write(q, channel, out)` fills.
///
/// # Safety
/// `write` must initialise every element of the plane it is handed.
pub unsafe fn map_planes<T: Send>(len: usize, c: usize, hw: usize, write: impl Fn(usize, usize, &mut [MaybeUninit<T>]) + Sync) -> Vec<T> {
    let fill = |out: &mut [MaybeUninit<T>]| {
        out.par_chunks_mut(hw.max(1)).with_min_len(planes_per_task(hw)).enumerate().for_each(|(q, plane)| write(q, q % c, plane));
    };
    // SAFETY: the planes tile the vector and the caller guarantees `write` fills each.
    unsafe { super::scratch::filled(len, fill) }
}
