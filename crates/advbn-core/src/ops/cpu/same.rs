//! Stride-1 "same" convolutions (k = 2 pad + 1: the ResNets' 3x3 and 1x1 layers) read straight
//! from the NCHW planes (float32, AVX-512 or AVX2).
//!
//! With the output as large as the input, output position q = oy * w + ox of a plane reads tap
//! (i, j) at input position q + (i - pad) * w + (j - pad): consecutive outputs read consecutive
//! inputs, so a register tile of `V` vectors of positions loads them directly, masking off the
//! lanes whose tap falls in the padding (outside the row or the plane). No padded copy, no
//! dropped columns, and the tile stores straight into the output. Each tile is `R` output
//! channels (broadcast weights) by `V` vectors of positions; the channel sum runs in blocks so a
//! block's weights stay in L1 while the tiles sweep the plane.
//!
//! The input gradient of such a conv is one too (the flipped kernel, channel axes swapped).
//! Every output is summed by one tile in a fixed order: results do not depend on the thread count.

use std::borrow::Cow;
use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::cache::l1_budget;
use super::conv::Geometry;
use super::scratch::{filled, Scratch};
use super::simd::{detect, rank1_update, tile_fns, Isa, Lanes};
use super::{blocked, winograd};
use candle_core::Result;

/// Output channels per tile and position vectors per tile: wide, and narrow for small planes.
/// 24 accumulators of AVX-512's 32 registers and 12 of AVX2's 16 (8 x 2 and 4 x 2 measured 3-10%
/// slower per layer: bench/NOTES.md change 22).
const AVX512_TILE: (usize, usize) = (8, 3);
const AVX512_NARROW: (usize, usize) = (16, 1);
const AVX2_TILE: (usize, usize) = (6, 2);
const AVX2_NARROW: (usize, usize) = (12, 1);
/// Largest kernel side (the masks of a tile live in a fixed array).
const MAX_K: usize = 3;
const MAX_TAPS: usize = MAX_K * MAX_K;

/// What one register tile reads and writes.
struct TileArgs<'a> {
    /// The tile's first position in channel 0 of the image.
    x: *const f32,
    /// Values per channel plane (h * w).
    plane: usize,
    channels: usize,
    /// Where each tap reads, relative to the output position.
    offsets: &'a [isize],
    /// Lanes each tap may read, per position vector: [tap][V] bit masks.
    masks: &'a [u32],
    /// The output block's weights, [channel][tap][R].
    w: *const f32,
    accumulate: bool,
    /// The tile's first output; rows `out_stride` apart.
    out: *mut f32,
    out_stride: usize,
    /// Lanes inside the plane, per position vector (all but the last tile's are full).
    out_masks: &'a [u32],
    /// Applied at the final store (the last channel block): see `Epilogue`.
    epilogue: Option<TileEpilogue>,
}

/// out = ReLU?(sum * scale[row] + shift[row] + residual?), per output channel row.
#[derive(Clone, Copy)]
struct TileEpilogue {
    /// R values: the block's rows.
    scale: *const f32,
    shift: *const f32,
    /// The residual at the tile's first output (rows `out_stride` apart), or null.
    residual: *const f32,
    relu: bool,
}

/// A per-output-channel affine map, an optional residual and an optional ReLU applied to a
/// correlation's result as it is stored (a folded eval-mode BatchNorm).
pub struct Epilogue<'a> {
    pub scale: &'a [f32],
    pub shift: &'a [f32],
    /// Shaped like the output.
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    /// The map of output channel `channel` applied to one stored `sum` (with its residual value,
    /// 0 without one), for the outputs that do not go through a tile's vector epilogue.
    pub(super) fn apply(&self, channel: usize, sum: f32, residual: f32) -> f32 {
        let y = sum * self.scale[channel] + self.shift[channel] + residual;
        if self.relu {
            y.max(0.0)
        } else {
            y
        }
    }
}

/// out[r][v * L::N + lane] (+)= sum over channels c and taps t of
/// w[(c * taps + t) * R + r] * x[c * plane + offsets[t] + v * L::N + lane] (0 where masked).
///
/// # Safety
/// The CPU supports `L`'s instruction set; every unmasked lane names a readable input, `w` is
/// readable for the channels' taps, `out` readable (when accumulating) and writable in the
/// lanes of `out_masks` of R rows.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const V: usize>(a: &TileArgs) {
    let taps = a.offsets.len();
    let mut masks = [[L::mask(0); V]; MAX_TAPS];
    for (t, row) in masks.iter_mut().enumerate().take(taps) {
        for (v, m) in row.iter_mut().enumerate() {
            *m = L::mask(a.masks[t * V + v]);
        }
    }
    let mut out_masks = [L::mask(0); V];
    for (v, m) in out_masks.iter_mut().enumerate() {
        *m = L::mask(a.out_masks[v]);
    }
    let mut acc = [[L::zero(); V]; R];
    if a.accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, accv) in row.iter_mut().enumerate() {
                *accv = L::load_masked(a.out.add(r * a.out_stride + v * L::N), out_masks[v]);
            }
        }
    }
    for c in 0..a.channels {
        let xc = a.x.wrapping_add(c * a.plane);
        let wc = a.w.add(c * taps * R);
        for (t, &off) in a.offsets.iter().enumerate() {
            let src = xc.wrapping_offset(off);
            let mut b = [L::zero(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = L::load_masked(src.wrapping_add(v * L::N), masks[t][v]);
            }
            rank1_update(&mut acc, wc.add(t * R), &b);
        }
    }
    if let Some(e) = a.epilogue {
        let zero = L::zero();
        for (r, row) in acc.iter_mut().enumerate() {
            let (scale, shift) = (L::splat(*e.scale.add(r)), L::splat(*e.shift.add(r)));
            for (v, accv) in row.iter_mut().enumerate() {
                let mut y = shift.fma(*accv, scale);
                if !e.residual.is_null() {
                    y = y.add(L::load_masked(e.residual.add(r * a.out_stride + v * L::N), out_masks[v]));
                }
                *accv = if e.relu { y.max(zero) } else { y };
            }
        }
    }
    // Full vectors store plainly: AVX2's masked store is microcoded on AMD's Zen 1-3, and with
    // few channels (a 3-channel stem: 27 taps per tile) it cost as much as the tile's FMAs.
    let full = u32::MAX >> (32 - L::N);
    for (r, row) in acc.iter().enumerate() {
        for (v, accv) in row.iter().enumerate() {
            let at = a.out.add(r * a.out_stride + v * L::N);
            if a.out_masks[v] == full {
                accv.store(at);
            } else {
                accv.store_masked(at, out_masks[v]);
            }
        }
    }
}

type TileFn = unsafe fn(&TileArgs);

tile_fns!(
    tile,
    TileArgs,
    [
        (tile_avx512, "avx512f", super::simd::Avx512, AVX512_TILE),
        (narrow_avx512, "avx512f", super::simd::Avx512, AVX512_NARROW),
        (tile_avx2, "avx2,fma", super::simd::Avx2, AVX2_TILE),
        (narrow_avx2, "avx2,fma", super::simd::Avx2, AVX2_NARROW),
        (half_avx512, "avx512f", super::simd::Avx512, (AVX512_TILE.0, 1)),
        (half_avx2, "avx2,fma", super::simd::Avx2, (AVX2_TILE.0, 1)),
    ]
);

/// The kernels for `positions` outputs per plane.
struct Kernels {
    /// For every tile of `vectors` vectors.
    tile: TileFn,
    /// For a plane's last tile when one vector holds what is left (the wide tile's rows with one
    /// vector: no lane wasted on rounding).
    last: Option<TileFn>,
    /// Output channels per tile.
    rows: usize,
    vectors: usize,
    lanes: usize,
}

/// The wide tile, with a one-vector tile for a plane's remainder; the narrow tile when the
/// wide one would compute over 15% more positions even so (planes under two vectors).
fn kernel(isa: Isa, positions: usize) -> Kernels {
    let (wide, narrow, half, lanes) = match isa {
        Isa::Avx512 => ((tile_avx512 as TileFn, AVX512_TILE), (narrow_avx512 as TileFn, AVX512_NARROW), half_avx512 as TileFn, 16),
        Isa::Avx2 => ((tile_avx2 as TileFn, AVX2_TILE), (narrow_avx2 as TileFn, AVX2_NARROW), half_avx2 as TileFn, 8),
    };
    let wide_tile = wide.1 .1 * lanes;
    let remainder = positions % wide_tile;
    let half_fits = remainder > 0 && remainder <= lanes;
    let wide_computed = positions - remainder + if half_fits { lanes } else { remainder.next_multiple_of(wide_tile) };
    if 100 * wide_computed > 115 * positions.div_ceil(narrow.1 .1 * lanes) * narrow.1 .1 * lanes {
        return Kernels { tile: narrow.0, last: None, rows: narrow.1 .0, vectors: narrow.1 .1, lanes };
    }
    Kernels { tile: wide.0, last: half_fits.then_some(half), rows: wide.1 .0, vectors: wide.1 .1, lanes }
}

/// Whether a geometry goes here: stride 1 and a square kernel of side <= 3 with "same" padding
/// (any map size: small maps run batch-wide, see `Correlation::run`).
pub fn suits(g: &Geometry) -> bool {
    detect().is_some() && check(g).is_ok()
}

fn check(g: &Geometry) -> Result<()> {
    if g.stride != 1 || g.kh != g.kw || g.kh > MAX_K || g.kh != 2 * g.pad + 1 {
        candle_core::bail!("same conv: needs stride 1 and a k x k kernel (k <= {MAX_K}) with padding (k - 1) / 2, got {g:?}");
    }
    Ok(())
}

fn isa() -> Result<Isa> {
    detect().ok_or_else(|| candle_core::Error::Msg("same conv: this CPU has neither AVX-512 nor AVX2 + FMA".into()))
}

/// The conv weights [O][C][k * k] as a correlation reads them.
#[derive(Clone, Copy)]
pub(super) enum Weights<'a> {
    /// The forward: correlation channel c -> o is the conv's c -> o.
    Forward(&'a [f32]),
    /// The input gradient: correlation channel c -> o is the conv's o -> c, the kernel flipped.
    Flipped(&'a [f32]),
}

impl Weights<'_> {
    /// Every block's panel [block][c][tap][r] of a correlation with `c` inputs and `o` outputs,
    /// zero past the last output channel; every element of `packed` is written. Runs on the
    /// compute pool; a copy, so the thread count changes nothing.
    pub(super) fn pack_all(&self, r: usize, c: usize, o: usize, taps: usize, packed: &mut [f32]) {
        let panel_len = c * taps * r;
        debug_assert_eq!(packed.len(), o.div_ceil(r) * panel_len);
        match *self {
            Weights::Forward(w) => {
                // w[o][c][t]: each of a block's output channels is one contiguous row.
                packed.par_chunks_mut(panel_len).enumerate().for_each(|(block, panel)| {
                    let real = r.min(o - block * r);
                    let rows: Vec<&[f32]> = (0..real).map(|i| &w[(block * r + i) * c * taps..][..c * taps]).collect();
                    interleave(&rows, r, panel);
                });
            }
            Weights::Flipped(w) => {
                // Correlation input ci is the conv's output ci, output i its input: w[ci][i][t],
                // the taps reversed. A task packs a run of blocks reading w row by row (ci), so
                // it streams the weights once; one block at a time would jump o * taps values per
                // ci (18 KB on ResNet-18's layer 4: a TLB miss every few values).
                let blocks = o.div_ceil(r);
                let per_task = blocks.div_ceil((2 * rayon::current_num_threads()).min(blocks).max(1));
                packed.par_chunks_mut(per_task * panel_len).enumerate().for_each(|(task, panels)| {
                    let first = task * per_task;
                    for ci in 0..c {
                        let row = &w[ci * o * taps..][..o * taps];
                        for (b, panel) in panels.chunks_exact_mut(panel_len).enumerate() {
                            let block = first + b;
                            let real = r.min(o - block * r);
                            let src = &row[block * r * taps..][..real * taps];
                            let dst = &mut panel[ci * taps * r..][..taps * r];
                            for (t, slot) in dst.chunks_exact_mut(r).enumerate() {
                                for (i, d) in slot.iter_mut().enumerate() {
                                    *d = if i < real { src[i * taps + taps - 1 - t] } else { 0.0 };
                                }
                            }
                        }
                    }
                });
            }
        }
    }
}

/// panel[k * r + i] = rows[i][k] (0 for i past the rows): up to r equally long rows interleaved.
/// Groups of eight rows by 8 x 8 transposes in AVX2 registers (the scalar stores, r values
/// apart, were 6% of ResNet-18's eval samples), the rest value by value.
fn interleave(rows: &[&[f32]], r: usize, panel: &mut [f32]) {
    let len = rows.first().map_or(0, |row| row.len());
    assert!(
        rows.len() <= r && rows.iter().all(|row| row.len() == len) && panel.len() == len * r,
        "interleave: {} rows of {len} into a panel of {} for r = {r}",
        rows.len(),
        panel.len()
    );
    let (mut grouped, mut whole) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if detect().is_some() {
        (grouped, whole) = (rows.len() / 8 * 8, len / 8 * 8);
        // SAFETY: every CPU `detect` accepts has AVX2; the lengths are asserted above.
        unsafe { transpose_groups(&rows[..grouped], r, whole, panel) };
    }
    for k in 0..len {
        let first = if k < whole { grouped } else { 0 };
        for (i, d) in panel[k * r..][..r].iter_mut().enumerate().skip(first) {
            *d = rows.get(i).map_or(0.0, |row| row[k]);
        }
    }
}

/// `interleave` for the first `rows.len()` (a multiple of 8) rows and the first `whole` (a
/// multiple of 8) values of each.
///
/// # Safety
/// The CPU has AVX2; every row holds `whole` values and `panel` whole * r, with r >= rows.len().
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_groups(rows: &[&[f32]], r: usize, whole: usize, panel: &mut [f32]) {
    use super::simd::Avx2;
    let out = panel.as_mut_ptr();
    for k0 in (0..whole).step_by(8) {
        for (g, group) in rows.chunks_exact(8).enumerate() {
            let block: [Avx2; 8] = std::array::from_fn(|j| Avx2::load(group[j][k0..][..8].as_ptr()));
            for (kk, v) in Avx2::transpose8(block).into_iter().enumerate() {
                v.store(out.add((k0 + kk) * r + g * 8));
            }
        }
    }
}

/// Which algorithms a correlation may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    /// The fastest for the geometry: Winograd's F(2x2, 3x3) where it suits (`winograd/`).
    Fastest,
    /// The direct kernels only: every output one chain of fused multiply-adds in the reference
    /// order (`testing::fma_chain_reference`).
    Direct,
}

impl Method {
    /// `Fastest`, or `Direct` when `ADVBN_CPU_WINOGRAD=0` (`winograd::enabled`).
    fn chosen() -> Self {
        if winograd::enabled() {
            Method::Fastest
        } else {
            Method::Direct
        }
    }
}

/// A "same" correlation of `input` [n, c, h, w] into o channels with `weights`.
struct Correlation {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
}

impl Correlation {
    fn run(&self, isa: Isa, method: Method, input: &[f32], weights: Weights, epilogue: Option<&Epilogue>) -> Result<Vec<f32>> {
        let (n, c, h, w, k) = (self.n, self.c, self.h, self.w, self.k);
        if input.len() != n * c * h * w {
            candle_core::bail!("same conv: input has {} elements, expected {}", input.len(), n * c * h * w);
        }
        if let Some(e) = epilogue {
            if e.scale.len() != self.o || e.shift.len() != self.o || e.residual.is_some_and(|r| r.len() != n * self.o * h * w) {
                candle_core::bail!("same conv: the epilogue's scale, shift or residual does not match the output");
            }
        }
        if let Some(winograd_isa) = winograd::correlation_isa(isa, (c, h, w), self.o, k).filter(|_| method == Method::Fastest) {
            return Ok(winograd::correlate(winograd_isa, input, (n, c, h, w), self.o, weights, epilogue));
        }
        let (image_len, taps, pad) = (h * w, k * k, (k - 1) / 2);
        // Small maps (the late stages' 6x6 and 3x3) run as one plane of the whole batch: the
        // input rearranged channel-major ([c][n][h * w]), so tiles run across images (the masks
        // keep every tap inside its own image) and no lane is wasted on rounding.
        let batched = {
            let kernels = kernel(isa, image_len);
            let tile = kernels.vectors * kernels.lanes;
            let computed = if kernels.last.is_some() { image_len.next_multiple_of(kernels.lanes) } else { image_len.next_multiple_of(tile) };
            5 * image_len < 4 * computed
        };
        // Maps under 8x8 that a whole tile of output channels along the lanes fits (6x6: +10-20%
        // on AVX-512, +45% on AVX2; 8x8 fills the per-image tiles and measured 20% slower there:
        // bench/RESULTS.md), and on AVX2 sides 12 to 24 too (ResNet-18's layers 1-2 at 96 px:
        // 1.2-1.3x on an AMD EPYC once the blocked tiles stopped spilling; 8x8 and 32x32
        // unchanged: bench/NOTES.md changes 30-31).
        let blocked_pays = (h * w < 64 && h.max(w) <= 12) || (isa == Isa::Avx2 && h.min(w) >= 12);
        if let Some(shape) = blocked::shape(isa, h, w).filter(|_| blocked_pays) {
            return Ok(blocked::correlate(shape, input, (n, c, h, w), self.o, k, weights, epilogue));
        }
        let (images, hw) = if batched { (1, n * image_len) } else { (n, image_len) };
        let channel_major = |data: &[f32], channels: usize| -> Vec<f32> {
            let mut out = vec![0f32; data.len()];
            out.par_chunks_mut(n * image_len).enumerate().for_each(|(ch, dst)| {
                for (b, d) in dst.chunks_mut(image_len).enumerate() {
                    d.copy_from_slice(&data[(b * channels + ch) * image_len..][..image_len]);
                }
            });
            out
        };
        let rearranged = batched.then(|| channel_major(input, c));
        let input = rearranged.as_deref().unwrap_or(input);
        let residual: Option<Cow<[f32]>> =
            epilogue.and_then(|e| e.residual).map(|res| if batched { Cow::Owned(channel_major(res, self.o)) } else { Cow::Borrowed(res) });
        let kernels = kernel(isa, hw);
        let (r, v, lanes) = (kernels.rows, kernels.vectors, kernels.lanes);
        let tile = v * lanes;
        let tiles = hw.div_ceil(tile);
        // The last tile's kernel and its vector count.
        let (last_kernel, last_vectors) = match kernels.last {
            Some(f) => (f, 1),
            None => (kernels.tile, v),
        };
        let offsets: Vec<isize> = (0..taps).map(|t| (t / k) as isize * w as isize + (t % k) as isize - (pad * (w + 1)) as isize).collect();
        // Per tile: which lanes each tap may read ([tap][vectors]), and which are in the plane
        // ([vectors]); tile t's entries start at t * taps * v and t * v (the last tile uses as
        // many vectors as its kernel has).
        let mut masks = vec![0u32; tiles * taps * v];
        let mut out_masks = vec![0u32; tiles * v];
        for t in 0..tiles {
            let vectors = if t + 1 == tiles { last_vectors } else { v };
            for vi in 0..vectors {
                for lane in 0..lanes {
                    let q = t * tile + vi * lanes + lane;
                    if q >= hw {
                        continue;
                    }
                    out_masks[t * v + vi] |= 1 << lane;
                    let local = q % image_len;
                    let (oy, ox) = ((local / w) as isize, (local % w) as isize);
                    for tap in 0..taps {
                        let (iy, ix) = (oy + (tap / k) as isize - pad as isize, ox + (tap % k) as isize - pad as isize);
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            masks[t * taps * v + tap * vectors + vi] |= 1 << lane;
                        }
                    }
                }
            }
        }
        // Weights as one contiguous panel per block of r output channels, [block][c][tap][r].
        let blocks = self.o.div_ceil(r);
        let mut packed = Scratch::<f32>::take(blocks * c * taps * r);
        let packed = packed.as_mut_slice(blocks * c * taps * r);
        weights.pack_all(r, c, self.o, taps, packed);
        // A channel block of the panel stays in L1 while the tiles sweep it.
        let channel_block = (l1_budget() / (taps * r * 4)).clamp(1, c);
        // The epilogue's per-channel values, padded to whole blocks.
        let padded_channels = |v: &[f32]| {
            let mut p = v.to_vec();
            p.resize(blocks * r, 0.0);
            p
        };
        let (scale, shift) = match epilogue {
            Some(e) => (padded_channels(e.scale), padded_channels(e.shift)),
            None => (Vec::new(), Vec::new()),
        };
        // A task per image and group of output blocks (`direct::blocks_per_task`).
        let blocks_per_group = super::direct::blocks_per_task(images, blocks);
        let (packed, offsets, masks, out_masks) = (&*packed, &offsets[..], &masks[..], &out_masks[..]);
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(self.o * hw).enumerate().for_each(|(img, out_img)| {
                out_img.par_chunks_mut(blocks_per_group * r * hw).enumerate().for_each(|(group, out_group)| {
                    let first_block = group * blocks_per_group;
                    let rows = out_group.len() / hw;
                    let group_blocks = rows.div_ceil(r);
                    // The last block of the last group may hold fewer than r channels: its tiles
                    // write r rows into `partial`, whose real rows are copied out at the end.
                    let partial_rows = rows % r;
                    let mut partial = vec![0f32; if partial_rows > 0 { r * hw } else { 0 }];
                    let x = input[img * c * hw..][..c * hw].as_ptr();
                    for c0 in (0..c).step_by(channel_block) {
                        let channels = channel_block.min(c - c0);
                        for b in 0..group_blocks {
                            let w = packed[((first_block + b) * c + c0) * taps * r..].as_ptr();
                            let rows_out = if b == group_blocks - 1 && partial_rows > 0 {
                                partial.as_mut_ptr()
                            } else {
                                out_group.as_mut_ptr().wrapping_add(b * r * hw) as *mut f32
                            };
                            let last = c0 + channels == c;
                            let partial_block = b == group_blocks - 1 && partial_rows > 0;
                            // The epilogue of a full block runs as its tiles store; a partial
                            // block's runs when its real rows are copied out below.
                            let o0 = (first_block + b) * r;
                            let residual_rows = residual.as_deref().map(|res| res[(img * self.o + o0) * hw..].as_ptr());
                            for t in 0..tiles {
                                let (tile_kernel, tile_vectors) = if t + 1 == tiles { (last_kernel, last_vectors) } else { (kernels.tile, v) };
                                let tile_epilogue = epilogue.filter(|_| last && !partial_block).map(|e| TileEpilogue {
                                    scale: scale[o0..].as_ptr(),
                                    shift: shift[o0..].as_ptr(),
                                    residual: residual_rows.map_or(std::ptr::null(), |rows| rows.wrapping_add(t * tile)),
                                    relu: e.relu,
                                });
                                let args = TileArgs {
                                    x: x.wrapping_add(c0 * hw + t * tile),
                                    plane: hw,
                                    channels,
                                    offsets,
                                    masks: &masks[t * taps * v..][..taps * tile_vectors],
                                    w,
                                    accumulate: c0 > 0,
                                    out: rows_out.wrapping_add(t * tile),
                                    out_stride: hw,
                                    out_masks: &out_masks[t * v..][..tile_vectors],
                                    epilogue: tile_epilogue,
                                };
                                // SAFETY: unmasked input lanes lie inside this image's channels
                                // c0..c0 + channels (the masks keep every tap inside its plane);
                                // the panel holds those channels; the tile writes (and, after
                                // the first channel block, reads back) r rows of its in-plane
                                // positions, inside this group's rows or `partial`.
                                unsafe { tile_kernel(&args) };
                            }
                        }
                    }
                    if partial_rows > 0 {
                        let first = (group_blocks - 1) * r * hw;
                        let o0 = (first_block + group_blocks - 1) * r;
                        for (i, (d, s)) in out_group[first..].iter_mut().zip(&partial).enumerate() {
                            let value = match epilogue {
                                Some(e) => {
                                    let o = o0 + i / hw;
                                    e.apply(o, *s, residual.as_deref().map_or(0.0, |res| res[(img * self.o + o) * hw + i % hw]))
                                }
                                None => *s,
                            };
                            d.write(value);
                        }
                    }
                });
            });
        };
        // SAFETY: every tile stores all its in-plane positions of its r rows; the tiles cover
        // each plane, the blocks every channel of the group (a partial block's real rows are
        // copied from `partial`).
        let out = unsafe { filled(images * self.o * hw, fill) };
        if !batched {
            return Ok(out);
        }
        // [o][n][h * w] back to [n][o][h * w].
        let mut y = vec![0f32; out.len()];
        y.par_chunks_mut(image_len).enumerate().for_each(|(q, dst)| {
            let (b, o) = (q / self.o, q % self.o);
            dst.copy_from_slice(&out[(o * n + b) * image_len..][..image_len]);
        });
        Ok(y)
    }
}

/// y = conv2d(x, w) for a geometry that `suits`.
pub fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    forward_with(isa()?, Method::chosen(), x, w, g, None)
}

/// `epilogue`(conv2d(x, w)) for a geometry that `suits`, the map applied as the tiles store.
pub fn forward_affine(x: &[f32], w: &[f32], g: &Geometry, epilogue: &Epilogue) -> Result<Vec<f32>> {
    forward_with(isa()?, Method::chosen(), x, w, g, Some(epilogue))
}

/// dL/dx of a geometry that `suits`: the output gradient correlated with the flipped kernel.
pub fn backward_data(dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    backward_data_with(isa()?, Method::chosen(), dy, w, g)
}

fn forward_with(isa: Isa, method: Method, x: &[f32], w: &[f32], g: &Geometry, epilogue: Option<&Epilogue>) -> Result<Vec<f32>> {
    check(g)?;
    Correlation { n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, k: g.kh }.run(isa, method, x, Weights::Forward(w), epilogue)
}

fn backward_data_with(isa: Isa, method: Method, dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    check(g)?;
    Correlation { n: g.n, c: g.o, h: g.oh, w: g.ow, o: g.c, k: g.kh }.run(isa, method, dy, Weights::Flipped(w), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::{backward_data_im2col, forward_im2col};
    use crate::ops::cpu::testing::{assert_l1_budget_changes_no_bit, fma_chain_reference, isas, values, wide, worst_relative};

    /// Both passes against the im2col path in f64, on every instruction set this CPU has, with
    /// channel counts that do and do not fill the tiles.
    #[test]
    fn forward_and_input_gradient_match_the_im2col_path_in_f64() {
        let isas = isas();
        for (x, o, k, pad) in [
            ((2, 3, 9, 9), 5, 3, 1),
            ((3, 4, 7, 11), 9, 3, 1),
            ((2, 5, 8, 8), 17, 1, 0),
            ((5, 16, 4, 4), 16, 3, 1),
            ((1, 1, 40, 3), 1, 3, 1),
            ((2, 70, 6, 6), 20, 3, 1),
            ((3, 16, 8, 8), 32, 3, 1),
            ((1, 8, 16, 16), 24, 3, 1),
            ((7, 20, 3, 3), 24, 3, 1), // batch-wide plane
            ((2, 8, 12, 12), 16, 3, 1),
            ((2, 8, 8, 8), 16, 3, 1), // AVX-512: a one-vector last tile (64 = 48 + 16)
            ((2, 8, 4, 6), 16, 3, 1), // AVX2: a one-vector last tile (24 = 16 + 8)
            ((3, 9, 5, 5), 12, 1, 0),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride: 1, padding: pad }).unwrap();
            let (xv, wv, gv) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            let y_ref = forward_im2col(&wide(&xv), &wide(&wv), &g).unwrap();
            let dx_ref = backward_data_im2col(&wide(&gv), &wide(&wv), &g).unwrap();
            for (&isa, method) in isas.iter().flat_map(|isa| [(isa, Method::Fastest), (isa, Method::Direct)]) {
                for (name, got, want) in [
                    ("forward", forward_with(isa, method, &xv, &wv, &g, None).unwrap(), &y_ref),
                    ("input gradient", backward_data_with(isa, method, &gv, &wv, &g).unwrap(), &dx_ref),
                ] {
                    let worst = worst_relative(&got, want);
                    assert!(worst < 1e-4, "{isa:?} {method:?} {g:?} {name}: off by {worst}");
                }
            }
        }
    }

    /// The epilogue (scale, shift, residual, ReLU) applied as tiles store, against the plain
    /// forward followed by the same map in f64; output channel counts with partial blocks.
    #[test]
    fn fused_epilogue_matches_the_map_applied_afterwards() {
        let isas = isas();
        for (x, o, k, pad) in [
            ((3, 16, 8, 8), 32, 3, 1),
            ((2, 8, 12, 12), 24, 3, 1),
            ((2, 5, 9, 7), 21, 3, 1),
            ((2, 70, 6, 6), 20, 3, 1),
            ((2, 6, 8, 8), 9, 1, 0),
            ((5, 8, 3, 3), 20, 3, 1),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride: 1, padding: pad }).unwrap();
            let (xv, wv, rv) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            let scale: Vec<f32> = (0..o).map(|i| 0.5 + i as f32 * 0.1).collect();
            let shift: Vec<f32> = (0..o).map(|i| i as f32 * 0.03 - 0.2).collect();
            let plain = forward_im2col(&wide(&xv), &wide(&wv), &g).unwrap();
            let ohw = g.oh * g.ow;
            for (residual, relu) in [(false, false), (false, true), (true, true)] {
                let want: Vec<f64> = plain
                    .iter()
                    .enumerate()
                    .map(|(i, &y)| {
                        let ch = (i / ohw) % o;
                        let v = y * scale[ch] as f64 + shift[ch] as f64 + if residual { rv[i] as f64 } else { 0.0 };
                        if relu {
                            v.max(0.0)
                        } else {
                            v
                        }
                    })
                    .collect();
                let epilogue = Epilogue { scale: &scale, shift: &shift, residual: residual.then_some(&rv[..]), relu };
                for (&isa, method) in isas.iter().flat_map(|isa| [(isa, Method::Fastest), (isa, Method::Direct)]) {
                    let got = forward_with(isa, method, &xv, &wv, &g, Some(&epilogue)).unwrap();
                    let worst = worst_relative(&got, &want);
                    assert!(worst < 1e-4, "{isa:?} {method:?} {g:?} residual={residual} relu={relu}: off by {worst}");
                }
            }
        }
    }

    /// The weight panels' interleave against its definition: row counts from one to r (groups of
    /// eight transposed, the rest one by one, zeros past the rows) and lengths around whole runs.
    #[test]
    fn interleave_puts_each_value_at_k_r_plus_i() {
        for r in [6, 8, 12, 16, 32] {
            for n_rows in 1..=r {
                for len in [1, 7, 8, 9, 27, 64] {
                    let data: Vec<Vec<f32>> = (0..n_rows).map(|i| (0..len).map(|k| (i * 1000 + k) as f32 + 0.5).collect()).collect();
                    let rows: Vec<&[f32]> = data.iter().map(|row| &row[..]).collect();
                    let mut panel = vec![f32::NAN; len * r];
                    interleave(&rows, r, &mut panel);
                    for k in 0..len {
                        for i in 0..r {
                            let want = if i < n_rows { data[i][k] } else { 0.0 };
                            assert_eq!(panel[k * r + i].to_bits(), want.to_bits(), "r {r}, {n_rows} rows of {len}: k {k}, i {i}");
                        }
                    }
                }
            }
        }
    }

    /// The tiles sum in the reference's order (channels, kernel rows, columns; padding taps as
    /// zeros), bit for bit: maps whose rows are one or several vectors, others, a batch-wide
    /// plane, and several channel blocks (130 channels).
    #[test]
    fn sums_are_the_fma_chain_bit_for_bit() {
        for (n, c, h, w, o) in [(2, 5, 8, 8, 13), (1, 3, 16, 16, 7), (2, 4, 9, 7, 6), (1, 130, 8, 8, 9), (3, 6, 4, 4, 8)] {
            let (x, wt) = (values(n * c * h * w, 7), values(o * c * 9, 8));
            let want = fma_chain_reference(&x, &wt, (n, c, h, w), o, 3);
            let g = Geometry::new((n, c, h, w), (o, c, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            for isa in isas() {
                let got = forward_with(isa, Method::Direct, &x, &wt, &g, None).unwrap();
                let differing = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differing, 0, "{isa:?} {n}x{c}x{h}x{w} -> {o}: {differing} outputs differ in their bits");
            }
        }
    }

    /// Channel blocks end where the L1 budget says; the tiles carry their sums across blocks
    /// (per-image tiles, and a batch-wide plane).
    #[test]
    fn the_l1_budget_changes_no_bit() {
        for (x, method) in [((2, 40, 9, 9), Method::Direct), ((7, 40, 3, 3), Method::Direct)] {
            let g = Geometry::new(x, (24, x.1, 3, 3), ConvParams { stride: 1, padding: 1 }).unwrap();
            let (xv, wv, gv) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            let scale: Vec<f32> = (0..24).map(|i| 0.5 + i as f32 * 0.1).collect();
            let epilogue = Epilogue { scale: &scale, shift: &scale, residual: None, relu: true };
            for isa in isas() {
                let label = format!("{isa:?} {method:?} {x:?}");
                assert_l1_budget_changes_no_bit(&format!("{label} forward"), || forward_with(isa, method, &xv, &wv, &g, Some(&epilogue)).unwrap());
                assert_l1_budget_changes_no_bit(&format!("{label} input gradient"), || backward_data_with(isa, method, &gv, &wv, &g).unwrap());
            }
        }
    }

    #[test]
    fn other_geometries_are_refused() {
        for (k, stride, pad) in [(3, 2, 1), (3, 1, 0), (5, 1, 2)] {
            let g = Geometry::new((1, 2, 8, 8), (2, 2, k, k), ConvParams { stride, padding: pad }).unwrap();
            assert!(!suits(&g));
            assert!(forward(&values(g.input_len(), 0), &values(g.weight_len(), 0), &g).is_err());
        }
    }
}
