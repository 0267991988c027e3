//! The input gradient of stride-2 convolutions, one output phase at a time. The input positions
//! of one parity (py, px) receive only the taps with ky = py + p and kx = px + p (mod 2), each
//! from the output gradient at a fixed offset: dx[2i + py][2j + px] = sum of w[ky][kx] *
//! dy[i + dy][j + dx] with dy = (py + p - ky) / 2. So each phase is a small stride-1 correlation
//! of the output gradient (1, 2, 2 and 4 taps of a 3x3 kernel), run by the direct kernel's
//! register tiles (`direct::tile`) over one zero-padded copy of the output gradient, and the four
//! phases' results are interleaved into the input planes as they are copied out. No column
//! matrix, col2im or zero fill (through those, these input gradients ran 1.3-1.6x slower than
//! their layers' forwards).
//!
//! Every value is summed by one tile in a fixed order (output-gradient channel, then tap), so
//! results do not depend on the thread count; the order is not the im2col path's, so results
//! agree with it to float32 rounding (tested against f64), not bit for bit.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::cache::l1_budget;
use super::conv::Geometry;
use super::direct::{blocks_per_task, kernel, Sweep};
use super::scratch::{filled, Pooled, Scratch};
use super::simd::{detect, multiversion};
use candle_core::Result;

/// Largest kernel side taken: 1x1 and 3x3 were measured (bench/NOTES.md change 40); a 7x7 stem
/// with 3 input channels ran 2x slower here than through im2col (its 3 channels fill 3 of a
/// register tile's 6-8 rows).
const MAX_KERNEL: usize = 3;
/// Fewest input channels (the register tile's rows).
const MIN_CHANNELS: usize = 8;

/// Where a geometry's output gradient sits in its padded copy, and each phase's taps.
struct Layout {
    /// Zero rows (and columns) before and after the output gradient in its padded copy.
    before: usize,
    /// Row length of the padded copy (ow + before + after) and its rows.
    wp: usize,
    rows: usize,
    /// Per phase (py * 2 + px): the taps (index ky * k + kx), and their offsets in the padded
    /// copy from a position's own value.
    taps: [Vec<usize>; 4],
    offsets: [Vec<usize>; 4],
}

impl Layout {
    fn new(g: &Geometry) -> Self {
        let (k, p) = (g.kh as isize, g.pad as isize);
        // Offsets along one axis for parity `q`: (kernel index, dy) with dy = (q + p - ky) / 2.
        let axis = |q: isize| -> Vec<(usize, isize)> { (0..k).filter(|ky| (q + p - ky) % 2 == 0).map(|ky| (ky as usize, (q + p - ky) / 2)).collect() };
        let (even, odd) = (axis(0), axis(1));
        let all = even.iter().chain(&odd).map(|&(_, d)| d);
        let before = all.clone().map(|d| -d).max().unwrap_or(0).max(0) as usize;
        let after = all.max().unwrap_or(0).max(0) as usize;
        let wp = g.ow + before + after;
        let (mut taps, mut offsets): ([Vec<usize>; 4], [Vec<usize>; 4]) = Default::default();
        for phase in 0..4 {
            let (rows, cols) = (if phase / 2 == 0 { &even } else { &odd }, if phase % 2 == 0 { &even } else { &odd });
            for &(ky, dy) in rows {
                for &(kx, dx) in cols {
                    taps[phase].push(ky * g.kw + kx);
                    offsets[phase].push((dy + before as isize) as usize * wp + (dx + before as isize) as usize);
                }
            }
        }
        Self { before, wp, rows: g.oh + before + after, taps, offsets }
    }
}

/// Whether the input gradient of `g` runs here: stride 2, a square odd kernel of at most
/// `MAX_KERNEL` with "same" padding, `MIN_CHANNELS` input channels, even input sides (so each phase is oh x ow), a CPU with the
/// direct kernels, and maps on which the tiles' rounding and the padded copy's extra columns waste
/// at most a fifth of the work.
pub fn suits(g: &Geometry) -> bool {
    let Some(isa) = detect() else { return false };
    if !(g.stride == 2 && g.kh == g.kw && g.kh % 2 == 1 && g.kh <= MAX_KERNEL && g.c >= MIN_CHANNELS && g.pad == g.kh / 2 && g.h == 2 * g.oh && g.w == 2 * g.ow)
    {
        return false;
    }
    let layout = Layout::new(g);
    let positions = g.oh * layout.wp;
    let (_, _, tile) = kernel(isa, positions);
    5 * g.oh * g.ow >= 4 * positions.div_ceil(tile) * tile
}

/// dL/dx [n, c, h, w] of a stride-2 convolution from dL/dy [n, o, oh, ow] and w [o, c, k, k], for
/// a geometry that `suits`.
pub fn backward_data(dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>> {
    let Some(isa) = detect().filter(|_| suits(g)) else {
        candle_core::bail!(
            "phase input gradient: needs stride 2, an odd square kernel up to {MAX_KERNEL} with padding k / 2, {MIN_CHANNELS} input channels, even sides and AVX2, got {g:?}"
        );
    };
    if dy.len() != g.output_len() || w.len() != g.weight_len() {
        candle_core::bail!("phase input gradient: {} gradient and {} weight elements for {g:?}", dy.len(), w.len());
    }
    let layout = Layout::new(g);
    let (wp, taps) = (layout.wp, g.kh * g.kw);
    let positions = g.oh * wp;
    let (tile_fn, r, tile) = kernel(isa, positions);
    let tiles = positions.div_ceil(tile);
    let stride = tiles * tile;
    // The padded copy must cover the furthest tap of the last tile.
    let furthest = layout.offsets.iter().flatten().copied().max().unwrap_or(0);
    let plane = (layout.rows * wp).max(stride + furthest);
    let blocks = g.c.div_ceil(r);

    // Per phase, the weights as panels [block][dy channel][phase tap][r] (zeros past the last
    // input channel).
    let panels: Vec<Vec<f32>> = layout
        .taps
        .iter()
        .map(|phase| {
            let mut panel = vec![0f32; blocks * g.o * phase.len() * r];
            panel.par_chunks_mut((g.o * phase.len() * r).max(1)).enumerate().for_each(|(block, panel)| {
                for oi in 0..g.o {
                    for (t, &tap) in phase.iter().enumerate() {
                        for i in 0..r.min(g.c - block * r) {
                            panel[(oi * phase.len() + t) * r + i] = w[(oi * g.c + block * r + i) * taps + tap];
                        }
                    }
                }
            });
            panel
        })
        .collect();
    let most_taps = layout.taps.iter().map(Vec::len).max().unwrap_or(1).max(1);
    // Channel blocks whose panel slice and padded planes both stay in L1 while the tiles of every
    // output block sweep them.
    let budget = l1_budget();
    let channel_block = (budget / (most_taps * r * 4)).min(budget / (plane * 4)).clamp(1, g.o.max(1));

    // A task per image and group of input-channel blocks (`direct::blocks_per_task`).
    let blocks_per_group = blocks_per_task(g.n, blocks);
    let (panels, layout) = (&panels[..], &layout);
    let image_len = g.c * g.h * g.w;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(image_len).enumerate().for_each(|(img, out_img)| {
            out_img.par_chunks_mut(blocks_per_group * r * g.h * g.w).enumerate().for_each(|(group, out_group)| {
                let first_block = group * blocks_per_group;
                let group_blocks = blocks_per_group.min(blocks - first_block);
                let mut buf = Scratch::<f32>::take(4 * group_blocks * r * stride);
                let buf = buf.as_mut_slice(4 * group_blocks * r * stride);
                let mut padded = Scratch::<f32>::take(g.o * plane);
                let padded = padded.as_mut_slice(g.o * plane);
                pad_planes(&dy[img * g.o * g.oh * g.ow..][..g.o * g.oh * g.ow], padded, (g.oh, g.ow), (layout.before, wp, plane));
                for (phase, offsets) in layout.offsets.iter().enumerate() {
                    if offsets.is_empty() {
                        continue;
                    }
                    let phase_buf = &mut buf[phase * group_blocks * r * stride..][..group_blocks * r * stride];
                    let sweep = Sweep { kernel: tile_fn, channels: g.o, channel_block, plane, offsets, r, tile, tiles };
                    sweep.run(padded, &panels[phase][first_block * g.o * offsets.len() * r..], group_blocks, phase_buf);
                }
                let has_taps: [bool; 4] = std::array::from_fn(|phase| !layout.taps[phase].is_empty());
                interleave(buf, out_group, (g.oh, g.ow, wp), (group_blocks * r * stride, stride), has_taps);
            });
        });
    };
    // SAFETY: the images' channel groups tile the output, and `interleave` writes every value of
    // every channel of its group.
    Ok(unsafe { filled(g.n * image_len, fill) })
}

multiversion! {
    /// The image's output-gradient planes [o][oh][ow] into zeroed padded planes of `plane` values
    /// with rows `wp` long, each value `before` rows and columns in.
    fn pad_planes<T: Pooled>(dy: &[T], padded: &mut [T], out_hw: (usize, usize), place: (usize, usize, usize)) -> () {
        let ((oh, ow), (before, wp, plane)) = (out_hw, place);
        for (src, dst) in dy.chunks_exact(oh * ow).zip(padded.chunks_exact_mut(plane)) {
            dst.fill(T::default());
            for (i, row) in src.chunks_exact(ow).enumerate() {
                dst[(i + before) * wp + before..][..ow].copy_from_slice(row);
            }
        }
    }
}

multiversion! {
    /// The four phases' tile buffers (phase `phase_len` apart, channels `stride` apart, rows of
    /// `wp` positions of which the first ow are kept) interleaved into input planes [c][2 oh][2 ow]:
    /// out[2i + py][2j + px] = phase (py, px) at i * wp + j, zero for a phase without taps.
    fn interleave<T: Pooled>(buf: &[T], out: &mut [MaybeUninit<T>], out_hw: (usize, usize, usize), strides: (usize, usize), has_taps: [bool; 4]) -> () {
        let ((oh, ow, wp), (phase_len, stride)) = (out_hw, strides);
        let w = 2 * ow;
        for (ch, plane) in out.chunks_exact_mut(4 * oh * ow).enumerate() {
            for (y, row) in plane.chunks_exact_mut(w).enumerate() {
                let (i, py) = (y / 2, y % 2);
                let source = |px: usize| has_taps[py * 2 + px].then(|| &buf[(py * 2 + px) * phase_len + ch * stride + i * wp..][..ow]);
                match (source(0), source(1)) {
                    (Some(even), Some(odd)) => {
                        for ((pair, &e), &o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                            pair[0].write(e);
                            pair[1].write(o);
                        }
                    }
                    (even, odd) => {
                        for (j, pair) in row.chunks_exact_mut(2).enumerate() {
                            pair[0].write(even.map_or(T::default(), |e| e[j]));
                            pair[1].write(odd.map_or(T::default(), |o| o[j]));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::ConvParams;
    use crate::ops::cpu::conv::backward_data_im2col;
    use crate::ops::cpu::testing::{assert_l1_budget_changes_no_bit, values, wide, worst_relative};

    /// Against the im2col path in f64: 3x3 and 1x1 (whose odd phases get no tap), maps of one
    /// and several tiles, channel counts that fill no block, several channel blocks,
    /// a batch smaller than the thread count's share.
    #[test]
    fn matches_the_definition_to_float_rounding() {
        let mut ran = 0;
        for (x, o, k) in [
            ((4, 16, 32, 32), 32, 3),
            ((3, 32, 16, 16), 64, 3),
            ((2, 5, 12, 20), 7, 3),
            ((4, 16, 32, 32), 32, 1),
            ((2, 9, 32, 32), 11, 3),
            ((1, 8, 48, 48), 300, 3),
        ] {
            let g = Geometry::new(x, (o, x.1, k, k), ConvParams { stride: 2, padding: k / 2 }).unwrap();
            if !suits(&g) {
                continue;
            }
            ran += 1;
            let (gv, wv) = (values(g.output_len(), 3), values(g.weight_len(), 2));
            let want = backward_data_im2col(&wide(&gv), &wide(&wv), &g).unwrap();
            let worst = worst_relative(&backward_data(&gv, &wv, &g).unwrap(), &want);
            assert!(worst < 1e-4, "{g:?}: off by {worst}");
        }
        assert!(ran >= 5 || detect().is_none(), "only {ran} geometries ran");
    }

    /// Channel blocks end where the L1 budget says; the tiles carry their sums across blocks.
    #[test]
    fn the_l1_budget_changes_no_bit() {
        let g = Geometry::new((2, 24, 16, 16), (40, 24, 3, 3), ConvParams { stride: 2, padding: 1 }).unwrap();
        if !suits(&g) {
            return;
        }
        let (gv, wv) = (values(g.output_len(), 5), values(g.weight_len(), 6));
        assert_l1_budget_changes_no_bit("phase input gradient", || backward_data(&gv, &wv, &g).unwrap());
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let g = Geometry::new((3, 16, 16, 16), (24, 16, 3, 3), ConvParams { stride: 2, padding: 1 }).unwrap();
        if !suits(&g) {
            return;
        }
        let (gv, wv) = (values(g.output_len(), 5), values(g.weight_len(), 6));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| backward_data(&gv, &wv, &g).unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        };
        assert!(run(1) == run(4), "1 and 4 threads differ");
    }

    #[test]
    fn other_geometries_are_refused() {
        for (x, k, stride, pad) in [
            ((2, 8, 16, 16), 3, 1, 1),
            ((2, 8, 15, 16), 3, 2, 1),
            ((2, 8, 16, 16), 3, 2, 0),
            ((2, 8, 32, 32), 5, 2, 2),
            ((2, 3, 96, 96), 7, 2, 3),
            ((2, 4, 16, 16), 3, 2, 1),
        ] {
            let g = Geometry::new(x, (8, x.1, k, k), ConvParams { stride, padding: pad }).unwrap();
            assert!(!suits(&g), "{g:?}");
            let err = backward_data(&values(g.output_len(), 0), &values(g.weight_len(), 0), &g).unwrap_err().to_string();
            assert!(err.contains("needs stride 2"), "{err}");
        }
    }
}
