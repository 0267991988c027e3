//! Digital corruptions: brightness, contrast, elastic transform, pixelate, JPEG, saturate.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageFormat};
use rand::Rng;
use rand_distr::Uniform;

use super::filters::{bilinear, from_planes, gaussian_blur_plane_truncated, hsv_to_rgb, map_planes, map_rgb, resize_plane, rgb_to_hsv, to_planes};
use super::Ctx;
use crate::data::resample::Filter;
use crate::data::Image;
use crate::error::{Error, Result};

/// Added to the HSV value.
const BRIGHTNESS: [f32; 5] = [0.1, 0.2, 0.3, 0.4, 0.5];
/// Factor on each channel's deviation from its mean.
const CONTRAST: [f32; 5] = [0.4, 0.3, 0.2, 0.1, 0.05];
/// (alpha, sigma, affine) as multiples of 244 (the reference's constant for 224 px images).
const ELASTIC: [(f32, f32, f32); 5] = [(2.0, 0.7, 0.1), (2.0, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)];
/// Side factor of the box downscale.
const PIXELATE: [f32; 5] = [0.6, 0.5, 0.4, 0.3, 0.25];
const JPEG_QUALITY: [u8; 5] = [25, 18, 15, 10, 7];
/// HSV saturation becomes `S * a + b`.
const SATURATE: [(f32, f32); 5] = [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)];

/// HSV value `+ c` (skimage rgb2hsv/hsv2rgb as the reference). On gray: `gray + c`.
pub(crate) fn brightness(image: &Image, ctx: &mut Ctx) -> Image {
    let c = BRIGHTNESS[ctx.level];
    map_rgb(image, |_, r, g, b| {
        let (h, s, v) = rgb_to_hsv(r, g, b);
        hsv_to_rgb(h, s, (v + c).clamp(0.0, 1.0))
    })
}

/// HSV saturation `* a + b`. A gray image has no saturation to take away (severities 1-2
/// leave it unchanged); the offset `b` of severities 4-5 tints it red, which `map_rgb`
/// brings back to gray as a luma drop of `0.701 * b * value`.
pub(crate) fn saturate(image: &Image, ctx: &mut Ctx) -> Image {
    let (a, b0) = SATURATE[ctx.level];
    map_rgb(image, |_, r, g, b| {
        let (h, s, v) = rgb_to_hsv(r, g, b);
        hsv_to_rgb(h, (s * a + b0).clamp(0.0, 1.0), v)
    })
}

/// `(x - mean) * c + mean`, per channel.
pub(crate) fn contrast(image: &Image, ctx: &mut Ctx) -> Image {
    let c = CONTRAST[ctx.level];
    map_planes(image, |p| {
        let mean = (p.iter().map(|&v| f64::from(v)).sum::<f64>() / p.len() as f64) as f32;
        p.iter().map(|&v| (v - mean) * c + mean).collect()
    })
}

/// Box (area) downscale to `factor` of the size, then back up with the box filter, which
/// is nearest neighbour when enlarging (PIL `resize(..., BOX)` twice, as the reference).
pub(crate) fn pixelate(image: &Image, ctx: &mut Ctx) -> Image {
    let f = PIXELATE[ctx.level];
    let (w, h) = (image.width, image.height);
    let (sw, sh) = (((w as f32 * f) as usize).max(1), ((h as f32 * f) as usize).max(1));
    map_planes(image, |p| {
        let small = resize_plane(p, w, h, sw, sh, Filter::Box);
        resize_plane(&small, sw, sh, w, h, Filter::Box)
    })
}

/// A real JPEG round trip: 8-bit encode at the quality (RGB or grayscale JPEG), decode.
pub(crate) fn jpeg_compression(image: &Image, ctx: &mut Ctx) -> Result<Image> {
    let quality = JPEG_QUALITY[ctx.level];
    let (w, h, c) = (image.width, image.height, image.channels);
    let color = if c == 3 { ExtendedColorType::Rgb8 } else { ExtendedColorType::L8 };
    let fail = |e: image::ImageError| Error::invalid_data(format!("jpeg_compression: JPEG round trip failed: {e}"));
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(Cursor::new(&mut encoded), quality).encode(&image.to_u8(), w as u32, h as u32, color).map_err(fail)?;
    let decoded = image::load_from_memory_with_format(&encoded, ImageFormat::Jpeg).map_err(fail)?;
    let bytes = if c == 3 { decoded.to_rgb8().into_raw() } else { decoded.to_luma8().into_raw() };
    Image::from_u8(w, h, c, &bytes)
}

/// Solves the affine map `(x, y) -> (a x + b y + c, d x + e y + f)` through three point pairs.
fn affine_from_points(from: [(f32, f32); 3], to: [(f32, f32); 3]) -> [f32; 6] {
    let [(x1, y1), (x2, y2), (x3, y3)] = from.map(|(x, y)| (f64::from(x), f64::from(y)));
    let det = x1 * (y2 - y3) - y1 * (x2 - x3) + (x2 * y3 - x3 * y2);
    let solve = |u1: f64, u2: f64, u3: f64| -> [f64; 3] {
        let a = (u1 * (y2 - y3) - y1 * (u2 - u3) + (u2 * y3 - u3 * y2)) / det;
        let b = (x1 * (u2 - u3) - u1 * (x2 - x3) + (x2 * u3 - x3 * u2)) / det;
        let c = (x1 * (y2 * u3 - y3 * u2) - y1 * (x2 * u3 - x3 * u2) + u1 * (x2 * y3 - x3 * y2)) / det;
        [a, b, c]
    };
    let [a, b, c] = solve(f64::from(to[0].0), f64::from(to[1].0), f64::from(to[2].0));
    let [d, e, f] = solve(f64::from(to[0].1), f64::from(to[1].1), f64::from(to[2].1));
    [a, b, c, d, e, f].map(|v| v as f32)
}

/// The reference's elastic transform: a random affine warp (three control points moved by
/// up to `affine`), then a displacement field of uniform noise blurred with `sigma`
/// (truncate 3) and scaled by `alpha`; bilinear sampling, reflected borders. The
/// parameters are multiples of `244 * scale`, i.e. exactly the reference's at 224 px.
/// The displacement in pixels, `alpha * blur(noise)`, barely depends on the size (both
/// alpha and sigma scale), so small images are distorted relatively more, as in the
/// reference formula.
pub(crate) fn elastic_transform(image: &Image, ctx: &mut Ctx) -> Image {
    let (a, s, f) = ELASTIC[ctx.level];
    let size = 244.0 * ctx.scale;
    let (alpha, sigma, affine) = (a * size, s * size, f * size);
    let (w, h) = (image.width, image.height);
    let (cx, cy) = ((w / 2) as f32, (h / 2) as f32);
    let sq = (w.min(h) / 3) as f32;
    let from = [(cx + sq, cy + sq), (cx + sq, cy - sq), (cx - sq, cy - sq)];
    let to = from.map(|(x, y)| (x + ctx.rng.gen_range(-affine..affine), y + ctx.rng.gen_range(-affine..affine)));
    // Output pixel (x, y) reads the source at the inverse map, which is the map to -> from.
    let inv = affine_from_points(to, from);
    let uniform = Uniform::new(-1.0f32, 1.0);
    let mut field = || {
        let noise: Vec<f32> = (&mut ctx.rng).sample_iter(uniform).take(w * h).collect();
        gaussian_blur_plane_truncated(&noise, w, sigma, 3.0).into_iter().map(|v| v * alpha).collect::<Vec<f32>>()
    };
    let dx = field();
    let dy = field();
    let planes: Vec<Vec<f32>> = to_planes(image)
        .iter()
        .map(|p| {
            let mut warped = Vec::with_capacity(w * h);
            for y in 0..h {
                for x in 0..w {
                    let (xf, yf) = (x as f32, y as f32);
                    warped.push(bilinear(p, w, h, inv[0] * xf + inv[1] * yf + inv[2], inv[3] * xf + inv[4] * yf + inv[5]));
                }
            }
            (0..w * h).map(|i| bilinear(&warped, w, h, (i % w) as f32 + dx[i], (i / w) as f32 + dy[i])).collect()
        })
        .collect();
    from_planes(w, h, &planes)
}
