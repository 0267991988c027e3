//! col2im's additions for float32 with vector instructions: each column row's values added into
//! an input row at stride 1 or 2, in the same order as the scalar loop, so the results are
//! bit-identical to it.
//!
//! At stride 2 a vector of N column values is spread over the even lanes of two vectors (zeros in
//! the odd lanes) and added to 2N consecutive input values. Adding +0.0 changes no value: a sum
//! that starts at +0.0 is never -0.0 in round-to-nearest, and NaN stays NaN.

use super::simd::{with_lanes, Isa, Lanes};

/// dst[k] += src[k] for k < src.len().
///
/// # Safety
/// The CPU supports `L`'s instructions; `dst` holds at least src.len() values.
#[inline(always)]
unsafe fn add_row<L: Lanes>(dst: *mut f32, src: &[f32]) {
    let (n, s) = (src.len(), src.as_ptr());
    let mut k = 0;
    while k + L::N <= n {
        L::load(dst.add(k)).add(L::load(s.add(k))).store(dst.add(k));
        k += L::N;
    }
    if k < n {
        let m = L::first(n - k);
        L::load_masked(dst.add(k), m).add(L::load_masked(s.add(k), m)).store_masked(dst.add(k), m);
    }
}

/// dst[2 k] += src[k] for k < src.len().
///
/// # Safety
/// The CPU supports `L`'s instructions; `dst` holds at least 2 src.len() - 1 values.
#[inline(always)]
unsafe fn add_row_stride2<L: Lanes>(dst: *mut f32, src: &[f32]) {
    let (n, s) = (src.len(), src.as_ptr());
    if n == 0 {
        return;
    }
    let span = 2 * n - 1;
    let mut k = 0;
    while k < n {
        let count = (n - k).min(L::N);
        let values = if count == L::N { L::load(s.add(k)) } else { L::load_masked(s.add(k), L::first(count)) };
        let (low, high) = values.spread_evens();
        let at = dst.add(2 * k);
        // The input values this chunk covers: 2 count - 1, or up to the row's end.
        let covered = (span - 2 * k).min(2 * L::N);
        if covered == 2 * L::N {
            L::load(at).add(low).store(at);
            L::load(at.add(L::N)).add(high).store(at.add(L::N));
        } else {
            let m = L::first(covered.min(L::N));
            L::load_masked(at, m).add(low).store_masked(at, m);
            if covered > L::N {
                let m = L::first(covered - L::N);
                L::load_masked(at.add(L::N), m).add(high).store_masked(at.add(L::N), m);
            }
        }
        k += count;
    }
}

/// The additions of one tap's values into one input plane: for every output row `oy` whose input
/// row is `input_rows[oy]`, the values of output columns `valid` go to input columns `first`,
/// `first + stride`, ...
pub struct TapRows<'a> {
    pub valid: std::ops::Range<usize>,
    pub first: usize,
    pub input_rows: &'a [Option<usize>],
}

/// Calls `add(dst, src)` for each addition of one col2im plane, in col2im's order (tap by tap,
/// output row by output row): `src` the tap's values of one output row, `dst` the input row's
/// span they go to (`stride * (src.len() - 1) + 1` values from the tap's first column). Both
/// col2im paths walk through here, so they add in the same order.
///
/// # Panics
/// When a tap's values or a span fall outside `values` or `plane`.
#[inline(always)]
pub fn for_each_addition<T>(
    plane: &mut [T],
    values: &[T],
    tap_stride: usize,
    taps: &[TapRows],
    (ow, w, stride): (usize, usize, usize),
    mut add: impl FnMut(&mut [T], &[T]),
) {
    for (t, tap) in taps.iter().enumerate() {
        if tap.valid.is_empty() {
            continue;
        }
        let len = tap.valid.len();
        let reach = stride * (len - 1) + 1;
        let values = &values[t * tap_stride..][..tap.input_rows.len() * ow];
        for (oy, iy) in tap.input_rows.iter().enumerate() {
            let Some(iy) = *iy else { continue };
            add(&mut plane[iy * w + tap.first..][..reach], &values[oy * ow + tap.valid.start..][..len]);
        }
    }
}

/// One input plane of col2im in float32, with the vector instructions of `isa`: zeroed, then for
/// each tap in order its values (`values[t * tap_stride..]`, `ow` per output row) added where
/// `taps[t]` says, at stride 1 or 2 into rows of `w` values.
///
/// # Panics
/// When a tap's values or a row's additions fall outside `values` or `plane`, or the stride is
/// neither 1 nor 2.
pub fn col2im_plane(isa: Isa, plane: &mut [f32], values: &[f32], tap_stride: usize, taps: &[TapRows], shape: (usize, usize, usize)) {
    #[inline(always)]
    unsafe fn body<L: Lanes>(plane: &mut [f32], values: &[f32], tap_stride: usize, taps: &[TapRows], shape: (usize, usize, usize)) {
        plane.fill(0.0);
        let unit_stride = shape.2 == 1;
        for_each_addition(plane, values, tap_stride, taps, shape, |dst, src| {
            // SAFETY: `for_each_addition` hands out spans of exactly the reach the additions
            // need (bounds-checked), and `L`'s instructions are enabled where `body` runs.
            unsafe {
                if unit_stride {
                    add_row::<L>(dst.as_mut_ptr(), src)
                } else {
                    add_row_stride2::<L>(dst.as_mut_ptr(), src)
                }
            }
        });
    }
    assert!(shape.2 == 1 || shape.2 == 2, "col2im_plane: stride {}", shape.2);
    with_lanes!(isa, body(plane: &mut [f32], values: &[f32], tap_stride: usize, taps: &[TapRows], shape: (usize, usize, usize)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::cpu::testing::isas;

    /// Bit for bit what the scalar loop gives, on every length around the vector widths, with
    /// values whose sums round and NaN; the row's neighbours stay zero.
    #[test]
    fn one_row_matches_the_scalar_additions_bit_for_bit() {
        for isa in isas() {
            for stride in [1, 2] {
                for n in 1..70 {
                    let src: Vec<f32> = (0..n).map(|k| ((k * 7919 % 1000) as f32 - 500.0) * 1.37e-3).collect();
                    let w = stride * (n - 1) + 3;
                    // Two taps onto the same row, so the second adds to the first's sums.
                    let mut values = src.clone();
                    values.extend(src.iter().rev().map(|v| v * 0.77));
                    values[n + n / 2] = f32::NAN;
                    let rows = [Some(0)];
                    let taps = [TapRows { valid: 0..n, first: 1, input_rows: &rows }, TapRows { valid: 0..n, first: 1, input_rows: &rows }];
                    let mut want = vec![0f32; w];
                    for t in 0..2 {
                        for k in 0..n {
                            want[1 + stride * k] += values[t * n + k];
                        }
                    }
                    let mut plane = vec![f32::NAN; w];
                    col2im_plane(isa, &mut plane, &values, n, &taps, (n, w, stride));
                    let bits = |r: &[f32]| r.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&plane), bits(&want), "{isa:?} stride {stride}, {n} values");
                }
            }
        }
    }

    #[test]
    fn refuses_additions_past_the_plane() {
        let Some(&isa) = isas().first() else { return };
        let rows = [Some(1)];
        let taps = [TapRows { valid: 0..3, first: 0, input_rows: &rows }];
        // Row 1 of a 5-wide plane holds 5 values; 3 values at stride 2 reach 5: fits. Past it, no.
        col2im_plane(isa, &mut [0.0; 10], &[1.0; 3], 3, &taps, (3, 5, 2));
        assert!(std::panic::catch_unwind(|| col2im_plane(isa, &mut [0.0; 9], &[1.0; 3], 3, &taps, (3, 5, 2))).is_err());
    }
}
