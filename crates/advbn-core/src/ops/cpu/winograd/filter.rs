//! The weight gradient: with y = A^T (U (.) V) A per tile (U = G g G^T the transformed kernel,
//! V = B^T d B the transformed input), dL/dU = sum over tiles of (A dY A^T) (.) V, so the 16
//! transformed gradients are 16 matrix products [o, tiles] x [tiles, c] of the transformed output
//! gradients and inputs, and dW = G^T dU G per channel pair. The products run with the input
//! channels along the lanes (the span's transformed input transposed to [tile][channel] in 8 x 8
//! blocks), a register tile of output channels (broadcast) by vectors of input channels summing
//! over the span's tiles, so the sums stay in registers for a whole span. (Through the `gemm`
//! crate they measured 1.4x slower than the direct kernel on 16-channel layers; with the tiles
//! along the lanes, per-lane partial sums of 128-channel layers outgrew the caches.)
//!
//! Images are split into the direct kernel's fixed parts (`filter::PARTS`), each part's spans
//! accumulated in order, then the parts summed in order: results do not depend on the thread
//! count.

use rayon::prelude::*;

use super::{
    blocks, chunk_lanes, chunks, enabled, input_transform, kernel_gradient, lanes, output_rows, span_vectors, suits, value_stride, with_fallback, Chunk, Plan,
};
use crate::ops::cpu::conv::Geometry;
use crate::ops::cpu::filter::PARTS;
use crate::ops::cpu::scratch::Scratch;
use crate::ops::cpu::simd::{detect, split_order, with_lanes, Avx2, Isa, Lanes};
use candle_core::Result;

/// Which instruction set's kernels take the weight gradient of a geometry here, if any: a 3x3
/// stride-1 pad-1 convolution whose maps `suits` (`with_fallback`).
fn filter_isa(g: &Geometry) -> Option<Isa> {
    let isa = detect().filter(|_| enabled() && g.stride == 1 && (g.kh, g.kw, g.pad) == (3, 3, 1))?;
    with_fallback(isa, (g.h, g.w), |isa| suits(isa, (g.c, g.h, g.w), g.o, 3))
}

/// Whether the weight gradient of a geometry goes here.
pub(crate) fn suits_filter(g: &Geometry) -> bool {
    filter_isa(g).is_some()
}

/// dL/dw [o, c, 3, 3] from x [n, c, h, w] and dL/dy [n, o, h, w], for a geometry that
/// `suits_filter`.
pub(crate) fn backward_filter(x: &[f32], dy: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    let Some(isa) = filter_isa(g) else {
        candle_core::bail!("winograd filter gradient: needs a 3x3 stride-1 pad-1 conv with even sides and at least 8 input channels on an AVX2 CPU, got {g:?}");
    };
    if x.len() != g.input_len() || dy.len() != g.output_len() {
        candle_core::bail!("winograd filter gradient: {} input and {} gradient elements for {g:?}", x.len(), dy.len());
    }
    let (n, c, h, w, o) = (g.n, g.c, g.h, g.w, g.o);
    // Per part: the sums [16][o_rows][c_pad] (input channels padded to whole vectors, output
    // channels to whole blocks of the register tile).
    let lanes = lanes(isa);
    let blocks = blocks(isa, o);
    let o_rows = output_rows(&blocks);
    let c_pad = c.next_multiple_of(lanes);
    let du_len = 16 * o_rows * c_pad;
    if n == 0 {
        return Ok(vec![0.0; g.weight_len()]);
    }
    let per_part = n.div_ceil(PARTS.min(n));
    let parts = n.div_ceil(per_part);
    let per_vector = 16 * (2 * c + o_rows) * lanes * 4;
    let mut partials = vec![0f32; parts * du_len];
    partials.par_chunks_mut(du_len).enumerate().for_each(|(part, du)| {
        let first = part * per_part;
        let images = per_part.min(n - first);
        let chunks = chunks(images, h / 2, w / 2, lanes / 2);
        let vectors = chunks.len().div_ceil(2);
        let span = span_vectors(per_vector, vectors);
        let plan = Plan { c, h, w, o, o_rows, tw: w / 2, vectors, span };
        let slots = span * lanes;
        let (v_len, vt_len, yhat_len) = (16 * plan.input_stride(lanes), 16 * value_stride(slots * c_pad), 16 * plan.output_stride(lanes));
        let (mut v, mut vt, mut yhat) = (Scratch::<f32>::take(v_len), Scratch::<f32>::take(vt_len), Scratch::<f32>::take(yhat_len));
        let (v, vt, yhat) = (v.as_mut_slice(v_len), vt.as_mut_slice(vt_len), yhat.as_mut_slice(yhat_len));
        // The padding rows and columns stay zero (the transforms never write them).
        vt.fill(0.0);
        yhat.fill(0.0);
        let (x, dy) = (&x[first * c * h * w..][..images * c * h * w], &dy[first * o * h * w..][..images * o * h * w]);
        for s in 0..vectors.div_ceil(span) {
            let span_chunks = plan.span_chunks(&chunks, s);
            let job = &mut Span {
                plan,
                chunks: span_chunks,
                blocks: &blocks,
                c_pad,
                x,
                dy,
                v: &mut *v,
                vt: &mut *vt,
                yhat: &mut *yhat,
                sums: &mut *du,
                first: s == 0,
            };
            // SAFETY: an `Isa` comes from `detect`; the buffers hold a span.
            with_lanes!(isa, span_pass(job: &mut Span));
        }
    });
    // The parts added in order.
    let (total, rest) = partials.split_at_mut(du_len);
    for part in rest.chunks(du_len) {
        total.par_iter_mut().zip(part).for_each(|(a, b)| *a += *b);
    }
    let total = &*total;
    let mut dw = vec![0f32; g.weight_len()];
    dw.par_chunks_mut(9).enumerate().for_each(|(q, out)| {
        let (oi, ci) = (q / c, q % c);
        out.copy_from_slice(&kernel_gradient(std::array::from_fn(|xi| total[(xi * o_rows + oi) * c_pad + ci] as f64)));
    });
    Ok(dw)
}

/// What one span's pass reads and writes.
struct Span<'a> {
    plan: Plan,
    chunks: &'a [Chunk],
    /// The output-channel blocks of the register tiles.
    blocks: &'a [(usize, usize)],
    /// Input channels per row of `vt` and `sums` (whole vectors).
    c_pad: usize,
    /// The part's input and output gradient planes.
    x: &'a [f32],
    dy: &'a [f32],
    /// The span's transformed input, [16][c][span * N], the same as [16][span * N][c_pad], and
    /// the transformed output gradient, [16][o_rows][span * N] (each xi's block `value_stride`
    /// of its size from the next).
    v: &'a mut [f32],
    vt: &'a mut [f32],
    yhat: &'a mut [f32],
    /// The part's sums, [16][o_rows][c_pad]: overwritten by the first span, added to after.
    sums: &'a mut [f32],
    first: bool,
}

/// One span: both transforms, then for each of the 16 transformed values the products of every
/// (output, input) channel pair summed over the span's tiles.
///
/// # Safety
/// The CPU supports `L`'s instruction set (AVX2 at least).
#[inline(always)]
unsafe fn span_pass<L: Lanes>(job: &mut Span) {
    let p = job.plan;
    let vectors = job.chunks.len().div_ceil(2);
    input_transform::<L>(&p, job.x, job.chunks, vectors, job.v);
    gradient_transform::<L>(&p, job.dy, job.chunks, vectors, job.yhat);
    let (slots, tiles, c_pad) = (p.span * L::N, vectors * L::N, job.c_pad);
    let (v_stride, vt_stride, yhat_stride) = (p.input_stride(L::N), value_stride(slots * c_pad), p.output_stride(L::N));
    transpose((job.v, v_stride), p.c, (slots, tiles, L::N), (job.vt, vt_stride), c_pad);
    assert!(job.sums.len() == 16 * p.o_rows * c_pad && job.yhat.len() >= 16 * yhat_stride && job.vt.len() >= 16 * vt_stride);
    let c_vectors = c_pad / L::N;
    for xi in 0..16 {
        let (yx, vx) = (job.yhat.as_ptr().add(xi * yhat_stride), job.vt.as_ptr().add(xi * vt_stride));
        let sx = job.sums.as_mut_ptr().add(xi * p.o_rows * c_pad);
        for &(o0, rows) in job.blocks {
            for cv in (0..c_vectors).step_by(2) {
                let args = Products {
                    y: yx.add(o0 * slots),
                    y_stride: slots,
                    v: vx.add(cv * L::N),
                    v_stride: c_pad,
                    tiles,
                    sums: sx.add(o0 * c_pad + cv * L::N),
                    first: job.first,
                };
                match (rows, cv + 1 < c_vectors) {
                    (8, true) => products::<L, 8, 2>(&args),
                    (6, true) => products::<L, 6, 2>(&args),
                    (_, true) => products::<L, 4, 2>(&args),
                    (8, false) => products::<L, 8, 1>(&args),
                    (6, false) => products::<L, 6, 1>(&args),
                    (_, false) => products::<L, 4, 1>(&args),
                }
            }
        }
    }
}

/// vt[xi][t][ci] = v[xi][ci][t] for the span's `tiles`, the tiles of each vector of `lanes` put
/// back from `Lanes::split`'s order into the chunks' (so they pair with the output gradient's and
/// are summed in the same order as before the split existed). 8 x 8 blocks through AVX2's
/// transpose; the rows of `v` are `slots` long, those of `vt` `c_pad`; each buffer with its xi
/// stride.
///
/// # Safety
/// The CPU supports AVX2; the buffers hold 16 transformed values' rows.
#[inline(always)]
unsafe fn transpose(
    (v, v_stride): (&[f32], usize),
    c: usize,
    (slots, tiles, lanes): (usize, usize, usize),
    (vt, vt_stride): (&mut [f32], usize),
    c_pad: usize,
) {
    assert!(tiles.is_multiple_of(lanes) && lanes.is_multiple_of(8) && v_stride >= c * slots && vt_stride >= slots * c_pad);
    assert!(v.len() >= 16 * v_stride && vt.len() >= 16 * vt_stride);
    // The tile (within its vector) that each lane holds.
    let order: [usize; 16] = std::array::from_fn(|lane| split_order(lane % lanes, lanes));
    let tile = |t: usize| t - t % lanes + order[t % lanes];
    for xi in 0..16 {
        let (src, dst) = (v.as_ptr().add(xi * v_stride), vt.as_mut_ptr().add(xi * vt_stride));
        let whole = c / 8 * 8;
        for c0 in (0..whole).step_by(8) {
            for t0 in (0..tiles).step_by(8) {
                let rows: [Avx2; 8] = std::array::from_fn(|i| Avx2::load(src.add((c0 + i) * slots + t0)));
                for (i, col) in Avx2::transpose8(rows).into_iter().enumerate() {
                    col.store(dst.add(tile(t0 + i) * c_pad + c0));
                }
            }
        }
        for ci in whole..c {
            for t in 0..tiles {
                *dst.add(tile(t) * c_pad + ci) = *src.add(ci * slots + t);
            }
        }
    }
}

/// A register tile's operands: `y` the first output channel's transformed gradient row (rows
/// `y_stride` apart), `v` the first input-channel vector of tile 0's transformed input (tiles
/// `v_stride` apart), `sums` the tile's first sum (rows `v_stride` apart).
struct Products {
    y: *const f32,
    y_stride: usize,
    v: *const f32,
    v_stride: usize,
    tiles: usize,
    sums: *mut f32,
    /// Whether the sums start at zero (else at what `sums` holds).
    first: bool,
}

/// sums[r][q * N + lane] (+)= sum over the tiles t of y[r][t] * v[t][q * N + lane]: the span's
/// sum from zero, then added (one chain per span keeps the rounding of long sums down).
///
/// # Safety
/// The CPU supports `L`'s instruction set; the pointers cover R rows and Q vectors.
#[inline(always)]
unsafe fn products<L: Lanes, const R: usize, const Q: usize>(a: &Products) {
    let mut acc = [[L::zero(); Q]; R];
    for t in 0..a.tiles {
        let b: [L; Q] = std::array::from_fn(|q| L::load(a.v.add(t * a.v_stride + q * L::N)));
        for (r, row) in acc.iter_mut().enumerate() {
            let y = L::splat(*a.y.add(r * a.y_stride + t));
            for (sum, bv) in row.iter_mut().zip(&b) {
                *sum = sum.fma(y, *bv);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (q, sum) in row.iter().enumerate() {
            let at = a.sums.add(r * a.v_stride + q * L::N);
            if a.first {
                sum.store(at);
            } else {
                L::load(at).add(*sum).store(at);
            }
        }
    }
}

/// yhat[xi][o][vi * N ..] = A dY A^T for the 2x2 output gradient dY of every tile of the span's
/// chunks, A = [[1, 0], [1, 1], [1, -1], [0, -1]] (the adjoint of the forward's output
/// transform); zeros in the lanes of no tile; each xi's block `Plan::output_stride` apart.
///
/// # Safety
/// The CPU supports `L`'s instruction set.
#[inline(always)]
unsafe fn gradient_transform<L: Lanes>(p: &Plan, dy: &[f32], span_chunks: &[Chunk], vectors: usize, yhat: &mut [f32]) {
    let (n, zero) = (L::N, L::zero());
    let (slots, stride) = (p.span * n, p.output_stride(n));
    assert!(yhat.len() >= 16 * stride && dy.len() >= span_chunks.last().map_or(0, |ch| (ch.image + 1) * p.o * p.h * p.w));
    for vi in 0..vectors {
        // Per half: the chunk and its lanes (None: all of them).
        let mut halves: [Option<(Chunk, Option<L::Mask>)>; 2] = [None, None];
        for (h, half) in halves.iter_mut().enumerate() {
            if let Some(ch) = span_chunks.get(2 * vi + h) {
                // (A loop, not a closure: see `input_transform`.)
                *half = Some((*ch, if ch.count * 2 < n { Some(L::mask(chunk_lanes(ch, p.tw).2)) } else { None }));
            }
        }
        for oi in 0..p.o {
            // Per output row i of the tiles: A over the columns.
            let mut rows = [[zero; 4]; 2];
            for (i, row) in rows.iter_mut().enumerate() {
                let mut loads = [zero; 2];
                for (load, half) in loads.iter_mut().zip(&halves) {
                    let Some((ch, mask)) = *half else { continue };
                    let at = dy.as_ptr().add(((ch.image * p.o + oi) * p.h + 2 * ch.ty + i) * p.w + 2 * ch.tx);
                    *load = match mask {
                        Some(mask) => L::load_masked(at, mask),
                        None => L::load(at),
                    };
                }
                let (left, right) = (loads[0].evens(loads[1]), loads[0].odds(loads[1]));
                *row = [left, left.add(right), left.sub(right), zero.sub(right)];
            }
            let [r0, r1] = rows;
            for (b, (c0, c1)) in r0.into_iter().zip(r1).enumerate() {
                for (a, value) in [c0, c0.add(c1), c0.sub(c1), zero.sub(c1)].into_iter().enumerate() {
                    value.store(yhat.as_mut_ptr().add((a * 4 + b) * stride + oi * slots + vi * n));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::backward_filter_im2col;
    use crate::ops::cpu::testing::{values, wide, worst_relative};

    /// Against the im2col path in f64, as accurate as the direct kernel: maps of whole and partial
    /// chunks, several spans, parts of unequal size, channel counts that fill no block or vector.
    #[test]
    fn matches_the_definition_to_float_rounding() {
        let mut ran = 0;
        for (n, c, h, w, o) in
            [(4, 16, 8, 8, 16), (5, 8, 16, 16, 10), (3, 20, 32, 32, 9), (4, 16, 12, 12, 12), (6, 8, 24, 24, 8), (2, 64, 8, 8, 64), (9, 12, 48, 32, 16)]
        {
            let g = Geometry::new((n, c, h, w), (o, c, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            if !suits_filter(&g) {
                continue;
            }
            ran += 1;
            let (xv, gv) = (values(g.input_len(), 1), values(g.output_len(), 3));
            let want = backward_filter_im2col(&wide(&xv), &wide(&gv), &g).unwrap();
            let got = backward_filter(&xv, &gv, &g).unwrap();
            let worst = worst_relative(&got, &want);
            // Long sums round like the direct kernel's: no worse than twice its error.
            let direct = worst_relative(&crate::ops::cpu::filter::backward_filter(&xv, &gv, &g).unwrap(), &want);
            assert!(worst < 1e-4f64.max(2.0 * direct), "{n}x{c}x{h}x{w} -> {o}: off by {worst} (the direct kernel by {direct})");
        }
        // The 16x16 and 32x32 maps suit every instruction set the kernels have.
        assert!(ran >= 2 || detect().is_none() || !enabled(), "only {ran} geometries ran");
    }

    #[test]
    fn other_geometries_are_refused() {
        let g = Geometry::new((2, 16, 7, 8), (16, 16, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
        assert!(!suits_filter(&g));
        assert!(backward_filter(&values(g.input_len(), 0), &values(g.output_len(), 0), &g).is_err());
    }
}
