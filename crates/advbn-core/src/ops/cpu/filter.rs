//! The weight gradient of a stride-1 or stride-2 convolution computed directly (float32, AVX-512
//! or AVX2): dW[o, c, i, j] = sum over images and output positions of dy[o, p] * x[c, s p + (i, j)].
//!
//! The input is staged as for `direct` (`staging`; the output gradient is zero in the dropped
//! columns), so the input of kernel tap (c, i, j) along consecutive positions is one contiguous
//! run. The output channels run along the vector lanes: the
//! output gradient is transposed per image to [position][channel], and a register tile holds
//! `V` vectors of channels for `S` taps, broadcasting one input value per tap and position.
//!
//! Images are split into `PARTS` fixed parts summed in order, each part's images in order:
//! results do not depend on the thread count.

use rayon::prelude::*;

use super::conv::Geometry;
use super::direct::{check, isa};
use super::scratch::Scratch;
use super::simd::{vectorized, Isa, Lanes};
use super::staging::{stage_image, Staging};
use candle_core::Result;

/// Fixed partial sums over images (Winograd's weight gradient uses them too).
pub(super) const PARTS: usize = 4;
/// The most taps a tile has (the tall tiles').
const MAX_TILE_TAPS: usize = 18;
/// Taps per register tile and channel vectors per tile, per ISA: a wide tile, and a tall one
/// for layers with at most one vector of output channels.
const AVX512_TILE: (usize, usize) = (9, 2);
const AVX512_TALL: (usize, usize) = (18, 1);
const AVX2_TILE: (usize, usize) = (6, 2);
const AVX2_TALL: (usize, usize) = (12, 1);

/// acc[s][v] += sum over positions p of x_s[p] * dyt[p * o_pad + v * L::N + lane], where x_s is
/// tap s's input run; acc rows are `o_pad` apart.
///
/// # Safety
/// The CPU supports `L`'s instruction set; every `taps[s]` is readable for `positions` values,
/// `dyt` for `positions` rows of `o_pad` (with `V * L::N` lanes from its start), and `acc` is
/// readable and writable at `s * o_pad + [0, V * L::N)` for s < S.
#[inline(always)]
unsafe fn tile<L: Lanes, const S: usize, const V: usize>(dyt: *const f32, o_pad: usize, taps: &[*const f32; S], positions: usize, acc: *mut f32) {
    let mut sums = [[L::zero(); V]; S];
    for (s, row) in sums.iter_mut().enumerate() {
        for (v, sum) in row.iter_mut().enumerate() {
            *sum = L::load(acc.add(s * o_pad + v * L::N));
        }
    }
    for p in 0..positions {
        let mut g = [L::zero(); V];
        for (v, gv) in g.iter_mut().enumerate() {
            *gv = L::load(dyt.add(p * o_pad + v * L::N));
        }
        for (row, tap) in sums.iter_mut().zip(taps) {
            let b = L::splat(*tap.add(p));
            for (sum, gv) in row.iter_mut().zip(&g) {
                *sum = sum.fma(b, *gv);
            }
        }
    }
    for (s, row) in sums.iter().enumerate() {
        for (v, sum) in row.iter().enumerate() {
            sum.store(acc.add(s * o_pad + v * L::N));
        }
    }
}

/// A tile shape compiled for one instruction set.
macro_rules! tile_fn {
    ($name:ident, $features:literal, $lanes:ty, $shape:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(dyt: *const f32, o_pad: usize, taps: &[*const f32], positions: usize, acc: *mut f32) {
            let taps: &[*const f32; $shape.0] = taps.try_into().expect("one pointer per tap of the tile");
            tile::<$lanes, { $shape.0 }, { $shape.1 }>(dyt, o_pad, taps, positions, acc)
        }
    };
}

tile_fn!(tile_avx512, "avx512f", super::simd::Avx512, AVX512_TILE);
tile_fn!(tall_avx512, "avx512f", super::simd::Avx512, AVX512_TALL);
tile_fn!(tile_avx2, "avx2,fma", super::simd::Avx2, AVX2_TILE);
tile_fn!(tall_avx2, "avx2,fma", super::simd::Avx2, AVX2_TALL);

type TileFn = unsafe fn(*const f32, usize, &[*const f32], usize, *mut f32);

/// The kernel for an instruction set and `o` output channels: (kernel, taps per tile, channels
/// per tile).
fn kernel(isa: Isa, o: usize) -> (TileFn, usize, usize) {
    match isa {
        Isa::Avx512 if o <= 16 => (tall_avx512 as TileFn, AVX512_TALL.0, AVX512_TALL.1 * 16),
        Isa::Avx512 => (tile_avx512 as TileFn, AVX512_TILE.0, AVX512_TILE.1 * 16),
        Isa::Avx2 if o <= 8 => (tall_avx2 as TileFn, AVX2_TALL.0, AVX2_TALL.1 * 8),
        Isa::Avx2 => (tile_avx2 as TileFn, AVX2_TILE.0, AVX2_TILE.1 * 8),
    }
}

/// dyt[(oy * row + ox) * o_pad + o] = dy[o][oy][ox], in blocks of `BLOCK` channels x `BLOCK`
/// columns so that both sides move whole cache lines (a channel-at-a-time loop wrote one value
/// per line and took a fifth of the pass).
#[inline(always)]
fn transpose_rows(dy: &[f32], o_n: usize, oh: usize, ow: usize, row: usize, o_pad: usize, dyt: &mut [f32]) {
    const BLOCK: usize = 16;
    let ohw = oh * ow;
    for o0 in (0..o_n).step_by(BLOCK) {
        let os = BLOCK.min(o_n - o0);
        for oy in 0..oh {
            for x0 in (0..ow).step_by(BLOCK) {
                let xs = BLOCK.min(ow - x0);
                let mut tile = [[0f32; BLOCK]; BLOCK];
                for (o, line) in tile.iter_mut().enumerate().take(os) {
                    line[..xs].copy_from_slice(&dy[(o0 + o) * ohw + oy * ow + x0..][..xs]);
                }
                for x in 0..xs {
                    let dst = &mut dyt[(oy * row + x0 + x) * o_pad + o0..][..os];
                    for (o, d) in dst.iter_mut().enumerate() {
                        *d = tile[o][x];
                    }
                }
            }
        }
    }
}

/// dL/dw [o, c, kh, kw] of a stride-1 or stride-2 conv from x and dL/dy.
pub fn backward_filter(x: &[f32], dy: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    backward_filter_with(isa()?, x, dy, g)
}

pub(super) fn backward_filter_with(isa: Isa, x: &[f32], dy: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    check(g)?;
    if x.len() != g.input_len() || dy.len() != g.output_len() {
        candle_core::bail!("direct conv filter gradient: {} input and {} gradient elements for {g:?}", x.len(), dy.len());
    }
    let (kernel, s, lanes) = kernel(isa, g.o);
    let (k, hw, ohw) = (g.kh, g.h * g.w, g.oh * g.ow);
    let st = Staging::new(g.h, g.w, k, g.stride, g.pad, 0);
    let st = Staging::new(g.h, g.w, k, g.stride, g.pad, st.positions());
    let (positions, wp, plane) = (st.positions(), st.row(), st.channel_len());
    let o_pad = g.o.div_ceil(lanes) * lanes;
    let taps = g.c * k * k;
    let tap_rows = taps.div_ceil(s) * s;
    // Where each tap's run starts in the staged image; a tile past the last tap repeats it (its
    // rows are dropped below).
    let tap_offsets: Vec<usize> = (0..tap_rows)
        .map(|t| {
            let t = t.min(taps - 1);
            let (c, i, j) = (t / (k * k), (t / k) % k, t % k);
            c * plane + st.offset(i, j)
        })
        .collect();
    let parts = PARTS.min(g.n).max(1);
    let per_part = g.n.div_ceil(parts);

    let mut partials = vec![0f32; parts * tap_rows * o_pad];
    partials.par_chunks_mut(tap_rows * o_pad).enumerate().for_each(|(part, acc)| {
        let mut padded = Scratch::<f32>::take(g.c * plane);
        let mut dyt = Scratch::<f32>::take(positions * o_pad);
        let (padded, dyt) = (padded.as_mut_slice(g.c * plane), dyt.as_mut_slice(positions * o_pad));
        for n in (part * per_part)..((part + 1) * per_part).min(g.n) {
            let image = &x[n * g.c * hw..][..g.c * hw];
            stage_image(isa, &st, image, padded);
            // [position][channel], zero in the dropped columns and the padded channels.
            dyt.fill(0.0);
            let image = &dy[n * g.o * ohw..][..g.o * ohw];
            vectorized(|| transpose_rows(image, g.o, g.oh, g.ow, wp, o_pad, dyt));
            let base = padded.as_ptr();
            let mut tap_ptrs = [std::ptr::null::<f32>(); MAX_TILE_TAPS];
            for first in (0..taps).step_by(s) {
                for (slot, &off) in tap_ptrs.iter_mut().zip(&tap_offsets[first..first + s]) {
                    *slot = base.wrapping_add(off);
                }
                for o0 in (0..o_pad).step_by(lanes) {
                    // SAFETY: every tap pointer is inside the staged image and the staging
                    // leaves `positions` values after it; `dyt` holds `positions` rows of
                    // `o_pad`; the tile's rows `first..first + s` lie in `tap_rows`.
                    unsafe { kernel(dyt.as_ptr().add(o0), o_pad, &tap_ptrs[..s], positions, acc.as_mut_ptr().add(first * o_pad + o0)) };
                }
            }
        }
    });
    let (total, rest) = partials.split_at_mut(tap_rows * o_pad);
    for part in rest.chunks(tap_rows * o_pad) {
        total.par_iter_mut().zip(part).for_each(|(a, b)| *a += *b);
    }
    // [tap][o_pad] -> [o][c * k * k].
    let mut dw = vec![0f32; g.o * taps];
    dw.par_chunks_mut(taps).enumerate().for_each(|(o, row)| {
        for (t, v) in row.iter_mut().enumerate() {
            *v = total[t * o_pad + o];
        }
    });
    Ok(dw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::backward_filter_im2col;
    use crate::ops::cpu::testing::{isas, values, wide, worst_relative};

    #[test]
    fn filter_gradient_matches_the_im2col_path_in_f64() {
        let isas = isas();
        for (x, o, k, stride, pad) in [
            ((2, 3, 9, 9), 5, 3, 1, 1),
            ((3, 4, 7, 11), 33, 3, 1, 1),
            ((1, 2, 6, 5), 3, 3, 1, 0),
            ((6, 5, 8, 8), 17, 1, 1, 0),
            ((2, 3, 12, 10), 4, 5, 1, 2),
            ((9, 16, 4, 4), 16, 3, 1, 1),
            ((5, 7, 6, 6), 8, 3, 1, 1),
            ((3, 4, 9, 10), 6, 3, 2, 1),
            ((2, 5, 8, 7), 20, 1, 2, 0),
            ((2, 3, 17, 15), 4, 7, 2, 3),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride, padding: pad }).unwrap();
            let (xv, gv) = (values(g.input_len(), 1), values(g.output_len(), 3));
            let want = backward_filter_im2col(&wide(&xv), &wide(&gv), &g).unwrap();
            for &isa in &isas {
                let got = backward_filter_with(isa, &xv, &gv, &g).unwrap();
                let worst = worst_relative(&got, &want);
                assert!(worst < 1e-4, "{isa:?} {g:?}: off by {worst}");
            }
        }
    }
}
