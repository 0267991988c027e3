//! The weight gradient: with y = A^T (U (.) V) A per tile (U = G g G^T the transformed kernel,
//! V = B^T d B the transformed input), dL/dU = sum over tiles of (A dY A^T) (.) V, so the 16
//! transformed gradients are 16 matrix products [o, tiles] x [tiles, c] of the transformed output
//! gradients and inputs (the `gemm` crate, one thread per call), and dW = G^T dU G per channel pair.
//!
//! Images are split into the direct kernel's fixed parts (`filter::PARTS`), each part's spans
//! accumulated in order, the parts summed in order: results do not depend on the thread count.

use rayon::prelude::*;

use super::{chunk_lanes, chunks, enabled, input_transform, kernel_gradient, lanes, suits, Chunk, Plan, SPAN_BYTES};
use crate::ops::cpu::conv::Geometry;
use crate::ops::cpu::filter::PARTS;
use crate::ops::cpu::gemm::{matmul, Mat, MatMut, Threads};
use crate::ops::cpu::scratch::Scratch;
use crate::ops::cpu::simd::{detect, with_lanes, Lanes};
use candle_core::Result;

/// Whether the weight gradient of a geometry goes here: a 3x3 stride-1 pad-1 convolution that
/// Winograd's forward would take.
pub(crate) fn suits_filter(g: &Geometry) -> bool {
    enabled() && g.stride == 1 && (g.kh, g.kw, g.pad) == (3, 3, 1) && detect().is_some_and(|isa| suits(isa, (g.c, g.h, g.w), g.o, 3))
}

/// dL/dw [o, c, 3, 3] from x [n, c, h, w] and dL/dy [n, o, h, w], for a geometry that
/// `suits_filter`.
pub(crate) fn backward_filter(x: &[f32], dy: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    let Some(isa) = detect().filter(|_| suits_filter(g)) else {
        candle_core::bail!("winograd filter gradient: needs a 3x3 stride-1 pad-1 conv with even sides and at least 8 input channels on an AVX2 CPU, got {g:?}");
    };
    if x.len() != g.input_len() || dy.len() != g.output_len() {
        candle_core::bail!("winograd filter gradient: {} input and {} gradient elements for {g:?}", x.len(), dy.len());
    }
    let (n, c, h, w, o) = (g.n, g.c, g.h, g.w, g.o);
    let du_len = 16 * o * c;
    if n == 0 {
        return Ok(vec![0.0; g.weight_len()]);
    }
    let lanes = lanes(isa);
    let per_part = n.div_ceil(PARTS.min(n));
    let parts = n.div_ceil(per_part);
    let per_vector = 16 * (c + o) * lanes * 4;
    let span_budget = (SPAN_BYTES / per_vector).next_multiple_of(2).max(2);
    let mut partials = vec![0f32; parts * du_len];
    partials.par_chunks_mut(du_len).enumerate().try_for_each(|(part, du)| -> Result<()> {
        let first = part * per_part;
        let images = per_part.min(n - first);
        let chunks = chunks(images, h / 2, w / 2, lanes / 2);
        let vectors = chunks.len().div_ceil(2);
        let span = span_budget.min(vectors);
        let plan = Plan { c, h, w, o, o_rows: o, tw: w / 2, vectors, span };
        let slots = span * lanes;
        let (mut v, mut yhat) = (Scratch::<f32>::take(16 * c * slots), Scratch::<f32>::take(16 * o * slots));
        let (v, yhat) = (v.as_mut_slice(16 * c * slots), yhat.as_mut_slice(16 * o * slots));
        let (x, dy) = (&x[first * c * h * w..][..images * c * h * w], &dy[first * o * h * w..][..images * o * h * w]);
        for (s, v0) in (0..vectors).step_by(span).enumerate() {
            let span_chunks = &chunks[2 * v0..(2 * (v0 + span)).min(chunks.len())];
            let job = &mut Transforms { plan, chunks: span_chunks, x, dy, v: &mut *v, yhat: &mut *yhat };
            // SAFETY: an `Isa` comes from `detect`; the buffers hold a span.
            with_lanes!(isa, transforms(job: &mut Transforms));
            let k = span_chunks.len().div_ceil(2) * lanes;
            for xi in 0..16 {
                let dst = MatMut { data: &mut du[xi * o * c..][..o * c], rows: o, cols: c, row_stride: c, col_stride: 1 };
                let lhs = Mat { data: &yhat[xi * o * slots..][..o * slots], rows: o, cols: k, row_stride: slots, col_stride: 1 };
                let rhs = Mat { data: &v[xi * c * slots..][..c * slots], rows: c, cols: k, row_stride: slots, col_stride: 1 }.t();
                matmul(dst, lhs, rhs, s > 0, Threads::One)?;
            }
        }
        Ok(())
    })?;
    let (total, rest) = partials.split_at_mut(du_len);
    for part in rest.chunks(du_len) {
        total.par_iter_mut().zip(part).for_each(|(a, b)| *a += *b);
    }
    let total = &*total;
    let mut dw = vec![0f32; g.weight_len()];
    dw.par_chunks_mut(9).enumerate().for_each(|(q, out)| {
        let (oi, ci) = (q / c, q % c);
        out.copy_from_slice(&kernel_gradient(std::array::from_fn(|xi| total[(xi * o + oi) * c + ci] as f64)));
    });
    Ok(dw)
}

/// What one span's transforms read and write.
struct Transforms<'a> {
    plan: Plan,
    chunks: &'a [Chunk],
    /// The part's input and output gradient planes.
    x: &'a [f32],
    dy: &'a [f32],
    /// The span's transformed input, [16][c][span * N], and output gradient, [16][o][span * N].
    v: &'a mut [f32],
    yhat: &'a mut [f32],
}

/// # Safety
/// The CPU supports `L`'s instruction set.
#[inline(always)]
unsafe fn transforms<L: Lanes>(job: &mut Transforms) {
    let vectors = job.chunks.len().div_ceil(2);
    input_transform::<L>(&job.plan, job.x, job.chunks, vectors, job.v);
    gradient_transform::<L>(&job.plan, job.dy, job.chunks, vectors, job.yhat);
}

/// yhat[xi][o][vi * N ..] = A dY A^T for the 2x2 output gradient dY of every tile of the span's
/// chunks, A = [[1, 0], [1, 1], [1, -1], [0, -1]] (the adjoint of the forward's output
/// transform); zeros in the lanes of no tile.
///
/// # Safety
/// The CPU supports `L`'s instruction set; `yhat` holds 16 * o * span * N values.
#[inline(always)]
unsafe fn gradient_transform<L: Lanes>(p: &Plan, dy: &[f32], span_chunks: &[Chunk], vectors: usize, yhat: &mut [f32]) {
    let (n, zero) = (L::N, L::zero());
    let slots = p.span * n;
    assert!(yhat.len() >= 16 * p.o * slots && dy.len() >= span_chunks.last().map_or(0, |ch| (ch.image + 1) * p.o * p.h * p.w));
    for vi in 0..vectors {
        // Per half: the chunk and its lanes (None: all of them).
        let halves: [Option<(Chunk, Option<L::Mask>)>; 2] =
            std::array::from_fn(|h| span_chunks.get(2 * vi + h).map(|ch| (*ch, (ch.count * 2 < n).then(|| L::mask(chunk_lanes(ch, p.tw).2)))));
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
                    value.store(yhat.as_mut_ptr().add(((a * 4 + b) * p.o + oi) * slots + vi * n));
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

    /// Against the im2col path in f64: maps of whole and partial chunks, several spans, parts of
    /// unequal size, channel counts that fill no block.
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
            assert!(worst < 1e-4, "{n}x{c}x{h}x{w} -> {o}: off by {worst}");
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
