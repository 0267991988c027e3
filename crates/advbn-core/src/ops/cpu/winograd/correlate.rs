//! The forward and the input gradient: the 16 products broadcast a transformed weight per
//! output channel against vectors of tiles (the register tile of `same.rs`), and the output
//! transform interleaves the tiles' two columns back into NCHW rows (`Lanes::merge`), applying the
//! epilogue as it stores. A task per span of tiles of an image.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{blocks, chunk_lanes, chunks, input_transform, lanes, output_rows, span_vectors, suits, transform_kernel, with_fallback, Chunk, Plan};
use crate::ops::cpu::same::{Epilogue, Weights};
use crate::ops::cpu::scratch::{filled, Scratch, SharedOut};
use crate::ops::cpu::simd::{rank1_update, with_lanes, Isa, Lanes};

/// Fewest vectors of tiles per image for AVX-512 to take this path: ResNet-18's 12x12 maps (3
/// vectors, 128 channels) measured 5-7% slower here than in the direct kernels, whose AVX-512
/// tiles are at their best on them (its 24x24 maps gain 1.25x, AVX2's 8x8 ones, 2 vectors, 1.6x).
const AVX512_MIN_VECTORS: usize = 4;

/// Which instruction set's kernels take a correlation here on a CPU with `isa`, if any
/// (`with_fallback` of: `suits`, and enough tiles per image on AVX-512).
pub(crate) fn correlation_isa(isa: Isa, (c, h, w): (usize, usize, usize), o: usize, k: usize) -> Option<Isa> {
    with_fallback(isa, (h, w), |isa| {
        suits(isa, (c, h, w), o, k) && (isa == Isa::Avx2 || chunks(1, h / 2, w / 2, lanes(isa) / 2).len().div_ceil(2) >= AVX512_MIN_VECTORS)
    })
}

/// A "same" 3x3 correlation of `input` [n, c, h, w] into `o` channels, `epilogue` applied as
/// the outputs are stored. The geometry `suits`.
pub(crate) fn correlate(
    isa: Isa,
    input: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    o: usize,
    weights: Weights,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    debug_assert!(suits(isa, (c, h, w), o, 3));
    let lanes = lanes(isa);
    let blocks = blocks(isa, o);
    let o_rows = output_rows(&blocks);
    let tw = w / 2;
    let chunks = chunks(1, h / 2, tw, lanes / 2);
    let vectors = chunks.len().div_ceil(2);
    let per_vector = 16 * (c + o_rows) * lanes * 4;
    let span = span_vectors(per_vector, vectors);
    let plan = Plan { c, h, w, o, o_rows, tw, vectors, span };
    // Transformed weights [16][c][o_rows] (zero rows past o): a block's rows are contiguous.
    // Per input channel first ([c][o][16], on the compute pool: 16 K kernels on ResNet-18's
    // 12x12 layer), then regrouped per transformed value.
    let mut per_channel = vec![0f32; c * o * 16];
    per_channel.par_chunks_mut(o * 16).enumerate().for_each(|(ci, row)| {
        for (oi, out) in row.chunks_exact_mut(16).enumerate() {
            let g: [f32; 9] = std::array::from_fn(|t| match weights {
                Weights::Forward(wt) => wt[(oi * c + ci) * 9 + t],
                // Correlation input ci is the conv's output ci, output oi its input; taps reversed.
                Weights::Flipped(wt) => wt[(ci * o + oi) * 9 + 8 - t],
            });
            out.copy_from_slice(&transform_kernel(g));
        }
    });
    let mut u = vec![0f32; 16 * c * o_rows];
    u.par_chunks_mut(c * o_rows).enumerate().for_each(|(xi, ux)| {
        for (ci, row) in ux.chunks_exact_mut(o_rows).enumerate() {
            for (oi, value) in row[..o].iter_mut().enumerate() {
                *value = per_channel[(ci * o + oi) * 16 + xi];
            }
        }
    });
    let (u, blocks, chunks) = (&u[..], &blocks[..], &chunks[..]);
    let image_len = h * w;
    // A task per span of an image: spans write disjoint tiles of the image's planes, so the
    // split (and every sum) is the same whatever the thread count.
    let spans = vectors.div_ceil(span);
    let fill = |out: &mut [MaybeUninit<f32>]| {
        let out = SharedOut(out.as_mut_ptr());
        (0..n * spans).into_par_iter().for_each(|task| {
            let (img, span_index) = (task / spans, task % spans);
            let out = out.at(img * o * image_len) as *mut f32;
            let x = &input[img * c * image_len..][..c * image_len];
            let residual = epilogue.and_then(|e| e.residual).map(|r| &r[img * o * image_len..][..o * image_len]);
            let (v_len, m_len) = (16 * plan.input_stride(lanes), 16 * plan.output_stride(lanes));
            let mut v = Scratch::<f32>::take(v_len);
            let mut m = Scratch::<f32>::take(m_len);
            let job = &mut Image { plan, chunks, span_index, x, u, blocks, v: v.as_mut_slice(v_len), m: m.as_mut_slice(m_len), out, epilogue, residual };
            // SAFETY: an `Isa` comes from `detect`; `image` writes the span's outputs of the
            // image's planes, which `out` points to.
            with_lanes!(isa, image(job: &mut Image));
        });
    };
    // SAFETY: the spans of each image cover its tiles, and each writes all of its outputs.
    unsafe { filled(n * o * image_len, fill) }
}

/// What one image's pass reads and writes.
struct Image<'a> {
    plan: Plan,
    chunks: &'a [Chunk],
    /// Which span of `plan.span` vectors.
    span_index: usize,
    /// The image's input planes.
    x: &'a [f32],
    /// The transformed weights, [16][c][o_rows].
    u: &'a [f32],
    /// The output-channel blocks of the products.
    blocks: &'a [(usize, usize)],
    /// A span's transformed input, [16][c][span * N], and its products, [16][o_rows][span * N]
    /// (each xi's block `Plan::input_stride` / `output_stride` from the next).
    v: &'a mut [f32],
    m: &'a mut [f32],
    /// The image's output planes (o of h * w): the span's positions are written.
    out: *mut f32,
    epilogue: Option<&'a Epilogue<'a>>,
    /// The image's residual planes (the epilogue's).
    residual: Option<&'a [f32]>,
}

/// One span of an image: the input transform, the 16 products, the output transform.
///
/// # Safety
/// The CPU supports `L`'s instruction set; `out` is writable for the image's o planes.
#[inline(always)]
unsafe fn image<L: Lanes>(job: &mut Image) {
    let Image { plan: p, chunks, span_index, x, u, blocks, ref mut v, ref mut m, out, epilogue, residual } = *job;
    let (slots, v_stride, m_stride) = (p.span * L::N, p.input_stride(L::N), p.output_stride(L::N));
    assert!(x.len() == p.c * p.h * p.w && chunks.len().div_ceil(2) == p.vectors && span_index * p.span < p.vectors);
    assert!(v.len() >= 16 * v_stride && m.len() >= 16 * m_stride && u.len() == 16 * p.c * p.o_rows);
    // The span's vectors (a half without a chunk reads zeros).
    let span_chunks = p.span_chunks(chunks, span_index);
    let vectors = span_chunks.len().div_ceil(2);
    input_transform::<L>(&p, x, span_chunks, vectors, v);
    for xi in 0..16 {
        let vx = v.as_ptr().add(xi * v_stride);
        let ux = u.as_ptr().add(xi * p.c * p.o_rows);
        let mx = m.as_mut_ptr().add(xi * m_stride);
        // Two vectors of tiles at a time, the last one alone when their count is odd.
        for vi in (0..vectors).step_by(2) {
            let tb = vi * L::N;
            for &(o0, rows) in blocks {
                let (src, w, dst) = (vx.add(tb), ux.add(o0), mx.add(o0 * slots + tb));
                match (rows, vi + 1 < vectors) {
                    (8, true) => products::<L, 8, 2>(src, slots, w, p.o_rows, p.c, dst, slots),
                    (6, true) => products::<L, 6, 2>(src, slots, w, p.o_rows, p.c, dst, slots),
                    (_, true) => products::<L, 4, 2>(src, slots, w, p.o_rows, p.c, dst, slots),
                    (8, false) => products::<L, 8, 1>(src, slots, w, p.o_rows, p.c, dst, slots),
                    (6, false) => products::<L, 6, 1>(src, slots, w, p.o_rows, p.c, dst, slots),
                    (_, false) => products::<L, 4, 1>(src, slots, w, p.o_rows, p.c, dst, slots),
                }
            }
        }
    }
    output_transform::<L>(&p, m, span_chunks, out, epilogue, residual);
}

/// dst[r][0..V * N) = sum over channels c of w[c * w_stride + r] * src[c * src_stride + 0..V * N):
/// R output channels by V vectors of tiles, summed in channel order.
///
/// # Safety
/// The CPU supports `L`'s instruction set; the pointers cover what the loops touch.
#[inline(always)]
unsafe fn products<L: Lanes, const R: usize, const V: usize>(
    src: *const f32,
    src_stride: usize,
    w: *const f32,
    w_stride: usize,
    channels: usize,
    dst: *mut f32,
    dst_stride: usize,
) {
    let mut acc = [[L::zero(); V]; R];
    for c in 0..channels {
        let s = src.add(c * src_stride);
        let b: [L; V] = std::array::from_fn(|v| L::load(s.add(v * L::N)));
        rank1_update(&mut acc, w.add(c * w_stride), &b);
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, accv) in row.iter().enumerate() {
            accv.store(dst.add(r * dst_stride + v * L::N));
        }
    }
}

/// The outputs of the span's tiles: A^T m A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], the
/// epilogue applied, stored into the image's NCHW planes at `out`.
///
/// # Safety
/// The CPU supports `L`'s instruction set; `m` holds the span's products; `out` is writable
/// for the image's o planes.
#[inline(always)]
unsafe fn output_transform<L: Lanes>(p: &Plan, m: &[f32], span_chunks: &[Chunk], out: *mut f32, epilogue: Option<&Epilogue>, residual: Option<&[f32]>) {
    let (n, zero) = (L::N, L::zero());
    let (slots, stride) = (p.span * n, p.output_stride(n));
    assert!(m.len() >= 16 * stride);
    // Per chunk: where its outputs start in a plane, and its lanes (None: all of them).
    // (A loop, not a closure: see `input_transform`.)
    let mut places: Vec<(usize, Option<L::Mask>)> = Vec::with_capacity(span_chunks.len());
    for ch in span_chunks {
        let (_, _, lanes) = chunk_lanes(ch, p.tw);
        places.push((ch.image * p.o * p.h * p.w + 2 * ch.ty * p.w + 2 * ch.tx, if ch.count * 2 < n { Some(L::mask(lanes)) } else { None }));
    }
    for oi in 0..p.o {
        let (scale, shift, relu) = match epilogue {
            Some(e) => (L::splat(e.scale[oi]), L::splat(e.shift[oi]), e.relu),
            None => (zero, zero, false),
        };
        let plane = oi * p.h * p.w;
        for (vi, pair) in places.chunks(2).enumerate() {
            let mv = |xi: usize| L::load(m.as_ptr().add(xi * stride + oi * slots + vi * n));
            // s[a][b]: A^T over the rows, then over the columns below.
            let mut s = [[zero; 4]; 2];
            for (b, col) in (0..4).map(|b| [mv(b), mv(4 + b), mv(8 + b), mv(12 + b)]).enumerate() {
                s[0][b] = col[0].add(col[1]).add(col[2]);
                s[1][b] = col[1].sub(col[2]).sub(col[3]);
            }
            for (dy, sr) in s.iter().enumerate() {
                let y0 = sr[0].add(sr[1]).add(sr[2]);
                let y1 = sr[1].sub(sr[2]).sub(sr[3]);
                let (lo, hi) = y0.merge(y1);
                for (&(start, mask), values) in pair.iter().zip([lo, hi]) {
                    let at = plane + start + dy * p.w;
                    let mut y = values;
                    if epilogue.is_some() {
                        y = shift.fma(y, scale);
                        if let Some(r) = residual {
                            let r = r.as_ptr().add(at);
                            y = y.add(match mask {
                                Some(mask) => L::load_masked(r, mask),
                                None => L::load(r),
                            });
                        }
                        if relu {
                            y = y.max(zero);
                        }
                    }
                    match mask {
                        Some(mask) => y.store_masked(out.add(at), mask),
                        None => y.store(out.add(at)),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{occupancy, MIN_OCCUPANCY};
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::{backward_data_im2col, forward_im2col, Geometry};
    use crate::ops::cpu::testing::{isas, values, wide, worst_relative};

    #[test]
    fn matches_the_definition_to_float_rounding() {
        for (n, c, h, w, o) in [
            (4, 16, 8, 8, 16),
            (4, 8, 16, 16, 10),
            (4, 20, 32, 32, 9),
            (4, 9, 6, 16, 4),
            (5, 64, 8, 8, 64),
            (4, 12, 2, 24, 14),
            (4, 16, 48, 32, 16),
            (4, 16, 12, 12, 12),
            (4, 8, 24, 24, 8),
            (3, 10, 4, 20, 6),
            (4, 8, 2, 2, 4),
            (4, 9, 6, 12, 8),
        ] {
            let g = Geometry::new((n, c, h, w), (o, c, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            let (xv, wv, gv, rv) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3), values(g.output_len(), 4));
            let y_ref = forward_im2col(&wide(&xv), &wide(&wv), &g).unwrap();
            let dx_ref = backward_data_im2col(&wide(&gv), &wide(&wv), &g).unwrap();
            let scale: Vec<f32> = (0..o).map(|i| 0.5 + i as f32 * 0.1).collect();
            let shift: Vec<f32> = (0..o).map(|i| i as f32 * 0.03 - 0.2).collect();
            let mapped: Vec<f64> = y_ref
                .iter()
                .enumerate()
                .map(|(i, &y)| (y * scale[(i / (h * w)) % o] as f64 + shift[(i / (h * w)) % o] as f64 + rv[i] as f64).max(0.0))
                .collect();
            let epilogue = Epilogue { scale: &scale, shift: &shift, residual: Some(&rv), relu: true };
            for isa in isas() {
                if !suits(isa, (c, h, w), o, 3) {
                    assert!(occupancy(h, w, if isa == Isa::Avx2 { 8 } else { 16 }) < MIN_OCCUPANCY, "{isa:?} {n}x{c}x{h}x{w}: should suit");
                    continue;
                }
                for (name, got, want) in [
                    ("forward", correlate(isa, &xv, (n, c, h, w), o, Weights::Forward(&wv), None), &y_ref),
                    ("epilogue", correlate(isa, &xv, (n, c, h, w), o, Weights::Forward(&wv), Some(&epilogue)), &mapped),
                    ("input gradient", correlate(isa, &gv, (n, o, h, w), c, Weights::Flipped(&wv), None), &dx_ref),
                ] {
                    let worst = worst_relative(&got, want);
                    assert!(worst < 1e-4, "{isa:?} {n}x{c}x{h}x{w} -> {o} {name}: off by {worst}");
                }
            }
        }
    }
}
