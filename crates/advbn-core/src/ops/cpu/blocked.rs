//! "Same" correlations of small maps with output channels along the lanes, the layout oneDNN
//! uses there: for maps the per-image "same" tiles would round up wastefully and a whole tile
//! below fits (ResNet-18's 6x6 stage at 96 px; `same.rs` decides).
//!
//! A register tile is `ROWS x COLS` output positions by two vectors of output channels. Each
//! input value under a tap is broadcast once and multiplies both weight vectors, so a tap costs
//! two weight loads and one broadcast per position, and no lane is wasted however small the map:
//! the input is copied once into zero-padded planes (rounded up to whole tiles), so every
//! broadcast is at a fixed offset from the tile's corner and needs no mask. The tiles write a
//! block-major buffer that one pass then scatters into NCHW, applying the epilogue.
//!
//! Every output is summed by one tile over the channels and then the taps in a fixed order:
//! results do not depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::cache::l1_budget;
use super::same::{Epilogue, Weights};
use super::scratch::{filled, Scratch, SharedOut};
use super::simd::{load_barrier, tile_fns, Isa, Lanes};

/// What one register tile reads and writes.
struct TileArgs {
    /// The image's padded input at the tile's top-left tap, channel 0.
    x: *const f32,
    /// Values per padded plane.
    plane: usize,
    /// Values per padded row.
    row: usize,
    channels: usize,
    /// Kernel side.
    k: usize,
    /// Bit `i * ROWS + y`: whether tile row y reads a row of the map (not the padding) under
    /// kernel row i. Taps that read only padding are skipped (their products are zeros).
    rows_read: u32,
    /// Whether the tile spans the map's whole width (COLS == w): its columns' padding taps are
    /// then known at compile time and skipped too.
    full_row: bool,
    /// The block's panel, [channel][tap][VECTORS * lanes].
    w: *const f32,
    /// Whether `out` holds the sums of earlier channels to add to.
    accumulate: bool,
    /// Where the tile's results go, [ROWS][COLS][VECTORS * lanes].
    out: *mut f32,
}

/// out[y][x][o] (+)= sum over channels c and taps (i, j) of w[c][i * k + j][o] * x[c][y + i][x + j],
/// skipping the taps that read padding (zeros: skipping them changes no sum, which starts at +0).
///
/// # Safety
/// The CPU supports `L`'s instruction set; `x` is readable for `ROWS + k - 1` rows of
/// `COLS + k - 1` values of every channel plane, `w` for the channels' taps, and `out` writable for
/// (and, when accumulating, readable for) the tile.
#[inline(always)]
unsafe fn tile<L: Lanes, const COLS: usize, const ROWS: usize, const VECTORS: usize>(a: &TileArgs) {
    match (a.k, a.full_row) {
        (3, true) => tile_k::<L, COLS, ROWS, VECTORS, 3, true>(a),
        (3, false) => tile_k::<L, COLS, ROWS, VECTORS, 3, false>(a),
        (1, _) => tile_k::<L, COLS, ROWS, VECTORS, 1, false>(a),
        (k, _) => unreachable!("blocked tiles run 3x3 and 1x1 kernels, got {k}x{k} (`correlate` checks)"),
    }
}

/// `tile` for kernel side `K`; with `FULL_ROW` the columns' padding taps are skipped.
#[inline(always)]
unsafe fn tile_k<L: Lanes, const COLS: usize, const ROWS: usize, const VECTORS: usize, const K: usize, const FULL_ROW: bool>(a: &TileArgs) {
    let (k, pad) = (K, (K - 1) / 2);
    let width = VECTORS * L::N;
    // The accumulators, a tap's weight vectors and a broadcast in AVX2's 16 registers? (AVX-512's
    // 32 hold every tile here.)
    let hold = L::N == 16 || ROWS * COLS * VECTORS + VECTORS < 16;
    let taps = k * k;
    let mut acc = [[[L::zero(); VECTORS]; COLS]; ROWS];
    if a.accumulate {
        for (y, row) in acc.iter_mut().enumerate() {
            for (col, position) in row.iter_mut().enumerate() {
                for (v, accv) in position.iter_mut().enumerate() {
                    *accv = L::load(a.out.add((y * COLS + col) * width + v * L::N));
                }
            }
        }
    }
    for c in 0..a.channels {
        let xc = a.x.add(c * a.plane);
        let wc = a.w.add(c * taps * width);
        // With K a constant the taps unroll, so a whole-width tile's padding columns drop out
        // at compile time; the rows' padding is a predictable branch per tile row.
        for i in 0..k {
            for j in 0..k {
                let wt = wc.add((i * k + j) * width);
                // Held in registers, or (a tile too wide for that) reloaded per position.
                let wv: [L; VECTORS] = std::array::from_fn(|v| if hold { L::load(wt.add(v * L::N)) } else { L::zero() });
                let xt = xc.add(i * a.row + j);
                for (y, row) in acc.iter_mut().enumerate() {
                    if a.rows_read & (1 << (i * ROWS + y)) == 0 {
                        continue;
                    }
                    let xr = xt.add(y * a.row);
                    for (col, position) in row.iter_mut().enumerate() {
                        if FULL_ROW && (col + j < pad || col + j >= COLS + pad) {
                            continue;
                        }
                        let b = L::splat(*xr.add(col));
                        for (v, (accv, wv)) in position.iter_mut().zip(&wv).enumerate() {
                            let wv = if hold { *wv } else { L::load(wt.add(v * L::N)) };
                            *accv = accv.fma(b, wv);
                        }
                        load_barrier();
                    }
                }
            }
        }
    }
    for (y, row) in acc.iter().enumerate() {
        for (col, position) in row.iter().enumerate() {
            for (v, accv) in position.iter().enumerate() {
                accv.store(a.out.add((y * COLS + col) * width + v * L::N));
            }
        }
    }
}

type TileFn = unsafe fn(&TileArgs);

// 12 positions x 2 vectors = 24 of AVX-512's 32 registers, 6 x 2 of AVX2's 16; a whole 3x3 map
// is 9 x 2 (AVX-512) or 3 x 4 (AVX2). Tiles of fewer accumulators per weight load measured
// slower than the batch-wide "same" path. AVX2's 4 x 2 (8 accumulators) only ends the rows of
// maps 6k + 4 wide (16x16: 6 + 6 + 4 columns instead of 18 computed for 16).
// [COLS, ROWS, VECTORS]
tile_fns!(
    tile,
    TileArgs,
    consts [
        (avx512_12x1, "avx512f", super::simd::Avx512, [12, 1, 2]),
        (avx512_6x2, "avx512f", super::simd::Avx512, [6, 2, 2]),
        (avx512_4x3, "avx512f", super::simd::Avx512, [4, 3, 2]),
        (avx512_3x4, "avx512f", super::simd::Avx512, [3, 4, 2]),
        (avx512_3x3, "avx512f", super::simd::Avx512, [3, 3, 2]),
        (avx2_6x1, "avx2,fma", super::simd::Avx2, [6, 1, 2]),
        (avx2_3x2, "avx2,fma", super::simd::Avx2, [3, 2, 2]),
        (avx2_3x1, "avx2,fma", super::simd::Avx2, [3, 1, 4]),
        (avx2_4x1, "avx2,fma", super::simd::Avx2, [4, 1, 2]),
    ]
);

/// A tile kernel and the output block it covers.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    kernel: TileFn,
    cols: usize,
    rows: usize,
    /// Output channels per tile: vectors x lanes.
    width: usize,
    /// A narrower tile of the same rows and width for a row's last `.1` columns, where the map's
    /// width leaves that remainder (AVX2's 16-wide maps: 6 + 6 + 4 columns, none computed twice).
    last: Option<(TileFn, usize)>,
}

impl Shape {
    /// The narrower tile that ends each row of a w-wide map, if the width leaves its columns.
    fn last_for(&self, w: usize) -> Option<(TileFn, usize)> {
        self.last.filter(|&(_, cols)| w % self.cols == cols)
    }

    /// Positions computed for an h x w map.
    fn computed(&self, h: usize, w: usize) -> usize {
        h.next_multiple_of(self.rows) * if self.last_for(w).is_some() { w } else { w.next_multiple_of(self.cols) }
    }
}

fn shapes(isa: Isa) -> Vec<Shape> {
    let s = |kernel: TileFn, cols, rows, width| Shape { kernel, cols, rows, width, last: None };
    match isa {
        Isa::Avx512 => vec![s(avx512_12x1, 12, 1, 32), s(avx512_6x2, 6, 2, 32), s(avx512_4x3, 4, 3, 32), s(avx512_3x4, 3, 4, 32), s(avx512_3x3, 3, 3, 32)],
        Isa::Avx2 => vec![Shape { last: Some((avx2_4x1, 4)), ..s(avx2_6x1, 6, 1, 16) }, s(avx2_3x2, 3, 2, 16), s(avx2_3x1, 3, 1, 32)],
    }
}

/// Largest map side that goes here.
const MAX_SIDE: usize = 24;

/// The tile for an h x w map: the fewest positions computed (the map rounded up to whole
/// tiles); None for maps over `MAX_SIDE` or where every tile computes over 20% more positions
/// than the map has.
pub(super) fn shape(isa: Isa, h: usize, w: usize) -> Option<Shape> {
    if h > MAX_SIDE || w > MAX_SIDE {
        return None;
    }
    let best = shapes(isa).into_iter().min_by_key(|s| s.computed(h, w))?;
    (5 * best.computed(h, w) <= 6 * h * w).then_some(best)
}

/// `epilogue`(the "same" correlation of `input` [n, c, h, w] into `o` channels with the k x k
/// `weights`) with the tiles of `shape`. The caller (`same.rs`) has checked the lengths of the
/// input and of the epilogue's slices.
#[allow(clippy::too_many_arguments)]
pub(super) fn correlate(
    shape: Shape,
    input: &[f32],
    (n, c, h, w): (usize, usize, usize, usize),
    o: usize,
    k: usize,
    weights: Weights,
    epilogue: Option<&Epilogue>,
) -> Vec<f32> {
    debug_assert_eq!(input.len(), n * c * h * w);
    // The tiles exist for these sides (and the row bits of `TileArgs::rows_read` fit a u32).
    assert!(k == 1 || k == 3, "blocked correlation: a {k}x{k} kernel (1x1 or 3x3 only)");
    let (pad, taps) = ((k - 1) / 2, k * k);
    let (tiles_y, tiles_x) = (h.div_ceil(shape.rows), w.div_ceil(shape.cols));
    // Padded planes, rounded up to whole tiles: every tap of every tile reads inside its plane.
    let (row, rows) = (tiles_x * shape.cols + 2 * pad, tiles_y * shape.rows + 2 * pad);
    let plane = rows * row;
    let mut padded = Scratch::<f32>::take(n * c * plane);
    let padded = padded.as_mut_slice(n * c * plane);
    padded.par_chunks_mut(plane).zip(input.par_chunks(h * w)).for_each(|(dst, src)| {
        dst.fill(0.0);
        for (y, line) in src.chunks_exact(w).enumerate() {
            dst[(y + pad) * row + pad..][..w].copy_from_slice(line);
        }
    });
    // Weights as one panel per block of output channels, [block][c][tap][width].
    let width = shape.width;
    let blocks = o.div_ceil(width);
    let mut packed = Scratch::<f32>::take(blocks * c * taps * width);
    let packed = packed.as_mut_slice(blocks * c * taps * width);
    weights.pack_all(width, c, o, taps, packed);
    // A task is one block's panel over a run of images, a channel block at a time (its slice
    // of the panel stays in L1). Each image's tiles, [tile][ROWS][COLS][width], are scattered
    // into the block's planes right after the last channel block's tiles, while still in L1.
    let tile_len = shape.rows * shape.cols * width;
    let image_len = tiles_y * tiles_x * tile_len;
    let threads = rayon::current_num_threads();
    let runs = if blocks >= 2 * threads { 1 } else { (2 * threads).div_ceil(blocks).min(n) };
    let images_per_run = n.div_ceil(runs);
    // Equal channel blocks (no one-channel remainder) of at most `l1_budget()` bytes each.
    let channel_blocks = c.div_ceil((l1_budget() / (taps * width * 4)).max(1));
    let channel_block = c.div_ceil(channel_blocks);
    let (padded, packed) = (&*padded, &*packed);
    // Per row of tiles, which kernel rows each tile row reads from the map (see TileArgs).
    let rows_read: Vec<u32> = (0..tiles_y)
        .map(|ty| {
            let mut bits = 0;
            for i in 0..k {
                for y in 0..shape.rows {
                    let input_row = (ty * shape.rows + y + i) as isize - pad as isize;
                    if (0..h as isize).contains(&input_row) {
                        bits |= 1 << (i * shape.rows + y);
                    }
                }
            }
            bits
        })
        .collect();
    let (rows_read, full_row) = (&rows_read[..], w == shape.cols);
    // The row's last tile: the narrower one where the width leaves its columns (`Shape::last`).
    let (last_kernel, last_cols) = shape.last_for(w).unwrap_or((shape.kernel, shape.cols));
    // Where each output position of a plane lies in its image's tiles.
    let hw = h * w;
    let sources: Vec<usize> = (0..hw)
        .map(|p| {
            let (oy, ox) = (p / w, p % w);
            let tx = ox / shape.cols;
            let tile_cols = if tx + 1 == tiles_x { last_cols } else { shape.cols };
            ((oy / shape.rows) * tiles_x + tx) * tile_len + ((oy % shape.rows) * tile_cols + ox % shape.cols) * width
        })
        .collect();
    let sources = &sources[..];
    let fill = |out: &mut [MaybeUninit<f32>]| {
        let out = SharedOut(out.as_mut_ptr());
        (0..blocks * runs).into_par_iter().for_each(|task| {
            let (block, run) = (task / runs, task % runs);
            let images = (run * images_per_run)..((run + 1) * images_per_run).min(n);
            let panel = &packed[block * c * taps * width..][..c * taps * width];
            let planes = width.min(o - block * width);
            let mut tiles = Scratch::<f32>::take(images.len() * image_len);
            let tiles = tiles.as_mut_slice(images.len() * image_len);
            for c0 in (0..c).step_by(channel_block) {
                let channels = channel_block.min(c - c0);
                let w = panel[c0 * taps * width..].as_ptr();
                for (img, image_tiles) in images.clone().zip(tiles.chunks_exact_mut(image_len)) {
                    let x = padded[(img * c + c0) * plane..].as_ptr();
                    for (ty, &rows_read) in rows_read.iter().enumerate() {
                        for tx in 0..tiles_x {
                            let kernel = if tx + 1 == tiles_x { last_kernel } else { shape.kernel };
                            let args = TileArgs {
                                x: x.wrapping_add(ty * shape.rows * row + tx * shape.cols),
                                plane,
                                row,
                                channels,
                                k,
                                rows_read,
                                full_row,
                                w,
                                accumulate: c0 > 0,
                                out: image_tiles[(ty * tiles_x + tx) * tile_len..].as_mut_ptr(),
                            };
                            // SAFETY: `shape` came from `shapes(isa)`, kernels of this CPU's
                            // set; the tile reads rows ty * ROWS .. + ROWS + k - 1 and columns
                            // tx * COLS .. + COLS + k - 1 of the image's padded planes c0 ..
                            // c0 + channels, inside them by the rounding above; the panel holds
                            // those channels' taps; the tile writes (after the first channel
                            // block, reads back) its own tile_len values.
                            unsafe { kernel(&args) };
                        }
                    }
                    if c0 + channels == c {
                        let first = (img * o + block * width) * hw;
                        // SAFETY: the planes of (img, this block) are written by this task
                        // only, inside the n * o * hw output.
                        let planes = unsafe { std::slice::from_raw_parts_mut(out.at(first), planes * hw) };
                        let residual = epilogue.and_then(|e| e.residual).map(|r| &r[first..][..planes.len()]);
                        // SAFETY: every CPU the blocked tiles run on (AVX2 or AVX-512) has
                        // AVX2; each position's `width` values lie inside its tile.
                        unsafe { scatter_block(image_tiles, sources, hw, block * width, epilogue, residual, planes) };
                    }
                }
            }
        });
    };
    // SAFETY: the tasks cover every (image, block of channels) once and each scatter writes
    // every position of its planes.
    unsafe { filled(n * o * hw, fill) }
}

/// One image's tiles of one block of output channels into those channels' planes
/// ([channel][position], `planes.len() / hw` of them), the epilogue applied: eight positions by
/// eight channels at a time, read as eight vectors of channels and transposed, so both sides
/// move whole vectors; the positions and channels past the last whole eight one at a time. The
/// epilogue's arithmetic is `Epilogue::apply`'s, operation for operation.
///
/// # Safety
/// The CPU has AVX2; `sources[p] + width` lies inside `tiles` for every position p < hw.
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_block(
    tiles: &[f32],
    sources: &[usize],
    hw: usize,
    first_channel: usize,
    epilogue: Option<&Epilogue>,
    residual: Option<&[f32]>,
    planes: &mut [MaybeUninit<f32>],
) {
    use super::simd::Avx2;
    let channels = planes.len() / hw;
    let (whole_positions, whole_channels) = (hw / 8 * 8, channels / 8 * 8);
    let out = planes.as_mut_ptr() as *mut f32;
    let store = |ch: usize, p: usize, v: Avx2| {
        let v = match epilogue {
            Some(e) => {
                let o = first_channel + ch;
                let mut y = v.mul(Avx2::splat(e.scale[o])).add(Avx2::splat(e.shift[o]));
                // Plus zero without a residual, as `apply` adds (it turns -0 into +0).
                y = y.add(residual.map_or(Avx2::zero(), |r| Avx2::load(r[ch * hw + p..][..8].as_ptr())));
                if e.relu {
                    y.max(Avx2::zero())
                } else {
                    y
                }
            }
            None => v,
        };
        v.store(out.add(ch * hw + p));
    };
    for p in (0..whole_positions).step_by(8) {
        for c0 in (0..whole_channels).step_by(8) {
            let rows: [Avx2; 8] = std::array::from_fn(|i| Avx2::load(tiles[sources[p + i] + c0..][..8].as_ptr()));
            for (i, v) in Avx2::transpose8(rows).into_iter().enumerate() {
                store(c0 + i, p, v);
            }
        }
    }
    let mut one = |ch: usize, p: usize| {
        let s = tiles[sources[p] + ch];
        let v = epilogue.map_or(s, |e| e.apply(first_channel + ch, s, residual.map_or(0.0, |r| r[ch * hw + p])));
        planes[ch * hw + p].write(v);
    };
    for ch in whole_channels..channels {
        (0..hw).for_each(|p| one(ch, p));
    }
    for ch in 0..whole_channels {
        (whole_positions..hw).for_each(|p| one(ch, p));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::{backward_data_im2col, forward_im2col, Geometry};
    use crate::ops::cpu::testing::{assert_l1_budget_changes_no_bit, fma_chain_reference, isas, values, wide, worst_relative};

    /// Every tile shape, on maps that fill whole tiles and maps that do not, with output channel
    /// counts under, at and past one block, input channels past one channel block (50 > 42 of
    /// AVX2's, 21 of AVX-512's): forward, input gradient and the epilogue against the
    /// im2col path in f64.
    #[test]
    fn every_tile_matches_the_im2col_path_in_f64() {
        for isa in isas() {
            for s in shapes(isa) {
                // The third map leaves 4 columns for a row's last tile (AVX2's 6-column tile then
                // ends each row with its 4-column one).
                for (h, w) in [(s.rows, s.cols), (s.rows * 2 - 1, s.cols + 1), (s.rows + 1, 2 * s.cols + 4)] {
                    for (c, o, k) in [(3, 5, 3), (50, 2 * s.width + 3, 3), (6, s.width, 1)] {
                        let g = Geometry::new((2, c, h, w), (o, c, k, k), ConvParams { stride: 1, padding: (k - 1) / 2 }).unwrap();
                        let (x, wt, dy) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
                        let label = format!("{isa:?} tile {}x{} map {h}x{w} c {c} o {o} k {k}", s.cols, s.rows);
                        let y = correlate(s, &x, (2, c, h, w), o, k, Weights::Forward(&wt), None);
                        let y_ref = forward_im2col(&wide(&x), &wide(&wt), &g).unwrap();
                        assert!(worst_relative(&y, &y_ref) < 1e-4, "{label}: forward off by {}", worst_relative(&y, &y_ref));
                        let dx = correlate(s, &dy, (2, o, h, w), c, k, Weights::Flipped(&wt), None);
                        let dx_ref = backward_data_im2col(&wide(&dy), &wide(&wt), &g).unwrap();
                        assert!(worst_relative(&dx, &dx_ref) < 1e-4, "{label}: input gradient off by {}", worst_relative(&dx, &dx_ref));
                        let scale: Vec<f32> = (0..o).map(|i| 0.5 + i as f32 * 0.1).collect();
                        let shift: Vec<f32> = (0..o).map(|i| i as f32 * 0.03 - 0.2).collect();
                        let epilogue = Epilogue { scale: &scale, shift: &shift, residual: Some(&dy), relu: true };
                        let fused = correlate(s, &x, (2, c, h, w), o, k, Weights::Forward(&wt), Some(&epilogue));
                        let plane = h * w;
                        let want: Vec<f64> = y_ref
                            .iter()
                            .enumerate()
                            .map(|(i, &v)| (v * scale[(i / plane) % o] as f64 + shift[(i / plane) % o] as f64 + dy[i] as f64).max(0.0))
                            .collect();
                        assert!(worst_relative(&fused, &want) < 1e-4, "{label}: epilogue off by {}", worst_relative(&fused, &want));
                    }
                }
            }
        }
    }

    /// Skipping the taps that read padding changes no bit: every tile (whole-width ones skip
    /// padding columns too) against fused multiply-adds of every tap, padding included, in the
    /// kernels' order (channels, then kernel rows, then columns).
    #[test]
    fn skipped_padding_taps_change_no_bit() {
        for isa in isas() {
            for s in shapes(isa) {
                for (h, w) in [(s.rows, s.cols), (2 * s.rows + 1, s.cols), (s.rows, s.cols - 1), (s.rows + 1, 2 * s.cols + 4)] {
                    let (n, c, o, k) = (2, 7, s.width + 5, 3);
                    let (x, wt) = (values(n * c * h * w, 4), values(o * c * k * k, 5));
                    let got = correlate(s, &x, (n, c, h, w), o, k, Weights::Forward(&wt), None);
                    let want = fma_chain_reference(&x, &wt, (n, c, h, w), o, k);
                    let differing = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                    assert_eq!(differing, 0, "{isa:?} tile {}x{} map {h}x{w}: {differing} outputs differ in their bits", s.cols, s.rows);
                    // The scatter's vector epilogue does `Epilogue::apply`'s arithmetic.
                    let scale: Vec<f32> = (0..o).map(|i| 0.7 - i as f32 * 0.04).collect();
                    let shift: Vec<f32> = (0..o).map(|i| i as f32 * 0.05 - 0.3).collect();
                    let residual = values(n * o * h * w, 6);
                    for relu in [false, true] {
                        let e = Epilogue { scale: &scale, shift: &shift, residual: Some(&residual), relu };
                        let fused = correlate(s, &x, (n, c, h, w), o, k, Weights::Forward(&wt), Some(&e));
                        let differing = (0..fused.len()).filter(|&q| fused[q].to_bits() != e.apply((q / (h * w)) % o, want[q], residual[q]).to_bits()).count();
                        assert_eq!(
                            differing, 0,
                            "{isa:?} tile {}x{} map {h}x{w} relu {relu}: {differing} epilogue outputs differ in their bits",
                            s.cols, s.rows
                        );
                    }
                }
            }
        }
    }

    /// Channel blocks end where the L1 budget says; the tiles carry their sums across blocks.
    #[test]
    fn the_l1_budget_changes_no_bit() {
        for isa in isas() {
            for s in shapes(isa) {
                let (n, c, h, w, o) = (3, 40, s.rows + 1, s.cols, s.width + 3);
                let (x, wt, dy) = (values(n * c * h * w, 4), values(o * c * 9, 5), values(n * o * h * w, 6));
                let label = format!("{isa:?} tile {}x{}", s.cols, s.rows);
                assert_l1_budget_changes_no_bit(&format!("{label} forward"), || correlate(s, &x, (n, c, h, w), o, 3, Weights::Forward(&wt), None));
                assert_l1_budget_changes_no_bit(&format!("{label} input gradient"), || correlate(s, &dy, (n, o, h, w), c, 3, Weights::Flipped(&wt), None));
            }
        }
    }

    #[test]
    fn the_tile_wastes_little_and_large_maps_go_elsewhere() {
        assert_eq!(shape(Isa::Avx512, 6, 6).map(|s| (s.cols, s.rows)), Some((6, 2)));
        assert_eq!(shape(Isa::Avx512, 12, 12).map(|s| (s.cols, s.rows)), Some((12, 1)));
        assert_eq!(shape(Isa::Avx2, 6, 6).map(|s| (s.cols, s.rows)), Some((6, 1)));
        assert_eq!(shape(Isa::Avx2, 5, 6).map(|s| (s.cols, s.rows)), Some((6, 1)));
        assert_eq!(shape(Isa::Avx512, 3, 3).map(|s| (s.cols, s.rows)), Some((3, 3)));
        assert_eq!(shape(Isa::Avx2, 3, 3).map(|s| (s.cols, s.rows)), Some((3, 1)));
        // AVX2 takes sides up to 24 (`same.rs` decides which go here).
        assert_eq!(shape(Isa::Avx2, 16, 16).map(|s| (s.cols, s.rows)), Some((6, 1)));
        // 16 columns as 6 + 6 + 4: no position computed twice.
        assert_eq!(shape(Isa::Avx2, 16, 16).map(|s| s.computed(16, 16)), Some(256));
        assert_eq!(shape(Isa::Avx2, 24, 24).map(|s| (s.cols, s.rows)), Some((6, 1)));
        // 7x7 maps would compute 72 positions for 49; 25x25 is over the largest side.
        for isa in [Isa::Avx512, Isa::Avx2] {
            for (h, w) in [(7, 7), (25, 25), (1, 1)] {
                assert!(shape(isa, h, w).is_none(), "{isa:?} {h}x{w}");
            }
        }
    }
}
