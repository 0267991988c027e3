//! How the direct conv kernels lay out one image's input: each channel zero-padded by `pad` and
//! split into stride x stride phase planes (phase (a, b) holds the padded pixels
//! (s * y + a, s * x + b)), each `wq` wide with zeros after it. Output positions are numbered
//! `p = oy * wq + ox` (columns ox >= ow are computed and dropped), so kernel tap (i, j) reads
//! one contiguous run along consecutive positions: phase (i % s, j % s) from
//! `(i / s) * wq + j / s` on. For stride 1 this is the zero-padded plane with the left and right
//! padding of neighbouring rows shared (wq = w + pad: fewer dropped columns); a 1x1 kernel at
//! stride 2 reads phase (0, 0) only, and only the phases some tap reads are stored.

/// The staged layout of one channel for a k x k kernel, `stride`, `pad`, on h x w inputs.
#[derive(Debug, Clone, Copy)]
pub struct Staging {
    h: usize,
    w: usize,
    pad: usize,
    stride: usize,
    k: usize,
    hq: usize,
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
        Self { h, w, pad, stride, k, hq, wq, out_h, out_w, phases: stride.min(k), phase_len }
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

    /// Writes channel `src` (h x w) into `dst` (`channel_len` values) in this layout. Inlined so
    /// that it vectorises for the instruction set of its caller (`simd::vectorized`).
    #[inline(always)]
    pub fn stage(&self, src: &[f32], dst: &mut [f32]) {
        let s = self.stride;
        for (phase, plane) in dst[..self.channel_len()].chunks_mut(self.phase_len).enumerate() {
            let (a, b) = (phase / self.phases, phase % self.phases);
            let (rows, tail) = plane.split_at_mut(self.hq * self.wq);
            tail.fill(0.0);
            for (y, line) in rows.chunks_mut(self.wq).enumerate() {
                // Padded row s * y + a is source row s * y + a - pad, if inside.
                let Some(src_row) = (s * y + a).checked_sub(self.pad).filter(|&r| r < self.h) else {
                    line.fill(0.0);
                    continue;
                };
                let src_row = &src[src_row * self.w..][..self.w];
                // Column x holds padded column s * x + b, source column s * x + b - pad.
                let first = (self.pad.saturating_sub(b)).div_ceil(s).min(self.wq);
                let last = ((self.w + self.pad).saturating_sub(b)).div_ceil(s).clamp(first, self.wq);
                line[..first].fill(0.0);
                line[last..].fill(0.0);
                let start = s * first + b - self.pad;
                let n = last - first;
                if s == 1 {
                    // An element loop, not copy_from_slice: rows are short (8-50 values), and a
                    // memcpy call per row cost more than the copy.
                    for (d, v) in line[first..last].iter_mut().zip(&src_row[start..start + n]) {
                        *d = *v;
                    }
                } else if n > 0 {
                    let (dst, from) = (&mut line[first..last], &src_row[start..=start + s * (n - 1)]);
                    if s == 2 {
                        gather::<2>(dst, from);
                    } else {
                        for (i, d) in dst.iter_mut().enumerate() {
                            *d = from[s * i];
                        }
                    }
                }
            }
        }
    }
}

/// dst[i] = from[S * i], with `from` exactly long enough: a constant stride over exact slices
/// vectorises as shuffles.
#[inline(always)]
fn gather<const S: usize>(dst: &mut [f32], from: &[f32]) {
    for (d, group) in dst.iter_mut().zip(from.chunks(S)) {
        *d = group[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tap run holds the padded input at the strided positions it stands for.
    #[test]
    fn tap_runs_read_the_padded_input_at_strided_positions() {
        for (h, w, k, stride, pad) in [(5, 7, 3, 1, 1), (6, 5, 3, 2, 1), (7, 7, 1, 2, 0), (8, 8, 1, 2, 0), (9, 8, 7, 2, 3), (4, 4, 3, 1, 0), (6, 7, 3, 2, 1)] {
            let src: Vec<f32> = (0..h * w).map(|i| i as f32 + 1.0).collect();
            let st = Staging::new(h, w, k, stride, pad, 0);
            let mut dst = vec![f32::NAN; st.channel_len()];
            st.stage(&src, &mut dst);
            assert!(dst.iter().all(|v| !v.is_nan()), "every value is written");
            let (oh, ow) = st.out();
            for i in 0..k {
                for j in 0..k {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (y, x) = ((oy * stride + i) as isize - pad as isize, (ox * stride + j) as isize - pad as isize);
                            let want = if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w { src[y as usize * w + x as usize] } else { 0.0 };
                            assert_eq!(dst[st.offset(i, j) + oy * st.row() + ox], want, "{h}x{w} k{k} s{stride} p{pad} tap ({i}, {j}) at ({oy}, {ox})");
                        }
                    }
                }
            }
        }
    }
}
