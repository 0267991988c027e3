//! How the direct conv kernels lay out one image's input: each channel zero-padded by `pad` and
//! split into stride x stride phase planes (phase (a, b) holds the padded pixels
//! (s * y + a, s * x + b)), each `wq` wide with zeros after it. Output positions are numbered
//! `p = oy * wq + ox` (columns ox >= ow are computed and dropped), so kernel tap (i, j) reads
//! one contiguous run along consecutive positions: phase (i % s, j % s) from
//! `(i / s) * wq + j / s` on. For stride 1 this is the zero-padded plane with the left and right
//! padding of neighbouring rows shared (wq = w + pad: fewer dropped columns); a 1x1 kernel at
//! stride 2 reads phase (0, 0) only, and only the phases some tap reads are stored.

use super::simd::{with_lanes, Isa, Lanes};

/// The staged layout of one channel for a k x k kernel, `stride`, `pad`, on h x w inputs.
#[derive(Debug, Clone, Copy)]
pub struct Staging {
    h: usize,
    w: usize,
    pad: usize,
    stride: usize,
    k: usize,
    wq: usize,
    out_h: usize,
    out_w: usize,
    /// Phases per axis that some tap reads: min(stride, k).
    phases: usize,
    /// Values per phase plane, the zeros after it included.
    phase_len: usize,
}

impl Staging {
    /// The layout for reading `positions` outputs (the kernel's tiles, rounded up) per plane.
    pub fn new(h: usize, w: usize, k: usize, stride: usize, pad: usize, positions: usize) -> Self {
        let (hp, wp) = (h + 2 * pad, w + 2 * pad);
        // At stride 1 neighbouring rows share their padding (a row's right pad is the next
        // row's left pad), so a position row is w + pad wide, not w + 2 pad.
        let (hq, wq) = if stride == 1 { (hp, w + pad) } else { (hp.div_ceil(stride), wp.div_ceil(stride)) };
        let reach = (k - 1) / stride;
        let (out_h, out_w) = ((hp - k) / stride + 1, (wp - k) / stride + 1);
        // The furthest read: the last position at the last tap.
        let phase_len = (positions.max(out_h * wq) + reach * (wq + 1)).max(hq * wq);
        Self { h, w, pad, stride, k, wq, out_h, out_w, phases: stride.min(k), phase_len }
    }

    /// Output rows and columns.
    pub fn out(&self) -> (usize, usize) {
        (self.out_h, self.out_w)
    }

    /// Output positions per plane, dropped columns included (`out_h * wq`).
    pub fn positions(&self) -> usize {
        self.out_h * self.wq
    }

    /// Width of a position row (the output row `oy` starts at position `oy * row()`).
    pub fn row(&self) -> usize {
        self.wq
    }

    /// Values one staged channel takes.
    pub fn channel_len(&self) -> usize {
        self.phases * self.phases * self.phase_len
    }

    /// Where tap (i, j) starts inside a staged channel.
    pub fn offset(&self, i: usize, j: usize) -> usize {
        let s = self.stride;
        ((i % s) * self.phases + j % s) * self.phase_len + (i / s) * self.wq + j / s
    }

    /// The taps in kernel order (i * k + j).
    pub fn offsets(&self) -> Vec<usize> {
        (0..self.k * self.k).map(|t| self.offset(t / self.k, t % self.k)).collect()
    }

    /// Writes channel `src` (h x w) into `dst` (`channel_len` values) in this layout, with the
    /// vector instructions of `L` (the caller is compiled for them).
    #[inline(always)]
    fn stage<L: Lanes>(&self, src: &[f32], dst: &mut [f32]) {
        let s = self.stride;
        let dst = &mut dst[..self.channel_len()];
        // One fill of the whole channel (borders, dropped columns, the zeros after each phase
        // plane), then every source row copied over it: rows are short (8-50 values), and a fill
        // call per row border cost more than writing the interior twice.
        dst.fill(0.0);
        // Per column phase b (at most `MAX_PHASES`): the first source column x with
        // (x + pad) % s == b, the column of phase plane (a, b) it lands in, and how many land
        // there (one per s source columns). Computed once: divisions cost more than the copies.
        let mut columns = [(0usize, 0usize, 0usize); MAX_PHASES];
        for (b, col) in columns.iter_mut().enumerate().take(self.phases) {
            let x0 = (b + s - self.pad % s) % s;
            if x0 < self.w {
                *col = (x0, (x0 + self.pad) / s, (self.w - x0).div_ceil(s));
            }
        }
        let (mut a, mut y) = (self.pad % s, self.pad / s);
        for src_row in src[..self.h * self.w].chunks_exact(self.w) {
            // This row is padded row r + pad: phase a, row y of its phase planes.
            if a < self.phases {
                for (b, &(x0, col, n)) in columns[..self.phases].iter().enumerate() {
                    let at = (a * self.phases + b) * self.phase_len + y * self.wq + col;
                    let (line, from) = (&mut dst[at..][..n], &src_row[x0..]);
                    match s {
                        // An element loop, not copy_from_slice: a memcpy call per short row costs
                        // more than the copy.
                        1 => line.iter_mut().zip(from).for_each(|(d, v)| *d = *v),
                        // SAFETY: `from` holds 2 (n - 1) + 1 values and `line` n.
                        2 => unsafe { gather_evens::<L>(line, from) },
                        _ => line.iter_mut().zip(from.iter().step_by(s)).for_each(|(d, v)| *d = *v),
                    }
                }
            }
            a += 1;
            if a == s {
                (a, y) = (0, y + 1);
            }
        }
    }
}

/// Phases per axis a stage can have (stride 2 at most: see `direct::check`, whose kernels are
/// the only readers).
const MAX_PHASES: usize = 2;

/// line[i] = from[2 i] for every i < line.len(), two vectors of `from` per vector of `line`.
///
/// # Safety
/// The CPU supports `L`'s instructions; `from` holds at least 2 line.len() - 1 values.
#[inline(always)]
unsafe fn gather_evens<L: Lanes>(line: &mut [f32], from: &[f32]) {
    let (n, avail) = (line.len(), from.len());
    debug_assert!(n == 0 || avail > 2 * (n - 1));
    let (src, dst) = (from.as_ptr(), line.as_mut_ptr());
    let mut i = 0;
    while i + L::N <= n && 2 * (i + L::N) <= avail {
        L::load(src.add(2 * i)).evens(L::load(src.add(2 * i + L::N))).store(dst.add(i));
        i += L::N;
    }
    // The rest (under N outputs) through masks: only the values `from` has are read.
    while i < n {
        let lanes = |from_value: usize| L::first(avail.saturating_sub(from_value).min(L::N));
        let (first, second) = (L::load_masked(src.add(2 * i), lanes(2 * i)), L::load_masked(src.add(2 * i + L::N), lanes(2 * i + L::N)));
        let out = (n - i).min(L::N);
        first.evens(second).store_masked(dst.add(i), L::first(out));
        i += out;
    }
}

/// Stages every channel of `image` (planes of h x w) into `staged` (`channel_len` values per
/// channel), with the vector instructions of `isa`.
pub fn stage_image(isa: Isa, st: &Staging, image: &[f32], staged: &mut [f32]) {
    #[inline(always)]
    unsafe fn body<L: Lanes>(st: &Staging, image: &[f32], staged: &mut [f32]) {
        for (src, dst) in image.chunks_exact(st.h * st.w).zip(staged.chunks_exact_mut(st.channel_len())) {
            st.stage::<L>(src, dst);
        }
    }
    assert!(st.phases <= MAX_PHASES, "staging: stride {} is not supported", st.stride);
    with_lanes!(isa, body(st: &Staging, image: &[f32], staged: &mut [f32]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::testing::isas;

    /// Every tap run holds the padded input at the strided positions it stands for, on every
    /// instruction set this CPU has; rows from 4 to 70 wide, so the stride-2 gather runs both its
    /// whole vectors and its masked rest, with either parity of padding.
    #[test]
    fn tap_runs_read_the_padded_input_at_strided_positions() {
        for (h, w, k, stride, pad) in [
            (5, 7, 3, 1, 1),
            (6, 5, 3, 2, 1),
            (7, 7, 1, 2, 0),
            (8, 8, 1, 2, 0),
            (9, 8, 7, 2, 3),
            (4, 4, 3, 1, 0),
            (6, 7, 3, 2, 1),
            (3, 40, 3, 1, 1),
            (4, 33, 3, 2, 1),
            (3, 64, 3, 2, 1),
            (5, 70, 1, 2, 0),
            (3, 47, 7, 2, 3),
            (2, 32, 5, 2, 2),
        ] {
            let src: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
            let st = Staging::new(h, w, k, stride, pad, 0);
            // Two channels through `stage_image`, the second the first negated; the buffer starts
            // as NaN so every value must be written.
            let image: Vec<f32> = src.iter().copied().chain(src.iter().map(|v| -v)).collect();
            for isa in isas() {
                let mut staged = vec![f32::NAN; 2 * st.channel_len()];
                stage_image(isa, &st, &image, &mut staged);
                let (dst, second) = staged.split_at(st.channel_len());
                assert!(dst.iter().all(|v| !v.is_nan()), "every value is written");
                assert!(second.iter().zip(dst).all(|(n, p)| *n == -*p), "the second channel is staged alike");
                let (oh, ow) = st.out();
                for i in 0..k {
                    for j in 0..k {
                        for oy in 0..oh {
                            for ox in 0..ow {
                                let (y, x) = ((oy * stride + i) as isize - pad as isize, (ox * stride + j) as isize - pad as isize);
                                let inside = y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w;
                                let want = if inside { src[y as usize * w + x as usize] } else { 0.0 };
                                let got = dst[st.offset(i, j) + oy * st.row() + ox];
                                assert_eq!(got, want, "{isa:?} {h}x{w} k{k} s{stride} p{pad} tap ({i}, {j}) at ({oy}, {ox})");
                            }
                        }
                    }
                }
            }
        }
    }
}
