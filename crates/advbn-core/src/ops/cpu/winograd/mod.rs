//! 3x3 stride-1 "same" convolutions by Winograd's minimal filtering F(2x2, 3x3): each 2x2 block
//! of outputs (a tile) costs 16 multiply-adds per channel pair instead of 36. The input tile
//! (4x4) and the kernel (3x3) are mapped to 16 transformed values each, multiplied point by point
//! and summed over the input channels (16 small matrix products), and the 16 sums mapped back to
//! the 2x2 outputs (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
//! `correlate` runs the forward and the input gradient (a correlation with the flipped kernel),
//! `filter` the weight gradient (the same products with the tiles as the summed axis).
//!
//! Vectors run across tiles: each half of a vector holds up to N/2 consecutive tiles of one tile
//! row (a `Chunk`; rows of whole half-vectors fill every lane), so the input transform takes the
//! even and odd columns of two half-vectors of input (`Lanes::split`: no gather, the tiles in an
//! order within 128-bit lanes that the output transform's `Lanes::merge` undoes), and
//! the products work on vectors of tiles. A span of tiles at a time, so the transformed values
//! of a span stay in L2.
//!
//! The arithmetic differs from the direct kernels' (the transforms round differently): results
//! agree with them to float32 rounding (tested against f64 like theirs), not bit for bit. Every
//! output is computed by one task in a fixed order, so results do not depend on the thread count.
//! `ADVBN_CPU_WINOGRAD=0` turns the path off (`enabled`).

mod correlate;
mod filter;

pub(super) use correlate::{correlate, correlation_isa};
pub(super) use filter::{backward_filter, suits_filter};

use super::simd::{Isa, Lanes};

/// Bytes the transformed input and the products of one span of tiles aim to stay under (a share
/// of a 512 KB-2 MB L2).
const SPAN_BYTES: usize = 256 << 10;
/// Fewest input channels for which the transforms pay (they cost about what 3-4 channels of
/// products do per tile).
const MIN_CHANNELS: usize = 8;
/// Least share of the lanes that must hold tiles (rows of tiles that are whole half-vectors fill
/// all; ResNet-18's 12x12 maps on AVX2 fill 3/4).
const MIN_OCCUPANCY: f64 = 0.74;

/// Whether Winograd's path may be used: not when `ADVBN_CPU_WINOGRAD=0` (read once), for sums in
/// the direct kernels' order as before the path existed. `1` or unset: used (the addon refuses
/// other values before it loads: `src/native.ts`).
pub(super) fn enabled() -> bool {
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("ADVBN_CPU_WINOGRAD").map_or(true, |v| v.trim() != "0"))
}

/// The lanes of a vector for `isa`.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    }
}

/// Whether a "same" correlation of images [c, h, w] into `o` channels with a `k` x `k` kernel can
/// go here: a 3x3 kernel, even sides, tile rows that fill most lanes (`occupancy`) and enough
/// channels.
pub(super) fn suits(isa: Isa, (c, h, w): (usize, usize, usize), o: usize, k: usize) -> bool {
    k == 3 && h % 2 == 0 && w % 2 == 0 && h * w > 0 && occupancy(h, w, lanes(isa)) >= MIN_OCCUPANCY && c >= MIN_CHANNELS && o >= 4
}

/// `isa` if its kernels take a map (`own`), else, on an AVX-512 CPU, AVX2's where they take it
/// with every lane holding a tile: 8x8 maps, whose tile rows fill half of an AVX-512 half-vector,
/// ran 1.15-1.2x faster through AVX2's Winograd than through AVX-512's direct kernels (s20_l3's
/// three passes, bench/NOTES.md change 38). 12x12 maps (AVX2's lanes three-quarters full) stay on
/// AVX-512's direct kernels, which measured 1.3x faster there.
fn with_fallback(isa: Isa, (h, w): (usize, usize), own: impl Fn(Isa) -> bool) -> Option<Isa> {
    if own(isa) {
        Some(isa)
    } else if isa == Isa::Avx512 && occupancy(h, w, lanes(Isa::Avx2)) == 1.0 && own(Isa::Avx2) {
        Some(Isa::Avx2)
    } else {
        None
    }
}

/// The 16 transformed values of one 3x3 kernel g (row-major): G g G^T with
/// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]], in f64 and rounded once.
fn transform_kernel(g: [f32; 9]) -> [f32; 16] {
    let g = g.map(f64::from);
    let rows = |a: f64, b: f64, c: f64| [a, (a + b + c) / 2.0, (a - b + c) / 2.0, c];
    // Gg: 4 rows of 3, column by column.
    let mut gg = [[0f64; 3]; 4];
    for j in 0..3 {
        let col = rows(g[j], g[3 + j], g[6 + j]);
        for (i, v) in col.into_iter().enumerate() {
            gg[i][j] = v;
        }
    }
    let mut u = [0f32; 16];
    for (i, row) in gg.iter().enumerate() {
        for (j, v) in rows(row[0], row[1], row[2]).into_iter().enumerate() {
            u[i * 4 + j] = v as f32;
        }
    }
    u
}

/// The gradient of a 3x3 kernel from that of its 16 transformed values (the adjoint of
/// `transform_kernel`): G^T du G, in f64 and rounded once.
fn kernel_gradient(du: [f64; 16]) -> [f32; 9] {
    let cols = |a: f64, b: f64, c: f64, d: f64| [a + (b + c) / 2.0, (b - c) / 2.0, (b + c) / 2.0 + d];
    // G^T du: 3 rows of 4, column by column; then times G.
    let mut gu = [[0f64; 4]; 3];
    for j in 0..4 {
        for (i, v) in cols(du[j], du[4 + j], du[8 + j], du[12 + j]).into_iter().enumerate() {
            gu[i][j] = v;
        }
    }
    let mut g = [0f32; 9];
    for (i, row) in gu.iter().enumerate() {
        for (j, v) in cols(row[0], row[1], row[2], row[3]).into_iter().enumerate() {
            g[i * 3 + j] = v as f32;
        }
    }
    g
}

/// The output-channel blocks of the products: (first channel, rows). On AVX2 blocks of 6 rows
/// (12 accumulators) and 4 at the end (no padding for even counts); on AVX-512 blocks of 8.
fn blocks(isa: Isa, o: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut o0 = 0;
    match isa {
        Isa::Avx512 => {
            while o0 < o {
                out.push((o0, 8));
                o0 += 8;
            }
        }
        Isa::Avx2 => {
            // 6s, then 4s for what is left (o = 6a + 4b for every even o >= 4; an odd count gets
            // a padded row).
            let even = o.next_multiple_of(2).max(4);
            let fours = match even % 6 {
                0 => 0,
                4 => 1,
                _ => 2,
            };
            let sixes = (even - 4 * fours) / 6;
            for _ in 0..sixes {
                out.push((o0, 6));
                o0 += 6;
            }
            for _ in 0..fours {
                out.push((o0, 4));
                o0 += 4;
            }
        }
    }
    out
}

/// Up to half a vector of consecutive tiles of one tile row: what each half of a vector holds
/// (a row of `tw` tiles is `tw / (N/2)` whole chunks and a partial one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chunk {
    /// The image (counted from the first of the pass), and the tile row and column of the
    /// first tile.
    image: usize,
    ty: usize,
    tx: usize,
    count: usize,
}

/// The chunks of `images` maps of `th` x `tw` tiles, image by image and row by row, `half` tiles
/// at most each.
fn chunks(images: usize, th: usize, tw: usize, half: usize) -> Vec<Chunk> {
    (0..images).flat_map(|image| (0..th).flat_map(move |ty| (0..tw).step_by(half).map(move |tx| Chunk { image, ty, tx, count: half.min(tw - tx) }))).collect()
}

/// The share of the lanes that hold a tile, for an h x w map and `lanes` lanes.
fn occupancy(h: usize, w: usize, lanes: usize) -> f64 {
    let (th, tw) = (h / 2, w / 2);
    let vectors = (th * tw.div_ceil(lanes / 2)).div_ceil(2);
    (th * tw) as f64 / (vectors * lanes).max(1) as f64
}

/// The geometry of a pass over some images' tiles (one image for the correlations, a part of the
/// batch for the weight gradient).
#[derive(Clone, Copy)]
struct Plan {
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    /// Output rows of the products (o rounded up to whole blocks).
    o_rows: usize,
    /// Tiles per row.
    tw: usize,
    /// Vectors of tiles in the pass (two chunks each).
    vectors: usize,
    /// Vectors per span (even but for the last).
    span: usize,
}

impl Plan {
    /// The chunks of span `index` (two per vector; the last span may hold fewer).
    fn span_chunks<'a>(&self, chunks: &'a [Chunk], index: usize) -> &'a [Chunk] {
        let v0 = index * self.span;
        &chunks[2 * v0..(2 * (v0 + self.span)).min(chunks.len())]
    }

    /// Floats from one transformed value's block of a span's transformed input ([c][span * n])
    /// to the next.
    fn input_stride(&self, n: usize) -> usize {
        value_stride(self.c * self.span * n)
    }

    /// The same for the blocks of o_rows rows ([o_rows][span * n]: the products, the
    /// transformed output gradient).
    fn output_stride(&self, n: usize) -> usize {
        value_stride(self.o_rows * self.span * n)
    }
}

/// Floats from one of the 16 transformed values' blocks to the next, for blocks of `len`:
/// an odd number of cache lines, so that the 16 blocks' rows, written or read together by the
/// transforms, fall in 16 different sets of the L1 cache (blocks a multiple of 4 KB apart share
/// one set: 16 streams in its 12 ways evict each other).
fn value_stride(len: usize) -> usize {
    (len.div_ceil(16) | 1) * 16
}

/// Vectors per span for `per_vector` bytes of buffers per vector of tiles: as many as
/// `SPAN_BYTES` holds, even (the products take two at a time), at least 2, at most `vectors`.
fn span_vectors(per_vector: usize, vectors: usize) -> usize {
    (SPAN_BYTES / per_vector).next_multiple_of(2).max(2).min(vectors.max(1))
}

/// The rows the output-channel `blocks` cover (the channels rounded up to whole blocks).
fn output_rows(blocks: &[(usize, usize)]) -> usize {
    blocks.last().map_or(0, |&(o0, rows)| o0 + rows)
}

/// The lanes a chunk's loads and stores touch: (the load from its first tile's left column, the
/// load from its second column, the outputs), as bits (lane 0 = bit 0). The left load skips the
/// padding column left of the map, the right one the column right of it.
fn chunk_lanes(chunk: &Chunk, tw: usize) -> (u32, u32, u32) {
    let all = (1u32 << (2 * chunk.count)) - 1;
    let left = if chunk.tx == 0 { all & !1 } else { all };
    let right = if chunk.tx + chunk.count == tw { all >> 1 } else { all };
    (left, right, all)
}

/// A chunk and the masks of its left and right loads.
type HalfLoads<L> = (Chunk, <L as Lanes>::Mask, <L as Lanes>::Mask);

/// v[xi][c][vi * N ..] = B^T d B for the 4x4 input tile d of every tile of the span's chunks
/// (two per vector, in `Lanes::split`'s lane order; the blocks of each xi `Plan::input_stride`
/// apart), with B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]];
/// zeros in the lanes of no tile.
///
/// # Safety
/// The CPU supports `L`'s instruction set.
#[inline(always)]
unsafe fn input_transform<L: Lanes>(p: &Plan, x: &[f32], span_chunks: &[Chunk], vectors: usize, v: &mut [f32]) {
    let (n, zero) = (L::N, L::zero());
    let (slots, stride) = (p.span * n, p.input_stride(n));
    assert!(v.len() >= 16 * stride && vectors <= p.span);
    // Per vector and half: the chunk and its two loads' masks.
    // (Loops, not closures: a closure does not inherit the instruction set, and the mask's
    // intrinsics then become calls.)
    let mut loads_of: Vec<[Option<HalfLoads<L>>; 2]> = Vec::with_capacity(vectors);
    for vi in 0..vectors {
        let mut halves: [Option<HalfLoads<L>>; 2] = [None, None];
        for (h, half) in halves.iter_mut().enumerate() {
            if let Some(ch) = span_chunks.get(2 * vi + h) {
                let (left, right, _) = chunk_lanes(ch, p.tw);
                *half = Some((*ch, L::mask(left), L::mask(right)));
            }
        }
        loads_of.push(halves);
    }
    // Channel by channel, so that each input plane is read from the cache once and in order.
    for c in 0..p.c {
        for (vi, halves) in loads_of.iter().enumerate() {
            let plane = x.as_ptr().add(c * p.h * p.w);
            // t[i]: the row transform of input row i of the tiles.
            let mut t = [[zero; 4]; 4];
            for (i, ti) in t.iter_mut().enumerate() {
                let mut loads = [[zero; 2]; 2];
                for (hh, half) in halves.iter().enumerate() {
                    let Some((ch, left, right)) = *half else { continue };
                    let Some(row) = (2 * ch.ty + i).checked_sub(1).filter(|&r| r < p.h) else { continue };
                    let base = plane.wrapping_add(ch.image * p.c * p.h * p.w + row * p.w + 2 * ch.tx);
                    loads[0][hh] = L::load_masked(base.wrapping_sub(1), left);
                    loads[1][hh] = L::load_masked(base.wrapping_add(1), right);
                }
                let (d0, d1) = loads[0][0].split(loads[0][1]);
                let (d2, d3) = loads[1][0].split(loads[1][1]);
                *ti = [d0.sub(d2), d1.add(d2), d2.sub(d1), d1.sub(d3)];
            }
            let [t0, t1, t2, t3] = t;
            for (j, (((r0, r1), r2), r3)) in t0.into_iter().zip(t1).zip(t2).zip(t3).enumerate() {
                let col = [r0.sub(r2), r1.add(r2), r2.sub(r1), r1.sub(r3)];
                for (a, value) in col.into_iter().enumerate() {
                    value.store(v.as_mut_ptr().add((a * 4 + j) * stride + c * slots + vi * n));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_transform_of_a_delta_is_its_column_of_g() {
        // g = the centre tap only: G e1 e1^T G^T = outer(G[:, 1], G[:, 1]).
        let mut g = [0f32; 9];
        g[4] = 1.0;
        let col = [0.0, 0.5, -0.5, 0.0];
        let u = transform_kernel(g);
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(u[i * 4 + j], col[i] * col[j]);
            }
        }
    }

    /// <transform_kernel(g), du> = <g, kernel_gradient(du)> for any g and du.
    #[test]
    fn kernel_gradient_is_the_adjoint_of_the_transform() {
        for seed in 0..5 {
            let g: [f32; 9] = std::array::from_fn(|i| ((i * 7 + seed * 13) % 11) as f32 / 4.0 - 1.0);
            let du: [f64; 16] = std::array::from_fn(|i| ((i * 5 + seed * 3) % 13) as f64 / 8.0 - 0.7);
            let forward: f64 = transform_kernel(g).iter().zip(&du).map(|(u, d)| *u as f64 * d).sum();
            let back: f64 = kernel_gradient(du).iter().zip(&g).map(|(k, g)| *k as f64 * *g as f64).sum();
            assert!((forward - back).abs() < 1e-5, "{forward} vs {back}");
        }
    }

    /// AVX-512 CPUs take AVX2's kernels only for maps whose AVX2 tiles fill every lane and that
    /// AVX-512's do not take.
    #[test]
    fn avx512_falls_back_to_avx2_only_where_every_lane_holds_a_tile() {
        let take = |isa, (c, h, w): (usize, usize, usize), o| correlation_isa(isa, (c, h, w), o, 3);
        assert_eq!(take(Isa::Avx512, (64, 8, 8), 64), Some(Isa::Avx2));
        assert_eq!(take(Isa::Avx512, (32, 16, 16), 32), Some(Isa::Avx512));
        assert_eq!(take(Isa::Avx512, (128, 12, 12), 128), None);
        assert_eq!(take(Isa::Avx2, (128, 12, 12), 128), Some(Isa::Avx2));
        assert_eq!(take(Isa::Avx512, (4, 8, 8), 64), None, "too few channels for either");
        assert_eq!(take(Isa::Avx2, (64, 6, 6), 64), None);
    }

    #[test]
    fn output_blocks_cover_every_channel_once() {
        for isa in [Isa::Avx2, Isa::Avx512] {
            for o in 4..80 {
                let b = blocks(isa, o);
                let mut next = 0;
                for &(o0, r) in &b {
                    assert_eq!(o0, next);
                    assert!(matches!((isa, r), (Isa::Avx2, 6 | 4) | (Isa::Avx512, 8)));
                    next += r;
                }
                assert!(next >= o && next - o < if isa == Isa::Avx2 { 2 } else { 8 }, "{isa:?} {o}: {b:?}");
            }
        }
    }

    /// The same bits on 1 and 3 threads, forward and weight gradient (tasks are fixed spans and
    /// parts, not shares of the threads), with a map of several spans and a batch of 1.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        use crate::ops::conv::ConvParams;
        use crate::ops::cpu::conv::Geometry;
        use crate::ops::cpu::same::Weights;
        use crate::ops::cpu::testing::{isas, values};
        for (n, c, h, w, o) in [(1, 16, 64, 32, 16), (5, 8, 16, 16, 8)] {
            let g = Geometry::new((n, c, h, w), (o, c, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            let (x, wt, dy) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let forward: Vec<Vec<u32>> = isas()
                        .into_iter()
                        .filter(|&isa| suits(isa, (c, h, w), o, 3))
                        .map(|isa| correlate(isa, &x, (n, c, h, w), o, Weights::Forward(&wt), None).iter().map(|v| v.to_bits()).collect())
                        .collect();
                    let filter: Vec<u32> =
                        if suits_filter(&g) { backward_filter(&x, &dy, &g).unwrap().iter().map(|v| v.to_bits()).collect() } else { Vec::new() };
                    (forward, filter)
                })
            };
            let (one, three) = (run(1), run(3));
            assert!(one == three, "{n}x{c}x{h}x{w}: 1 and 3 threads differ");
        }
    }

    #[test]
    fn chunks_cover_each_row_in_half_vectors() {
        // 12x12 on AVX2: rows of 6 tiles as 4 + 2, three quarters of the lanes used.
        let c = chunks(2, 6, 6, 4);
        assert_eq!(c.len(), 24);
        let chunk = |image, ty, tx, count| Chunk { image, ty, tx, count };
        assert_eq!((c[0], c[1], c[2], c[12]), (chunk(0, 0, 0, 4), chunk(0, 0, 4, 2), chunk(0, 1, 0, 4), chunk(1, 0, 0, 4)));
        assert_eq!(occupancy(12, 12, 8), 0.75);
        assert_eq!((occupancy(16, 16, 8), occupancy(8, 8, 16), occupancy(6, 6, 8)), (1.0, 0.5, 9.0 / 16.0));
        // The first chunk's left load skips the padding column, a row's last chunk's right load
        // the one past the map.
        assert_eq!(chunk_lanes(&c[0], 6), (0b1111_1110, 0b1111_1111, 0b1111_1111));
        assert_eq!(chunk_lanes(&c[1], 6), (0b1111, 0b0111, 0b1111));
    }
}
