//! Stride-1 convolution computed directly, without an im2col matrix (float32, AVX-512 or AVX2).
//!
//! The input is copied once into zero-padded planes of width `wp = w + 2p`. Output positions are
//! then numbered in that padded width too (`p' = oy * wp + ox`, the last `wp - ow` of each row are
//! computed and dropped), which makes the input of every kernel tap (i, j) for a run of
//! consecutive positions one contiguous run starting at `p' + i * wp + j`: the kernel loads input
//! vectors straight from the planes and broadcasts packed weights, `R` output channels by `V`
//! vectors of positions per register tile.
//!
//! The input gradient of a stride-1 conv is itself such a convolution (of the output gradient,
//! padded by `k - 1 - p`, with the kernel flipped and its channel axes swapped), so both use the
//! same kernel. Every output element is accumulated by one tile in a fixed order: results do not
//! depend on the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::cache::l1_budget;
use super::conv::Geometry;
use super::same::Weights;
use super::scratch::{filled, Scratch};
use super::simd::{detect, multiversion, narrow_pays, rank1_update, tile_fns, Isa, Lanes};
use super::staging::{stage_image, Staging};
use candle_core::Result;

/// Output channels per register tile (broadcast side) and position vectors per tile, per ISA:
/// a wide tile, and a narrow one for maps where the wide tile's rounding would waste work.
/// AVX2's 6 x 2 (12 of its 16 registers) ran the ResNet-18 stem 10% faster than 4 x 2; AVX-512's
/// 8 x 3 ran r18_l2s2 10% slower than 8 x 2 (bench/NOTES.md change 27).
const AVX512_TILE: (usize, usize) = (8, 2);
const AVX512_NARROW: (usize, usize) = (16, 1);
const AVX2_TILE: (usize, usize) = (6, 2);
const AVX2_NARROW: (usize, usize) = (8, 1);

/// Whether `direct` should run this geometry: stride 1, a padding the flipped kernel can undo,
/// a CPU with the kernels' instruction set, and a map wide enough that the dropped columns and
/// the last tile's rounding waste at most a fifth of the work (measured: on 6x6 maps, where a
/// quarter is wasted, im2col + a matrix product is faster).
pub fn suits(g: &Geometry) -> bool {
    let Some(isa) = detect() else { return false };
    if check(g).is_err() {
        return false;
    }
    let positions = Staging::new(g.h, g.w, g.kh, g.stride, g.pad, 0).positions();
    let (_, _, tile) = kernel(isa, positions);
    let computed = positions.div_ceil(tile) * tile;
    5 * g.oh * g.ow >= 4 * computed
}

/// Whether the input gradient runs directly: stride 1 only (it is then a correlation too).
pub fn suits_input_gradient(g: &Geometry) -> bool {
    g.stride == 1 && suits(g)
}

/// What one register tile reads and writes.
pub(super) struct TileArgs<'a> {
    /// The first position's input in channel 0 of the staged image.
    x: *const f32,
    /// Values per staged channel.
    plane: usize,
    channels: usize,
    /// Where each tap's run starts inside a staged channel.
    offsets: &'a [usize],
    /// The output block's weights, [channel][tap][R].
    w: *const f32,
    /// Add the tile's old values (channel blocks after the first).
    accumulate: bool,
    /// The tile's first output; rows `out_stride` apart.
    out: *mut f32,
    out_stride: usize,
}

/// One register tile: out[r][v * L::N + lane] (+)= sum over channels c and taps t of
/// w[(c * taps + t) * R + r] * x[c * plane + offsets[t] + v * L::N + lane].
///
/// # Safety
/// The CPU supports `L`'s instruction set; `x` is readable at every index the sum names, `w` at
/// `(c * taps + t) * R + r` for r < R, and `out` readable and writable at
/// `r * out_stride + [0, V * L::N)`.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const V: usize>(a: &TileArgs) {
    let mut acc = [[L::zero(); V]; R];
    if a.accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            for (v, accv) in row.iter_mut().enumerate() {
                *accv = L::load(a.out.add(r * a.out_stride + v * L::N));
            }
        }
    }
    for c in 0..a.channels {
        let xc = a.x.add(c * a.plane);
        let wc = a.w.add(c * a.offsets.len() * R);
        for (t, &off) in a.offsets.iter().enumerate() {
            let src = xc.add(off);
            let mut b = [L::zero(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = L::load(src.add(v * L::N));
            }
            rank1_update(&mut acc, wc.add(t * R), &b);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (v, accv) in row.iter().enumerate() {
            accv.store(a.out.add(r * a.out_stride + v * L::N));
        }
    }
}

pub(super) type TileFn = unsafe fn(&TileArgs);

tile_fns!(
    tile,
    TileArgs,
    [
        (tile_avx512, "avx512f", super::simd::Avx512, AVX512_TILE),
        (narrow_avx512, "avx512f", super::simd::Avx512, AVX512_NARROW),
        (tile_avx2, "avx2,fma", super::simd::Avx2, AVX2_TILE),
        (narrow_avx2, "avx2,fma", super::simd::Avx2, AVX2_NARROW),
    ]
);

/// The kernel for an instruction set and `positions` outputs per plane: (kernel, output channels
/// per tile, positions per tile). The narrow tile when the wide one would compute over 15% more
/// positions.
pub(super) fn kernel(isa: Isa, positions: usize) -> (TileFn, usize, usize) {
    let (wide, narrow, lanes) = match isa {
        Isa::Avx512 => ((tile_avx512 as TileFn, AVX512_TILE), (narrow_avx512 as TileFn, AVX512_NARROW), 16),
        Isa::Avx2 => ((tile_avx2 as TileFn, AVX2_TILE), (narrow_avx2 as TileFn, AVX2_NARROW), 8),
    };
    let (f, (r, v)) = if narrow_pays(positions, wide.1 .1 * lanes, narrow.1 .1 * lanes) { narrow } else { wide };
    (f, r, v * lanes)
}

/// A correlation: `input` [n, c, h, w] padded by `pad`, a k x k kernel at `stride`, output
/// [n, o, (h + 2 pad - k) / stride + 1, ...].
struct Correlation {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

impl Correlation {
    /// Runs the correlation with the conv's `weights` (read as the forward's, or flipped for the
    /// input gradient).
    fn run(&self, isa: Isa, input: &[f32], weights: Weights) -> Result<Vec<f32>> {
        let taps = self.k * self.k;
        let layout = Staging::new(self.h, self.w, self.k, self.stride, self.pad, 0);
        let (kernel, r, tile) = kernel(isa, layout.positions());
        let tiles = layout.positions().div_ceil(tile);
        let st = Staging::new(self.h, self.w, self.k, self.stride, self.pad, tiles * tile);
        let ((oh, ow), wp, plane) = (st.out(), st.row(), st.channel_len());
        let o_pad = self.o.div_ceil(r) * r;
        let offsets = st.offsets();
        if input.len() != self.n * self.c * self.h * self.w {
            candle_core::bail!("direct conv: input has {} elements, expected {}", input.len(), self.n * self.c * self.h * self.w);
        }

        // Weights as one contiguous panel per block of r output channels, [block][c][tap][r]
        // (zeros past the last channel), so a channel block's slice of a panel stays in L1.
        let blocks = o_pad / r;
        let mut packed = vec![0f32; blocks * self.c * taps * r];
        weights.pack_all(r, self.c, self.o, taps, &mut packed);
        // A channel block of the panel stays in L1 while the tiles sweep it.
        let channel_block = (l1_budget() / (taps * r * 4)).clamp(1, self.c);

        // A task per image and group of output blocks (`blocks_per_task`). For each channel block
        // and output block, the tiles run in order over the image, reusing the panel slice from L1.
        let blocks_per_group = blocks_per_task(self.n, blocks);
        let (packed, offsets) = (&packed[..], &offsets[..]);
        let fill = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(self.o * oh * ow).enumerate().for_each(|(img, out_img)| {
                out_img.par_chunks_mut(blocks_per_group * r * oh * ow).enumerate().for_each(|(group, out_group)| {
                    let first_block = group * blocks_per_group;
                    let group_blocks = blocks_per_group.min(blocks - first_block);
                    let stride = tiles * tile;
                    let mut buf = Scratch::<f32>::take(group_blocks * r * stride);
                    let buf = buf.as_mut_slice(group_blocks * r * stride);
                    // This image's padded planes, built here so they are still in this core's
                    // cache when the tiles read them.
                    let mut padded = Scratch::<f32>::take(self.c * plane);
                    let padded = padded.as_mut_slice(self.c * plane);
                    let image = &input[img * self.c * self.h * self.w..][..self.c * self.h * self.w];
                    stage_image(isa, &st, image, padded);
                    let sweep = Sweep { kernel, channels: self.c, channel_block, plane, offsets, r, tile, tiles };
                    sweep.run(padded, &packed[first_block * self.c * taps * r..], group_blocks, buf);
                    copy_out(buf, out_group, (oh, ow), wp, stride);
                });
            });
        };
        // SAFETY: the images' channel groups tile the output, and every row of every channel is
        // copied from the tile buffer.
        let out = unsafe { filled(self.n * self.o * oh * ow, fill) };
        Ok(out)
    }
}

/// The register tiles of one image over its staged planes: for each channel block, each output
/// block and each tile in order (the panel slice reused from L1), the first channel block writing
/// the tile buffer and the others adding to it.
pub(super) struct Sweep<'a> {
    pub kernel: TileFn,
    /// Staged channels, and how many each pass of the tiles sums.
    pub channels: usize,
    pub channel_block: usize,
    /// Values per staged channel, and where each tap's run starts in one.
    pub plane: usize,
    pub offsets: &'a [usize],
    /// Output channels per block, positions per tile, tiles per plane.
    pub r: usize,
    pub tile: usize,
    pub tiles: usize,
}

impl Sweep<'_> {
    /// Tiles of `blocks` output blocks from `staged` planes (covering every tile's furthest tap)
    /// and their `panels` ([block][channel][tap][r]) into `out` ([block][r][tiles * tile]).
    pub fn run(&self, staged: &[f32], panels: &[f32], blocks: usize, out: &mut [f32]) {
        let (taps, r, stride) = (self.offsets.len(), self.r, self.tiles * self.tile);
        assert!(staged.len() >= self.channels * self.plane && panels.len() >= blocks * self.channels * taps * r && out.len() >= blocks * r * stride);
        for c0 in (0..self.channels).step_by(self.channel_block) {
            let channels = self.channel_block.min(self.channels - c0);
            let x = staged[c0 * self.plane..].as_ptr();
            for b in 0..blocks {
                let w = panels[(b * self.channels + c0) * taps * r..].as_ptr();
                for t in 0..self.tiles {
                    let args = TileArgs {
                        x: x.wrapping_add(t * self.tile),
                        plane: self.plane,
                        channels,
                        offsets: self.offsets,
                        w,
                        accumulate: c0 > 0,
                        out: out.as_mut_ptr().wrapping_add(b * r * stride + t * self.tile),
                        out_stride: stride,
                    };
                    // SAFETY: reads stay inside the staged planes (`plane` covers the last
                    // tile's furthest tap, checked by the caller) and the block's panel (channels
                    // c0.. c0 + channels); the tile reads and writes r rows of `tile` values
                    // inside `out` (written by the first channel block).
                    unsafe { (self.kernel)(&args) };
                }
            }
        }
    }
}

/// Output blocks per task of a pass over `images` images of `blocks` output blocks each: a task
/// is one image's blocks, or a share of them when there are too few images to keep every thread
/// busy. Only which task computes a block depends on the thread count, never how it is summed.
pub(super) fn blocks_per_task(images: usize, blocks: usize) -> usize {
    let threads = rayon::current_num_threads();
    let groups = if images >= 2 * threads { 1 } else { (2 * threads).div_ceil(images.max(1)).min(blocks) };
    blocks.div_ceil(groups.max(1))
}

multiversion! {
    /// Copies each output channel's rows (`ow` of each `wp` positions) out of the tile buffer,
    /// whose channels are `stride` apart: element loops, for the short rows (see
    /// `Staging::stage`), compiled for this CPU's vector instructions.
    fn copy_out<T: Copy>(buf: &[T], out: &mut [MaybeUninit<T>], out_hw: (usize, usize), wp: usize, stride: usize) -> () {
        let (oh, ow) = out_hw;
        for (row, dst) in out.chunks_exact_mut(oh * ow).enumerate() {
            let src = &buf[row * stride..];
            for (y, line) in dst.chunks_exact_mut(ow).enumerate() {
                for (d, v) in line.iter_mut().zip(&src[y * wp..][..ow]) {
                    d.write(*v);
                }
            }
        }
    }
}

pub(super) fn isa() -> Result<Isa> {
    detect().ok_or_else(|| candle_core::Error::Msg("direct conv: this CPU has neither AVX-512 nor AVX2 + FMA".into()))
}

pub(super) fn check(g: &Geometry) -> Result<()> {
    if !(1..=2).contains(&g.stride) || g.kh != g.kw || g.pad >= g.kh {
        candle_core::bail!("direct conv: needs stride 1 or 2, a square kernel and padding below its size, got {g:?}");
    }
    Ok(())
}

/// y = conv2d(x, w) for a stride-1 geometry (see `suits` for when it pays).
pub fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    forward_with(isa()?, x, w, g)
}

/// dL/dx of a stride-1 conv: the output gradient correlated with the flipped kernel, channel
/// axes swapped, padded by k - 1 - p.
pub fn backward_data(dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    backward_data_with(isa()?, dy, w, g)
}

fn forward_with(isa: Isa, x: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    check(g)?;
    let corr = Correlation { n: g.n, c: g.c, h: g.h, w: g.w, o: g.o, k: g.kh, stride: g.stride, pad: g.pad };
    corr.run(isa, x, Weights::Forward(w))
}

fn backward_data_with(isa: Isa, dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    check(g)?;
    if g.stride != 1 {
        candle_core::bail!("direct conv: the input gradient needs stride 1, got {g:?}");
    }
    let corr = Correlation { n: g.n, c: g.o, h: g.oh, w: g.ow, o: g.c, k: g.kh, stride: 1, pad: g.kh - 1 - g.pad };
    corr.run(isa, dy, Weights::Flipped(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::{backward_data_im2col, forward_im2col};
    use crate::ops::cpu::testing::{assert_l1_budget_changes_no_bit, isas, values, wide, worst_relative};

    /// Both passes against the im2col path in f64, on every instruction set this CPU has (the
    /// input gradient for stride 1 only).
    #[test]
    fn forward_and_input_gradient_match_the_im2col_path_in_f64() {
        for (x, o, k, stride, pad) in [
            ((2, 3, 9, 9), 5, 3, 1, 1),
            ((3, 4, 7, 11), 9, 3, 1, 1),
            ((1, 2, 6, 5), 3, 3, 1, 0),
            ((2, 5, 8, 8), 17, 1, 1, 0),
            ((2, 3, 12, 10), 4, 5, 1, 2),
            ((1, 3, 17, 19), 8, 7, 1, 3),
            ((5, 16, 4, 4), 16, 3, 1, 1),
            ((1, 1, 40, 3), 1, 3, 1, 1),
            ((2, 70, 6, 6), 20, 3, 1, 1), // several channel blocks
            ((3, 4, 9, 10), 6, 3, 2, 1),
            ((2, 5, 8, 7), 20, 1, 2, 0),
            ((2, 3, 17, 15), 4, 7, 2, 3),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride, padding: pad }).unwrap();
            let (xv, wv, gv) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            let y_ref = forward_im2col(&wide(&xv), &wide(&wv), &g).unwrap();
            let dx_ref = backward_data_im2col(&wide(&gv), &wide(&wv), &g).unwrap();
            for isa in isas() {
                let mut checks = vec![("forward", forward_with(isa, &xv, &wv, &g).unwrap(), &y_ref)];
                if stride == 1 {
                    checks.push(("input gradient", backward_data_with(isa, &gv, &wv, &g).unwrap(), &dx_ref));
                }
                for (name, got, want) in checks {
                    let worst = worst_relative(&got, want);
                    assert!(worst < 1e-4, "{isa:?} {g:?} {name}: off by {worst}");
                }
            }
        }
    }

    /// Channel blocks end where the L1 budget says; the tiles carry their sums across blocks.
    #[test]
    fn the_l1_budget_changes_no_bit() {
        for (stride, (h, w)) in [(1, (10, 9)), (2, (11, 12))] {
            let g = Geometry::new((2, 40, h, w), (20, 40, 3, 3), ConvParams { stride, padding: 1 }).unwrap();
            let (x, wt, dy) = (values(g.input_len(), 1), values(g.weight_len(), 2), values(g.output_len(), 3));
            for isa in isas() {
                assert_l1_budget_changes_no_bit(&format!("{isa:?} stride {stride} forward"), || forward_with(isa, &x, &wt, &g).unwrap());
                if stride == 1 {
                    assert_l1_budget_changes_no_bit(&format!("{isa:?} input gradient"), || backward_data_with(isa, &dy, &wt, &g).unwrap());
                }
            }
        }
    }

    #[test]
    fn unsupported_geometries_are_refused() {
        let g = Geometry::new((1, 2, 8, 8), (2, 2, 3, 3), ConvParams { stride: 3, padding: 1 }).unwrap();
        assert!(!suits(&g));
        assert!(forward(&values(g.input_len(), 0), &values(g.weight_len(), 0), &g).unwrap_err().to_string().contains("stride 1 or 2"));
        let g = Geometry::new((1, 2, 8, 8), (2, 2, 3, 3), ConvParams { stride: 2, padding: 1 }).unwrap();
        assert!(!suits_input_gradient(&g));
        let err = backward_data(&values(g.output_len(), 0), &values(g.weight_len(), 0), &g).unwrap_err().to_string();
        assert!(err.contains("needs stride 1"), "{err}");
        let g = Geometry::new((1, 2, 8, 8), (2, 2, 3, 3), ConvParams { stride: 1, padding: 3 }).unwrap();
        assert!(!suits(&g));
    }
}
