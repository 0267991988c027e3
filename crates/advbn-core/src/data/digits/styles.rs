//! The styles of the target domains: each maps a grayscale digit in [0, 1] to RGB values
//! (interleaved, not yet clamped) with the domain's random draws from `rng`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::textures;
use super::{COLORIZED_CONTRAST, COLORIZED_MIN_SATURATION, LOW_LIGHT_GAIN, LOW_LIGHT_MIN_CONTRAST, LOW_LIGHT_TINT, MNIST_M_MIN_CONTRAST};

fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

pub(super) fn mnist_m(d: &[f32], w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (_, mut tex) = textures::generate(w, h, rng);
    for (px, &v) in tex.data.chunks_exact_mut(3).zip(d) {
        // Contrast floor: where every channel is near 0.5 the stroke (1 - t) would look like
        // the background (t). The pixel's offset from mid-gray, of max-norm m in [0, 0.5], is
        // rescaled to max-norm `floor + (1 - 2 floor) m`: same direction, order kept.
        let m = px.iter().fold(0f32, |m, &c| m.max((c - 0.5).abs()));
        if m < 1e-6 {
            px[0] = 0.5 + MNIST_M_MIN_CONTRAST;
        } else {
            let k = (MNIST_M_MIN_CONTRAST + (1.0 - 2.0 * MNIST_M_MIN_CONTRAST) * m) / m;
            px.iter_mut().for_each(|c| *c = 0.5 + (*c - 0.5) * k);
        }
        px.iter_mut().for_each(|c| *c = (*c - v).abs());
    }
    tex.data
}

/// A random background and foreground colour whose `brightness` differs by at least
/// `LOW_LIGHT_MIN_CONTRAST`; after 64 misses, whichever of black and white is farther from the
/// background (under a colour cast that can fall short of the floor: the best there is).
fn colour_pair(rng: &mut ChaCha8Rng, brightness: impl Fn([f32; 3]) -> f32) -> ([f32; 3], [f32; 3]) {
    let colour = |rng: &mut ChaCha8Rng| -> [f32; 3] { [rng.gen(), rng.gen(), rng.gen()] };
    let bg = colour(rng);
    let apart = |fg: [f32; 3]| (brightness(fg) - brightness(bg)).abs();
    for _ in 0..64 {
        let fg = colour(rng);
        if apart(fg) >= LOW_LIGHT_MIN_CONTRAST {
            return (bg, fg);
        }
    }
    let (black, white) = ([0.0; 3], [1.0; 3]);
    (bg, if apart(black) >= apart(white) { black } else { white })
}

/// The digit painted from `bg` (0) to `fg` (1), interleaved RGB.
fn paint(d: &[f32], bg: [f32; 3], fg: [f32; 3]) -> Vec<f32> {
    d.iter().flat_map(|&v| [bg[0] + (fg[0] - bg[0]) * v, bg[1] + (fg[1] - bg[1]) * v, bg[2] + (fg[2] - bg[2]) * v]).collect()
}

pub(super) fn colorized(d: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (bg, fg) = chromatic_pair(rng);
    paint(d, bg, fg)
}

/// Two chromatic colours (HSV saturation at least `COLORIZED_MIN_SATURATION`, value at least
/// 0.3) whose luma differs by an amount in `COLORIZED_CONTRAST`, either one the brighter: pairs
/// drawn independently until one fits (about one draw in four does). After 256 misses (never
/// seen) the foreground falls back to the gray at the middle of the range from the background.
fn chromatic_pair(rng: &mut ChaCha8Rng) -> ([f32; 3], [f32; 3]) {
    let colour = |rng: &mut ChaCha8Rng| textures::hsv_to_rgb(rng.gen(), rng.gen_range(COLORIZED_MIN_SATURATION..1.0), rng.gen_range(0.3..1.0));
    let (lo, hi) = COLORIZED_CONTRAST;
    let mut bg = colour(rng);
    for _ in 0..256 {
        let fg = colour(rng);
        if (lo..=hi).contains(&(luma(fg) - luma(bg)).abs()) {
            return (bg, fg);
        }
        bg = colour(rng);
    }
    let step = 0.5 * (lo + hi);
    let l = luma(bg);
    let gray = if l + step <= 1.0 { l + step } else { l - step };
    (bg, [gray; 3])
}

pub(super) fn low_light(d: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let gain = rng.gen_range(LOW_LIGHT_GAIN.0..LOW_LIGHT_GAIN.1);
    let tint: [f32; 3] = std::array::from_fn(|c| LOW_LIGHT_TINT[c] * rng.gen_range(0.9..1.1));
    // A page, dark ink on a lighter colour, whose pair stays apart in luma under this light (the
    // cast could cancel the contrast of, say, a red digit on blue).
    let lit = |c: [f32; 3]| luma(std::array::from_fn(|k| c[k] * tint[k]));
    let (bg, fg) = colour_pair(rng, lit);
    let (bg, fg) = if lit(fg) > lit(bg) { (fg, bg) } else { (bg, fg) };
    let mut out = paint(d, bg, fg);
    // A camera's tone curve lifts the shadows a little; then read noise plus shot noise, whose
    // variance grows with the signal.
    let gamma = rng.gen_range(0.7..0.85);
    let read = Normal::new(0.0f32, rng.gen_range(0.005..0.02)).expect("sigma is positive");
    let shot = rng.gen_range(0.003..0.01);
    let unit = Normal::new(0.0f32, 1.0).expect("sigma is positive");
    for px in out.chunks_exact_mut(3) {
        for (c, v) in px.iter_mut().enumerate() {
            let signal = (*v * gain * tint[c]).powf(gamma);
            *v = signal + read.sample(rng) + (shot * signal).sqrt() * unit.sample(rng);
        }
    }
    out
}

/// 3x3 binomial blur, borders clamped.
fn blur3(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| p[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize];
    let mut out = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut s = 0.0;
            for (j, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                for (i, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    s += wx * wy * at(x + i, y + j);
                }
            }
            out[y as usize * w + x as usize] = s / 16.0;
        }
    }
    out
}

/// Sobel gradient magnitude, borders clamped.
fn sobel(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| p[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize];
    let mut out = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2.0 * at(x - 1, y) - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1) - at(x - 1, y - 1) - 2.0 * at(x, y - 1) - at(x + 1, y - 1);
            out[y as usize * w + x as usize] = (gx * gx + gy * gy).sqrt();
        }
    }
    out
}

pub(super) fn sketch(d: &[f32], w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let edges = sobel(&blur3(d, w, h), w, h);
    let peak = edges.iter().fold(0f32, |m, &v| m.max(v));
    // Paper: a light, slightly tinted base with soft fractal shading and fine grain.
    let paper = textures::hsv_to_rgb(rng.gen(), rng.gen_range(0.0..0.15), rng.gen_range(0.85..0.98));
    let ink = textures::hsv_to_rgb(rng.gen(), rng.gen_range(0.0..0.6), rng.gen_range(0.05..0.3));
    let gain = rng.gen_range(1.1..1.5);
    // Edge strength below `floor` (of the peak) leaves the paper bare: thins the strokes.
    let floor = rng.gen_range(0.2..0.3);
    let shading = textures::fbm(w, h, 2.5, 3, 0.5, rng);
    let grain = Normal::new(0.0f32, rng.gen_range(0.015..0.04)).expect("sigma is positive");
    let mut out = Vec::with_capacity(w * h * 3);
    for p in 0..w * h {
        let e = if peak > 0.0 { edges[p] / peak } else { 0.0 };
        // Pencil pressure varies along the stroke.
        let a = ((e * gain - floor) / (1.0 - floor)).clamp(0.0, 1.0) * rng.gen_range(0.75..1.0);
        let s = 0.06 * (shading[p] - 0.5) + grain.sample(rng);
        for c in 0..3 {
            out.push(paper[c] + s + (ink[c] - paper[c]) * a);
        }
    }
    out
}
