//! torchvision's `ColorJitter` and `RandomRotation` on images in [0, 1] (interleaved).

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::corruptions::filters::{hsv_to_rgb, rgb_to_hsv};
use crate::data::Image;

/// The strengths of `ColorJitter`: each factor is drawn in `[max(0, 1 - x), 1 + x]` (hue: a
/// shift in `[-hue, hue]` turns of the colour wheel); 0 leaves that property alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

/// torchvision's `rgb_to_grayscale` weights (for the contrast mean and the saturation blend).
fn gray(px: &[f32]) -> f32 {
    0.2989 * px[0] + 0.587 * px[1] + 0.114 * px[2]
}

/// `factor * a + (1 - factor) * b`, clamped to [0, 1] (torchvision's `_blend`).
fn blend(a: f32, b: f32, factor: f32) -> f32 {
    (factor * a + (1.0 - factor) * b).clamp(0.0, 1.0)
}

/// Applies the four adjustments in a random order, as torchvision does (one permutation and the
/// four factors drawn per image). Saturation and hue leave 1-channel images alone.
pub fn color_jitter(mut image: Image, j: &ColorJitter, rng: &mut ChaCha8Rng) -> Image {
    let factor = |x: f64, rng: &mut ChaCha8Rng| if x > 0.0 { Some(rng.gen_range((1.0 - x).max(0.0)..=1.0 + x) as f32) } else { None };
    let mut order = [0usize, 1, 2, 3];
    order.shuffle(rng);
    let (b, c, s) = (factor(j.brightness, rng), factor(j.contrast, rng), factor(j.saturation, rng));
    let h = if j.hue > 0.0 { Some(rng.gen_range(-j.hue..=j.hue) as f32) } else { None };
    let rgb = image.channels == 3;
    for op in order {
        match (op, b, c, s, h) {
            (0, Some(f), ..) => image.data.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
            (1, _, Some(f), ..) => {
                let n = (image.width * image.height).max(1) as f32;
                let mean = if rgb { image.data.chunks_exact(3).map(gray).sum::<f32>() / n } else { image.data.iter().sum::<f32>() / n };
                image.data.iter_mut().for_each(|v| *v = blend(*v, mean, f));
            }
            (2, _, _, Some(f), _) if rgb => {
                for px in image.data.chunks_exact_mut(3) {
                    let g = gray(px);
                    px.iter_mut().for_each(|v| *v = blend(*v, g, f));
                }
            }
            (3, _, _, _, Some(shift)) if rgb => image.data.chunks_exact_mut(3).for_each(|px| shift_hue(px, shift)),
            _ => {}
        }
    }
    image
}

/// RGB -> HSV, hue + shift (mod 1), -> RGB, as torchvision's `adjust_hue` (the conversions the
/// saturate corruption uses).
fn shift_hue(px: &mut [f32], shift: f32) {
    let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
    let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
    px.copy_from_slice(&[r, g, b]);
}

/// Rotates by `degrees` counter-clockwise about the image centre, nearest neighbour, the size
/// kept and uncovered pixels 0 (torchvision's `rotate` with its defaults).
pub fn rotate(image: &Image, degrees: f64) -> Image {
    let (w, h, c) = (image.width, image.height, image.channels);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut out = vec![0f32; image.data.len()];
    for y in 0..h {
        for x in 0..w {
            // The source of output pixel (x, y): the inverse rotation (y grows downwards, so a
            // counter-clockwise turn on screen is clockwise in these coordinates).
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let sx = (cos * dx - sin * dy + cx).round();
            let sy = (sin * dx + cos * dy + cy).round();
            if sx >= 0.0 && sy >= 0.0 && (sx as usize) < w && (sy as usize) < h {
                let (src, dst) = (((sy as usize) * w + sx as usize) * c, (y * w + x) * c);
                out[dst..dst + c].copy_from_slice(&image.data[src..src + c]);
            }
        }
    }
    Image { width: w, height: h, channels: c, data: out }
}
