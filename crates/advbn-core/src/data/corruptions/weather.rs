//! Weather corruptions: snow, frost, fog, and the extra spatter. Their layers (particles,
//! ice, plasma fog, splashes) are procedural, drawn on a reference-scale canvas whose short
//! side is 224 px with the reference's parameters, then resampled to the image: they look
//! the same, relative to the picture, at every size. No texture files.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::filters::{gaussian_blur_plane, luma, map_rgb, motion_blur_plane, resize_plane, zoom_center};
use super::Ctx;
use crate::data::resample::Filter;
use crate::data::Image;

/// (mean, std, zoom, threshold, blur radius, blur sigma, image weight).
#[allow(clippy::type_complexity)]
const SNOW: [(f32, f32, f32, f32, f32, f32, f32); 5] = [
    (0.1, 0.3, 3.0, 0.5, 10.0, 4.0, 0.8),
    (0.2, 0.3, 2.0, 0.5, 12.0, 4.0, 0.7),
    (0.55, 0.3, 4.0, 0.9, 12.0, 8.0, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12.0, 8.0, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12.0, 12.0, 0.55),
];
/// (image weight, frost weight).
const FROST: [(f32, f32); 5] = [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)];
/// (strength, plasma wibble decay).
const FOG: [(f32, f64); 5] = [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)];
/// (mean, std, sigma, threshold, intensity or mud sigma, mud?).
const SPATTER: [(f32, f32, f32, f32, f32, bool); 5] = [
    (0.65, 0.3, 4.0, 0.69, 0.6, false),
    (0.65, 0.3, 3.0, 0.68, 0.6, false),
    (0.65, 0.3, 2.0, 0.68, 0.5, false),
    (0.65, 0.3, 1.0, 0.65, 1.5, true),
    (0.67, 0.4, 1.0, 0.65, 1.5, true),
];

/// The procedural canvas: the image's aspect, short side 224 px.
struct Canvas {
    w: usize,
    h: usize,
    /// The image's size, which layers are resampled to.
    image_w: usize,
    image_h: usize,
}

impl Canvas {
    fn for_image(image: &Image) -> Canvas {
        let short = image.width.min(image.height) as f64;
        let side = |n: usize| ((n as f64 * 224.0 / short).round() as usize).max(224);
        Canvas { w: side(image.width), h: side(image.height), image_w: image.width, image_h: image.height }
    }

    fn normal(&self, mean: f32, std: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..self.w * self.h).map(|_| mean + std * rng.sample::<f32, _>(StandardNormal)).collect()
    }

    /// Brings a canvas layer to the image's size (antialiased linear resampling).
    fn to_image(&self, layer: &[f32]) -> Vec<f32> {
        resize_plane(layer, self.w, self.h, self.image_w, self.image_h, Filter::Triangle)
    }
}

/// Diamond-square plasma fractal on a torus of `size` (a power of two), normalised to
/// [0, 1]: the reference's `plasma_fractal`, whose random offsets shrink by `decay` per
/// octave (a smaller decay gives rougher, more detailed fog).
pub(crate) fn plasma_fractal(size: usize, decay: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    debug_assert!(size.is_power_of_two());
    let n = size;
    let mut m = vec![0f64; n * n];
    let mut step = n;
    let mut wibble = 100.0f64;
    while step >= 2 {
        let half = step / 2;
        let jitter = |rng: &mut ChaCha8Rng| wibble * rng.gen_range(-wibble..wibble);
        for i in (0..n).step_by(step) {
            for j in (0..n).step_by(step) {
                let (i2, j2) = ((i + step) % n, (j + step) % n);
                let sum = m[i * n + j] + m[i2 * n + j] + m[i * n + j2] + m[i2 * n + j2];
                m[(i + half) * n + j + half] = sum / 4.0 + jitter(rng);
            }
        }
        for i in (0..n).step_by(step) {
            for j in (0..n).step_by(step) {
                let up = (i + n - half) % n;
                let sum = m[(i + half) * n + j + half] + m[up * n + j + half] + m[i * n + j] + m[i * n + (j + step) % n];
                m[i * n + j + half] = sum / 4.0 + jitter(rng);
            }
        }
        for i in (0..n).step_by(step) {
            for j in (0..n).step_by(step) {
                let left = (j + n - half) % n;
                let sum = m[(i + half) * n + j + half] + m[(i + half) * n + left] + m[i * n + j] + m[((i + step) % n) * n + j];
                m[(i + half) * n + j] = sum / 4.0 + jitter(rng);
            }
        }
        step = half;
        wibble /= decay;
    }
    let (lo, hi) = m.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let range = (hi - lo).max(f64::MIN_POSITIVE);
    m.into_iter().map(|v| ((v - lo) / range) as f32).collect()
}

/// A plasma fractal cropped to `w x h` (the map is the next power of two >= both).
fn plasma_crop(w: usize, h: usize, decay: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = w.max(h).next_power_of_two();
    let map = plasma_fractal(n, decay, rng);
    (0..h).flat_map(|y| map[y * n..y * n + w].iter().copied()).collect()
}

/// Falling snow: gaussian particles zoomed to flake size, thresholded, motion-blurred along
/// a random near-vertical direction, added twice (the layer and its 180-degree rotation)
/// over an image whitened towards `1.5 * gray + 0.5`.
pub(crate) fn snow(image: &Image, ctx: &mut Ctx) -> Image {
    let (mean, std, zoom, threshold, radius, sigma, weight) = SNOW[ctx.level];
    let canvas = Canvas::for_image(image);
    let mut layer = zoom_center(&canvas.normal(mean, std, &mut ctx.rng), canvas.w, canvas.h, zoom);
    for v in &mut layer {
        *v = if *v < threshold { 0.0 } else { v.min(1.0) };
    }
    let angle: f32 = ctx.rng.gen_range(-135.0..-45.0);
    let layer = canvas.to_image(&motion_blur_plane(&layer, canvas.w, radius, sigma, angle));
    let n = layer.len();
    map_rgb(image, |p, r, g, b| {
        let snow = layer[p] + layer[n - 1 - p];
        let lifted = luma(r, g, b) * 1.5 + 0.5;
        let f = |x: f32| weight * x + (1.0 - weight) * x.max(lifted) + snow;
        (f(r), f(g), f(b))
    })
}

/// Adds `value` at a real position, split bilinearly over the four pixels around it.
fn splat(canvas: &mut [f32], w: usize, h: usize, x: f32, y: f32, value: f32) {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    for (dx, dy, wgt) in [(0, 0, (1.0 - fx) * (1.0 - fy)), (1, 0, fx * (1.0 - fy)), (0, 1, (1.0 - fx) * fy), (1, 1, fx * fy)] {
        let (px, py) = (x0 as isize + dx, y0 as isize + dy);
        if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
            canvas[py as usize * w + px as usize] += value * wgt;
        }
    }
}

/// One dendrite of an ice crystal: a slightly wandering stroke that sprouts side branches at
/// about +-60 degrees (hexagonal ice), which sprout their own, fading towards the tips.
#[allow(clippy::too_many_arguments)]
fn grow_crystal(
    canvas: &mut [f32],
    w: usize,
    h: usize,
    (mut x, mut y): (f32, f32),
    mut angle: f32,
    length: f32,
    bright: f32,
    depth: u32,
    rng: &mut ChaCha8Rng,
) {
    const STEP: f32 = 0.5;
    let mut t = 0.0;
    let mut next_branch = rng.gen_range(3.0..8.0);
    while t < length {
        splat(canvas, w, h, x, y, STEP * bright * (1.0 - 0.6 * t / length));
        x += STEP * angle.cos();
        y += STEP * angle.sin();
        angle += rng.gen_range(-0.04..0.04);
        t += STEP;
        if depth < 2 && t >= next_branch {
            let side = if rng.gen::<bool>() { 1.0 } else { -1.0 };
            let turn = side * (PI / 3.0 + rng.gen_range(-0.15..0.15));
            let sub = (length - t) * rng.gen_range(0.3..0.6);
            grow_crystal(canvas, w, h, (x, y), angle + turn, sub, bright * 0.8, depth + 1, rng);
            next_branch = t + rng.gen_range(3.0..8.0) * (depth + 1) as f32;
        }
    }
}

/// Procedural frost on glass, intensity in [0, 1]: a cloudy plasma backdrop, sharp
/// branching crystal strokes and their soft glow.
fn frost_texture(canvas: &Canvas, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (w, h) = (canvas.w, canvas.h);
    let cloud = plasma_crop(w, h, 1.6, rng);
    let mut strokes = vec![0f32; w * h];
    let area = (w * h) as f32 / (224.0 * 224.0);
    // (count per 224^2, length range, brightness range, starting depth): a few large
    // dendrites and many small crystals that branch once, for the fine frosty grain.
    for (count, length, bright, depth) in [(16.0, 40.0..100.0, 0.5..1.0, 0), (260.0, 3.0..12.0, 0.3..0.8, 1)] {
        for _ in 0..(count * area).round().max(1.0) as usize {
            let start = (rng.gen_range(0.0..w as f32), rng.gen_range(0.0..h as f32));
            let angle = rng.gen_range(0.0..TAU);
            let length = rng.gen_range(length.clone());
            let bright = rng.gen_range(bright.clone());
            grow_crystal(&mut strokes, w, h, start, angle, length, bright, depth, rng);
        }
    }
    for v in &mut strokes {
        *v = v.min(1.0);
    }
    let sharp = gaussian_blur_plane(&strokes, w, 0.6);
    let glow = gaussian_blur_plane(&strokes, w, 3.0);
    (0..w * h).map(|i| (0.08 + 0.35 * cloud[i] + 1.2 * sharp[i] + 1.5 * glow[i]).clamp(0.0, 1.0)).collect()
}

/// `c0 * image + c1 * frost`, the frost bluish white.
pub(crate) fn frost(image: &Image, ctx: &mut Ctx) -> Image {
    const TINT: (f32, f32, f32) = (0.84, 0.92, 1.0);
    let (c0, c1) = FROST[ctx.level];
    let canvas = Canvas::for_image(image);
    let texture = canvas.to_image(&frost_texture(&canvas, &mut ctx.rng));
    map_rgb(image, |p, r, g, b| {
        let t = c1 * texture[p];
        (c0 * r + t * TINT.0, c0 * g + t * TINT.1, c0 * b + t * TINT.2)
    })
}

/// `(x + c * plasma) * max / (max + c)`: a plasma-fractal haze that also flattens contrast.
pub(crate) fn fog(image: &Image, ctx: &mut Ctx) -> Image {
    let (c, decay) = FOG[ctx.level];
    let canvas = Canvas::for_image(image);
    let fog = canvas.to_image(&plasma_crop(canvas.w, canvas.h, decay, &mut ctx.rng));
    let max = image.data.iter().fold(0f32, |m, &v| m.max(v));
    let k = max / (max + c);
    let channels = image.channels;
    let mut out = image.clone();
    for (i, v) in out.data.iter_mut().enumerate() {
        *v = (*v + c * fog[i / channels]) * k;
    }
    out
}

/// Two-pass 3-4 chamfer distance (in pixels, approximately Euclidean) to the nearest
/// `source` pixel.
fn chamfer_distance(source: &[bool], w: usize, h: usize) -> Vec<f32> {
    const FAR: f32 = 1e9;
    let mut d: Vec<f32> = source.iter().map(|&s| if s { 0.0 } else { FAR }).collect();
    let neighbours_fwd = [(-1isize, -1isize, 4.0f32), (0, -1, 3.0), (1, -1, 4.0), (-1, 0, 3.0)];
    for pass in 0..2 {
        let ys: Vec<usize> = if pass == 0 { (0..h).collect() } else { (0..h).rev().collect() };
        let sign = if pass == 0 { 1 } else { -1 };
        for &y in &ys {
            let xs: Vec<usize> = if pass == 0 { (0..w).collect() } else { (0..w).rev().collect() };
            for &x in &xs {
                let mut best = d[y * w + x];
                for &(dx, dy, cost) in &neighbours_fwd {
                    let (nx, ny) = (x as isize + sign * dx, y as isize + sign * dy);
                    if nx >= 0 && ny >= 0 && (nx as usize) < w && (ny as usize) < h {
                        best = best.min(d[ny as usize * w + nx as usize] + cost);
                    }
                }
                d[y * w + x] = best;
            }
        }
    }
    d.into_iter().map(|v| v / 3.0).collect()
}

/// 3x3 mean (cv2.blur), reflected borders.
fn box3(plane: &[f32], w: usize) -> Vec<f32> {
    super::filters::convolve_separable(plane, w, &[1.0f32 / 3.0; 3])
}

/// The liquid spatter's alpha: the reference shades each blob by its (truncated,
/// histogram-equalised, embossed) distance to the blob's edge, giving thick, glossy drops.
fn liquid_alpha(liquid: &[f32], w: usize, h: usize, intensity: f32) -> Vec<f32> {
    let inside = |x: usize, y: usize| liquid[y * w + x] > 0.0;
    // The blob outlines (Canny on the thresholded layer finds exactly these).
    let edges: Vec<bool> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            inside(x, y)
                && [(-1isize, 0isize), (1, 0), (0, -1), (0, 1)].iter().any(|&(dx, dy)| {
                    let (nx, ny) = (x as isize + dx, y as isize + dy);
                    nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h || !inside(nx as usize, ny as usize)
                })
        })
        .collect();
    let dist: Vec<f32> = box3(&chamfer_distance(&edges, w, h).into_iter().map(|d| d.min(20.0)).collect::<Vec<_>>(), w).into_iter().map(|v| v.floor()).collect();
    // Histogram equalisation of the 0..=20 levels onto 0..=255.
    let mut hist = [0usize; 21];
    for &v in &dist {
        hist[v as usize] += 1;
    }
    let mut cdf = [0usize; 21];
    let mut run = 0;
    for (c, &n) in cdf.iter_mut().zip(&hist) {
        run += n;
        *c = run;
    }
    let first = cdf.iter().copied().find(|&c| c > 0).unwrap_or(0);
    let span = (w * h - first).max(1) as f32;
    let equalised: Vec<f32> = dist.iter().map(|&v| ((cdf[v as usize] - first) as f32 * 255.0 / span).round()).collect();
    // Emboss ([[-2,-1,0],[-1,1,1],[0,1,2]]), saturated to 8 bits, then smoothed.
    let emboss: [(isize, isize, f32); 7] = [(-1, -1, -2.0), (0, -1, -1.0), (-1, 0, -1.0), (0, 0, 1.0), (1, 0, 1.0), (0, 1, 1.0), (1, 1, 2.0)];
    let embossed: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            let v: f32 = emboss
                .iter()
                .map(|&(dx, dy, k)| {
                    let (nx, ny) = (super::filters::reflect(x + dx, w), super::filters::reflect(y + dy, h));
                    k * equalised[ny * w + nx]
                })
                .sum();
            v.round().clamp(0.0, 255.0)
        })
        .collect();
    let shade = box3(&embossed, w);
    let m: Vec<f32> = liquid.iter().zip(&shade).map(|(&l, &s)| l * s).collect();
    let max = m.iter().fold(0f32, |a, &b| a.max(b));
    let norm = if max > 0.0 { intensity / max } else { 0.0 };
    m.into_iter().map(|v| v * norm).collect()
}

/// Spatter: pale turquoise liquid drops (severities 1-3) or opaque mud (4-5), from blurred
/// gaussian noise thresholded into blobs.
pub(crate) fn spatter(image: &Image, ctx: &mut Ctx) -> Image {
    let (mean, std, sigma, threshold, strength, mud) = SPATTER[ctx.level];
    let canvas = Canvas::for_image(image);
    let (w, h) = (canvas.w, canvas.h);
    let mut liquid = gaussian_blur_plane(&canvas.normal(mean, std, &mut ctx.rng), w, sigma);
    for v in &mut liquid {
        if *v < threshold {
            *v = 0.0;
        }
    }
    if mud {
        const MUD: (f32, f32, f32) = (63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0);
        let blobs: Vec<f32> = liquid.iter().map(|&v| f32::from(u8::from(v > threshold))).collect();
        let mut m = gaussian_blur_plane(&blobs, w, strength);
        for v in &mut m {
            if *v < 0.8 {
                *v = 0.0;
            }
        }
        let m = canvas.to_image(&m);
        map_rgb(image, |p, r, g, b| {
            let k = m[p];
            (r * (1.0 - k) + MUD.0 * k, g * (1.0 - k) + MUD.1 * k, b * (1.0 - k) + MUD.2 * k)
        })
    } else {
        const WATER: (f32, f32, f32) = (175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0);
        let m = canvas.to_image(&liquid_alpha(&liquid, w, h, strength));
        map_rgb(image, |p, r, g, b| {
            let k = m[p];
            (r + k * WATER.0, g + k * WATER.1, b + k * WATER.2)
        })
    }
}
