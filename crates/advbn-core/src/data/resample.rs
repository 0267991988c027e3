//! PIL's resampling coefficients (`precompute_coeffs` in libImaging/Resample.c), the one
//! implementation behind the transforms' resizes (`Resize`, `RandomResizedCrop`, ...) and the
//! corruptions' layer resizing (`filters::resize_plane`).
//!
//! A resize is a 1-D linear operator per axis ([`Taps`]); each caller applies it to its own
//! layout (interleaved pixels, or planes through `filters::separable`).

/// A 1-D linear operator from `src_len` samples to `rows.len()` samples: output `i` is
/// `sum(w * src[j])` over `rows[i]`, in row order. Resizes and blurs are both expressed this way.
pub(crate) struct Taps {
    pub(crate) rows: Vec<Vec<(u32, f32)>>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter {
    Box,
    Triangle,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Triangle => 1.0,
        }
    }
    fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Box => f64::from(u8::from(x > -0.5 && x <= 0.5)),
            Filter::Triangle => (1.0 - x.abs()).max(0.0),
        }
    }
}

/// How one output's weights are brought to sum 1. The two callers were written separately and
/// round differently in the last bit; each keeps its rule so every output stays bit-identical.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Normalize {
    /// Every tap of the support kept (zero weights too), each weight rounded to f32, then divided
    /// in f64 by the f64 sum of the unrounded weights (the transforms' rule). A row whose weights
    /// sum to 0 stays all zero.
    F64,
    /// Zero weights dropped, the f32 weights divided by their f32 sum; a row left empty takes the
    /// nearest sample (the corruptions' rule).
    F32,
}

impl Taps {
    /// Resampling `src` samples to `dst` like PIL's `Image.resize`: the filter is stretched by
    /// the scale when shrinking (area averaging for `Box`, antialiased linear for `Triangle`),
    /// and is a plain interpolator when enlarging (`Box` is then nearest neighbour). Input taps
    /// are clamped to [0, src), like PIL resizing an already-cropped image.
    pub(crate) fn resize(src: usize, dst: usize, filter: Filter, normalize: Normalize) -> Taps {
        let scale = src as f64 / dst as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let rows = (0..dst)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
                let hi = ((center + support + 0.5).floor() as usize).min(src);
                let weights = (lo..hi).map(|j| (j as u32, filter.eval((j as f64 - center + 0.5) / filterscale)));
                match normalize {
                    Normalize::F64 => {
                        let weights: Vec<(u32, f64)> = weights.collect();
                        let sum = weights.iter().fold(0.0f64, |a, t| a + t.1);
                        let norm = |w: f64| if sum > 0.0 { (w as f32 as f64 / sum) as f32 } else { w as f32 };
                        weights.into_iter().map(|(j, w)| (j, norm(w))).collect()
                    }
                    Normalize::F32 => {
                        let mut row: Vec<(u32, f32)> = weights.filter(|&(_, w)| w != 0.0).map(|(j, w)| (j, w as f32)).collect();
                        if row.is_empty() {
                            row.push(((center as usize).min(src - 1) as u32, 1.0));
                        }
                        let total: f32 = row.iter().map(|t| t.1).sum();
                        row.iter_mut().for_each(|t| t.1 /= total);
                        row
                    }
                }
            })
            .collect();
        Taps { rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(t: &Taps) -> Vec<Vec<(u32, f32)>> {
        t.rows.clone()
    }

    #[test]
    fn bilinear_enlarge_interpolates() {
        // 2 -> 4: centres 0.25, 0.75, 1.25, 1.75; the edge outputs see one clamped tap.
        let want = vec![vec![(0, 1.0)], vec![(0, 0.75), (1, 0.25)], vec![(0, 0.25), (1, 0.75)], vec![(1, 1.0)]];
        assert_eq!(weights(&Taps::resize(2, 4, Filter::Triangle, Normalize::F32)), want);
        // F64 keeps the zero-weight taps of the support: here there are none inside [0, 2).
        assert_eq!(weights(&Taps::resize(2, 4, Filter::Triangle, Normalize::F64)), want);
    }

    #[test]
    fn bilinear_shrink_antialiases() {
        // 4 -> 2: the triangle is stretched to radius 2, so each output averages three inputs.
        let (a, b) = (3.0f32 / 7.0, 1.0f32 / 7.0);
        for normalize in [Normalize::F32, Normalize::F64] {
            let t = weights(&Taps::resize(4, 2, Filter::Triangle, normalize));
            let want = [[(0, a), (1, a), (2, b)], [(1, b), (2, a), (3, a)]];
            for (row, want) in t.iter().zip(want) {
                assert_eq!(row.len(), 3);
                for (&(j, w), (wj, ww)) in row.iter().zip(want) {
                    assert_eq!(j, wj);
                    assert!((w - ww).abs() < 1e-6, "{w} vs {ww}");
                }
            }
        }
    }

    #[test]
    fn normalizations_differ_in_zero_taps() {
        // 3 -> 3: output i (centre i + 0.5) has support [i, i + 2); tap i + 1 weighs exactly 0.
        let f64_rows = weights(&Taps::resize(3, 3, Filter::Triangle, Normalize::F64));
        assert_eq!(f64_rows, vec![vec![(0, 1.0), (1, 0.0)], vec![(1, 1.0), (2, 0.0)], vec![(2, 1.0)]]);
        let f32_rows = weights(&Taps::resize(3, 3, Filter::Triangle, Normalize::F32));
        assert_eq!(f32_rows, vec![vec![(0, 1.0)], vec![(1, 1.0)], vec![(2, 1.0)]]);
    }

    #[test]
    fn box_enlarge_is_nearest() {
        let t = weights(&Taps::resize(2, 4, Filter::Box, Normalize::F32));
        assert_eq!(t, vec![vec![(0, 1.0)], vec![(0, 1.0)], vec![(1, 1.0)], vec![(1, 1.0)]]);
    }
}
