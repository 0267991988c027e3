//! Shared building blocks of the corruptions, one way to do each thing: planes, boundary
//! handling, separable linear operators (gaussian blur and resizing), 2-D convolution,
//! bilinear sampling and centre zoom, HSV conversion.
//!
//! Everything works on *planes*: one channel, `width * height` values, row-major.

use crate::data::resample::{Filter, Normalize, Taps};
use crate::data::Image;

/// Splits an interleaved image into one plane per channel.
pub(crate) fn to_planes(image: &Image) -> Vec<Vec<f32>> {
    let c = image.channels;
    (0..c).map(|ch| image.data.iter().skip(ch).step_by(c).copied().collect()).collect()
}

/// Interleaves planes back into an image (sizes are trusted: they come from `to_planes`).
pub(crate) fn from_planes(width: usize, height: usize, planes: &[Vec<f32>]) -> Image {
    let c = planes.len();
    let mut data = vec![0f32; width * height * c];
    for (ch, plane) in planes.iter().enumerate() {
        for (p, &v) in plane.iter().enumerate() {
            data[p * c + ch] = v;
        }
    }
    Image { width, height, channels: c, data }
}

/// Applies `f` to every plane of the image.
pub(crate) fn map_planes(image: &Image, mut f: impl FnMut(&[f32]) -> Vec<f32>) -> Image {
    let planes: Vec<Vec<f32>> = to_planes(image).iter().map(|p| f(p)).collect();
    from_planes(image.width, image.height, &planes)
}

/// Rec. 601 luma, the gray value of an RGB pixel (as PIL/OpenCV convert to gray).
#[inline]
pub(crate) fn luma(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// The one boundary rule: half-sample symmetric reflection (`d c b a | a b c d | d c b a`,
/// scipy's `reflect`), valid for any offset, however far outside `0..n`.
#[inline]
pub(crate) fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let m = i.rem_euclid(2 * n);
    (if m >= n { 2 * n - 1 - m } else { m }) as usize
}

/// Convolution with a centred, odd-length `kernel` on `n` samples, reflected at the borders,
/// as a 1-D operator for `separable`. Taps that land on the same sample (kernels longer than
/// the signal) are merged, so even a kernel much longer than `n` costs at most `n` taps per output.
pub(crate) fn convolution_taps(kernel: &[f32], n: usize) -> Taps {
    let r = (kernel.len() / 2) as isize;
    let mut acc = vec![0f32; n];
    let mut touched: Vec<usize> = Vec::with_capacity(n.min(kernel.len()));
    let rows = (0..n as isize)
        .map(|i| {
            for (k, &w) in kernel.iter().enumerate() {
                let j = reflect(i + k as isize - r, n);
                if acc[j] == 0.0 {
                    touched.push(j);
                }
                acc[j] += w;
            }
            let row = touched.iter().map(|&j| (j as u32, acc[j])).collect();
            for &j in &touched {
                acc[j] = 0.0;
            }
            touched.clear();
            row
        })
        .collect();
    Taps { rows }
}

/// The same 1-D `kernel` along rows and columns of a plane `w` wide, reflected borders.
pub(crate) fn convolve_separable(plane: &[f32], w: usize, kernel: &[f32]) -> Vec<f32> {
    let h = plane.len() / w;
    separable(plane, w, &convolution_taps(kernel, w), &convolution_taps(kernel, h))
}

/// Applies `tx` along rows and `ty` along columns of a `w x h` plane. The result is
/// `tx.rows.len()` wide and `ty.rows.len()` high. Both passes run as whole-row
/// multiply-adds (the row pass on the transpose), which vectorise.
pub(crate) fn separable(plane: &[f32], w: usize, tx: &Taps, ty: &Taps) -> Vec<f32> {
    let columns = combine_rows(plane, w, ty);
    let dh = ty.rows.len();
    transpose(&combine_rows(&transpose(&columns, w), dh, tx), dh)
}

/// Output row `i` is `sum(k * src row j)` over `taps.rows[i]`; rows are `width` long.
fn combine_rows(src: &[f32], width: usize, taps: &Taps) -> Vec<f32> {
    let mut out = vec![0f32; taps.rows.len() * width];
    for (dst, row) in out.chunks_exact_mut(width).zip(&taps.rows) {
        for &(j, k) in row {
            let src = &src[j as usize * width..(j as usize + 1) * width];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += k * s;
            }
        }
    }
    out
}

/// Transpose of a row-major matrix whose rows are `width` long.
fn transpose(src: &[f32], width: usize) -> Vec<f32> {
    let height = src.len() / width;
    let mut out = vec![0f32; src.len()];
    for (y, row) in src.chunks_exact(width).enumerate() {
        for (x, &v) in row.iter().enumerate() {
            out[x * height + y] = v;
        }
    }
    out
}

/// Normalised gaussian kernel of radius `round(truncate * sigma)` (scipy's choice).
pub(crate) fn gaussian_kernel(sigma: f32, truncate: f32) -> Vec<f32> {
    if sigma <= 1e-6 {
        return vec![1.0];
    }
    let r = (truncate * sigma + 0.5) as isize;
    let k: Vec<f32> = (-r..=r).map(|x| (-0.5 * (x as f32 / sigma).powi(2)).exp()).collect();
    let total: f32 = k.iter().sum();
    k.into_iter().map(|v| v / total).collect()
}

/// Gaussian blur of one plane (truncate 4 as skimage's `gaussian`), reflected borders.
pub(crate) fn gaussian_blur_plane(plane: &[f32], w: usize, sigma: f32) -> Vec<f32> {
    gaussian_blur_plane_truncated(plane, w, sigma, 4.0)
}

pub(crate) fn gaussian_blur_plane_truncated(plane: &[f32], w: usize, sigma: f32, truncate: f32) -> Vec<f32> {
    convolve_separable(plane, w, &gaussian_kernel(sigma, truncate))
}

pub(crate) fn gaussian_blur(image: &Image, sigma: f32) -> Image {
    map_planes(image, |p| gaussian_blur_plane(p, image.width, sigma))
}

/// Resizes a plane (PIL semantics, see `Taps::resize`; the transforms share those coefficients
/// but normalise them in f64 and apply them to interleaved pixels, horizontal pass first).
pub(crate) fn resize_plane(plane: &[f32], w: usize, h: usize, dw: usize, dh: usize, filter: Filter) -> Vec<f32> {
    if (w, h) == (dw, dh) {
        return plane.to_vec();
    }
    separable(plane, w, &Taps::resize(w, dw, filter, Normalize::F32), &Taps::resize(h, dh, filter, Normalize::F32))
}

/// 2-D convolution with a square `(2r+1)^2` kernel (row-major), reflected borders. Each
/// non-zero tap adds a shifted copy of the padded plane, so the inner loop is a contiguous
/// multiply-add that vectorises.
pub(crate) fn convolve2d(plane: &[f32], w: usize, kernel: &[f32]) -> Vec<f32> {
    let h = plane.len() / w;
    let size = (kernel.len() as f64).sqrt() as usize;
    let r = size / 2;
    let pw = w + 2 * r;
    let mut padded = vec![0f32; pw * (h + 2 * r)];
    for (py, row) in padded.chunks_exact_mut(pw).enumerate() {
        let sy = reflect(py as isize - r as isize, h);
        for (px, v) in row.iter_mut().enumerate() {
            *v = plane[sy * w + reflect(px as isize - r as isize, w)];
        }
    }
    let mut out = vec![0f32; w * h];
    for (ky, krow) in kernel.chunks_exact(size).enumerate() {
        for (kx, &k) in krow.iter().enumerate() {
            if k == 0.0 {
                continue;
            }
            for (y, dst) in out.chunks_exact_mut(w).enumerate() {
                let start = (y + ky) * pw + kx;
                for (d, s) in dst.iter_mut().zip(&padded[start..start + w]) {
                    *d += k * s;
                }
            }
        }
    }
    out
}

/// Bilinear sample of a plane at real coordinates, reflected outside.
#[inline]
pub(crate) fn bilinear(plane: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = (x - x0, y - y0);
    let (x0, y0) = (x0 as isize, y0 as isize);
    let (xa, xb) = (reflect(x0, w), reflect(x0 + 1, w));
    let (ya, yb) = (reflect(y0, h) * w, reflect(y0 + 1, h) * w);
    let top = plane[ya + xa] + fx * (plane[ya + xb] - plane[ya + xa]);
    let bottom = plane[yb + xa] + fx * (plane[yb + xb] - plane[yb + xa]);
    top + fy * (bottom - top)
}

/// Per-axis linear interpolation table: for each output index, the two source indices
/// (reflected) and the weight of the second.
fn lerp_axis(n: usize, coord: impl Fn(usize) -> f32) -> Vec<(usize, usize, f32)> {
    (0..n)
        .map(|i| {
            let c = coord(i);
            let f = c.floor();
            (reflect(f as isize, n), reflect(f as isize + 1, n), c - f)
        })
        .collect()
}

/// Zooms a plane by `factor` (>= 1) about its centre and keeps the original size (the
/// reference's `clipped_zoom`: centre crop of `size / factor`, linearly upsampled).
pub(crate) fn zoom_center(plane: &[f32], w: usize, h: usize, factor: f32) -> Vec<f32> {
    let map = |c: f32| move |i: usize| c + (i as f32 + 0.5 - c) / factor - 0.5;
    let xs = lerp_axis(w, map(w as f32 / 2.0));
    let ys = lerp_axis(h, map(h as f32 / 2.0));
    let mut out = Vec::with_capacity(w * h);
    for &(ya, yb, fy) in &ys {
        let (ra, rb) = (&plane[ya * w..(ya + 1) * w], &plane[yb * w..(yb + 1) * w]);
        out.extend(xs.iter().map(|&(xa, xb, fx)| {
            let top = ra[xa] + fx * (ra[xb] - ra[xa]);
            let bottom = rb[xa] + fx * (rb[xb] - rb[xa]);
            top + fy * (bottom - top)
        }));
    }
    out
}

/// Motion blur of one plane: a one-sided line kernel of `2 * radius + 1` taps at `angle`
/// (degrees, 0 = along +x), tap `i` weighted `exp(-i^2 / (2 sigma^2))` (ImageMagick's
/// `-motion-blur`, as the reference uses it). The reference rounds each tap to a whole
/// pixel; here taps are split bilinearly over the pixels around them, so on small images
/// (a few taps) the blur still follows the angle instead of snapping to a few directions.
/// Edges are clamped (ImageMagick's edge pixels).
pub(crate) fn motion_blur_plane(plane: &[f32], w: usize, radius: f32, sigma: f32, angle: f32) -> Vec<f32> {
    let h = plane.len() / w;
    let taps = 2 * radius.round().max(1.0) as usize + 1;
    let sigma = sigma.max(1e-3);
    let weights: Vec<f32> = (0..taps).map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    let (sin, cos) = angle.to_radians().sin_cos();
    // Whole-pixel shifts and their weights, merged.
    let mut shifts = std::collections::BTreeMap::<(isize, isize), f32>::new();
    for (i, &k) in weights.iter().enumerate() {
        let (fx, fy) = (i as f32 * cos, i as f32 * sin);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - x0, fy - y0);
        for (dx, dy, wgt) in [(0, 0, (1.0 - ax) * (1.0 - ay)), (1, 0, ax * (1.0 - ay)), (0, 1, (1.0 - ax) * ay), (1, 1, ax * ay)] {
            if wgt > 1e-6 {
                *shifts.entry((x0 as isize + dx, y0 as isize + dy)).or_default() += k * wgt / total;
            }
        }
    }
    let mut out = vec![0f32; w * h];
    for (&(dx, dy), &k) in &shifts {
        // Columns whose shifted source stays inside: a contiguous run, clamped ends.
        let lo = (-dx).clamp(0, w as isize) as usize;
        let hi = (w as isize - dx).clamp(lo as isize, w as isize) as usize;
        for (y, dst) in out.chunks_exact_mut(w).enumerate() {
            let sy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
            let src = &plane[sy * w..(sy + 1) * w];
            for d in &mut dst[..lo] {
                *d += k * src[0];
            }
            let start = (lo as isize + dx) as usize;
            for (d, s) in dst[lo..hi].iter_mut().zip(&src[start..start + (hi - lo)]) {
                *d += k * s;
            }
            for d in &mut dst[hi..] {
                *d += k * src[w - 1];
            }
        }
    }
    out
}

/// RGB in [0,1] to HSV in [0,1]^3 (skimage's `rgb2hsv`).
#[inline]
pub(crate) fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    let h = if delta <= 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    (h, s, max)
}

#[inline]
pub(crate) fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = (h * 6.0).rem_euclid(6.0);
    let i = h6.floor();
    let f = h6 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match i as u8 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

/// Applies an RGB pixel function to an image. Grayscale images are treated as R = G = B and
/// brought back with `luma`, so colour corruptions act on gray images the way they act on
/// a gray RGB photo.
pub(crate) fn map_rgb(image: &Image, f: impl Fn(usize, f32, f32, f32) -> (f32, f32, f32)) -> Image {
    let mut out = image.clone();
    if image.channels == 3 {
        for (p, px) in out.data.chunks_exact_mut(3).enumerate() {
            let (r, g, b) = f(p, px[0], px[1], px[2]);
            px.copy_from_slice(&[r, g, b]);
        }
    } else {
        for (p, v) in out.data.iter_mut().enumerate() {
            let (r, g, b) = f(p, *v, *v, *v);
            *v = luma(r, g, b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_folds_any_offset() {
        let got: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(got, vec![3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
    }

    #[test]
    fn blur_and_resize_preserve_constants() {
        let plane = vec![0.25f32; 30 * 20];
        for v in gaussian_blur_plane(&plane, 30, 50.0) {
            assert!((v - 0.25).abs() < 1e-5);
        }
        let r = resize_plane(&plane, 30, 20, 7, 45, Filter::Triangle);
        assert_eq!(r.len(), 7 * 45);
        assert!(r.iter().all(|v| (v - 0.25).abs() < 1e-5));
    }

    #[test]
    fn hsv_round_trip() {
        for &(r, g, b) in &[(0.1, 0.5, 0.9), (1.0, 0.0, 0.3), (0.4, 0.4, 0.4), (0.0, 0.0, 0.0)] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-5 && (g - g2).abs() < 1e-5 && (b - b2).abs() < 1e-5);
        }
    }
}
