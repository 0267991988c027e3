//! Procedural colour textures, the stand-in for the BSDS500 photo crops MNIST-M blends its
//! digits over. No files: every texture is drawn from the random source it is given, one
//! family per image (fractal plasma, waves, Voronoi cells, marble), each with its own
//! random palette, scale and orientation, so a batch of backgrounds is varied and colourful.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::data::Image;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextureKind {
    /// Three independent fractal (fBm) value-noise fields, one per channel: colour clouds.
    Plasma,
    /// Sine stripes at a random angle and frequency (1-3 periods across), bent by fractal
    /// noise, through a 2-3 colour palette; sometimes a weaker second wave crosses the first.
    Waves,
    /// Voronoi cells of random colours with darker borders: tiles, pebbles, mosaics.
    Cells,
    /// A turbulent sine (veins) through a two-colour palette over fractal shading.
    Marble,
}

impl TextureKind {
    pub const ALL: [TextureKind; 4] = [TextureKind::Plasma, TextureKind::Waves, TextureKind::Cells, TextureKind::Marble];

    pub fn name(self) -> &'static str {
        match self {
            TextureKind::Plasma => "plasma",
            TextureKind::Waves => "waves",
            TextureKind::Cells => "cells",
            TextureKind::Marble => "marble",
        }
    }
}

impl std::fmt::Display for TextureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A `width x height` RGB texture in [0, 1] of a family chosen by `rng`.
pub(crate) fn generate(width: usize, height: usize, rng: &mut ChaCha8Rng) -> (TextureKind, Image) {
    let kind = TextureKind::ALL[rng.gen_range(0..TextureKind::ALL.len())];
    let data = match kind {
        TextureKind::Plasma => plasma(width, height, rng),
        TextureKind::Waves => waves(width, height, rng),
        TextureKind::Cells => cells(width, height, rng),
        TextureKind::Marble => marble(width, height, rng),
    };
    (kind, Image { width, height, channels: 3, data })
}

/// A vivid random colour: any hue, saturation in [0.35, 1], value in [0.15, 1].
pub(crate) fn random_colour(rng: &mut ChaCha8Rng) -> [f32; 3] {
    hsv_to_rgb(rng.gen(), rng.gen_range(0.35..1.0), rng.gen_range(0.15..1.0))
}

/// HSV in [0, 1]^3 to RGB. (The corruptions' `filters::hsv_to_rgb` is private to their module.)
pub(crate) fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = (h * 6.0).rem_euclid(6.0);
    let f = h6 - h6.floor();
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match h6 as u8 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Fractal value noise: `octaves` layers of smoothly interpolated random lattices, the first
/// with `cells` lattice cells across the short side, each next one twice as fine and
/// `persistence` times as strong. Stretched to [0, 1].
pub(crate) fn fbm(width: usize, height: usize, cells: f32, octaves: usize, persistence: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = vec![0f32; width * height];
    let side = width.min(height) as f32;
    let (mut freq, mut amp) = (cells / side, 1.0f32);
    for _ in 0..octaves {
        // Lattice big enough to cover the image from a random sub-cell offset.
        let (gw, gh) = ((width as f32 * freq).ceil() as usize + 2, (height as f32 * freq).ceil() as usize + 2);
        let lattice: Vec<f32> = (0..gw * gh).map(|_| rng.gen::<f32>()).collect();
        let (ox, oy) = (rng.gen::<f32>() * 0.999, rng.gen::<f32>() * 0.999);
        let axis = |n: usize, off: f32| -> Vec<(usize, f32)> {
            (0..n)
                .map(|i| {
                    let u = i as f32 * freq + off;
                    let i0 = u.floor();
                    let t = u - i0;
                    (i0 as usize, t * t * (3.0 - 2.0 * t))
                })
                .collect()
        };
        let (xs, ys) = (axis(width, ox), axis(height, oy));
        for (y, &(y0, ty)) in ys.iter().enumerate() {
            let (r0, r1) = (&lattice[y0 * gw..(y0 + 1) * gw], &lattice[(y0 + 1) * gw..(y0 + 2) * gw]);
            let row = &mut out[y * width..(y + 1) * width];
            for (o, &(x0, tx)) in row.iter_mut().zip(&xs) {
                let top = r0[x0] + (r0[x0 + 1] - r0[x0]) * tx;
                let bottom = r1[x0] + (r1[x0 + 1] - r1[x0]) * tx;
                *o += amp * (top + (bottom - top) * ty);
            }
        }
        freq *= 2.0;
        amp *= persistence;
    }
    stretch(&mut out);
    out
}

/// Maps the values linearly onto [0, 1] (a constant field becomes 0.5).
fn stretch(values: &mut [f32]) {
    let (lo, hi) = values.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = hi - lo;
    for v in values {
        *v = if span > 1e-6 { (*v - lo) / span } else { 0.5 };
    }
}

/// Colour at `t` in [0, 1] along a piecewise-linear palette.
fn palette_at(palette: &[[f32; 3]], t: f32) -> [f32; 3] {
    let pos = t.clamp(0.0, 1.0) * (palette.len() - 1) as f32;
    let i = (pos as usize).min(palette.len() - 2);
    let f = pos - i as f32;
    let (a, b) = (palette[i], palette[i + 1]);
    [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}

fn through_palette(field: &[f32], palette: &[[f32; 3]]) -> Vec<f32> {
    field.iter().flat_map(|&t| palette_at(palette, t)).collect()
}

fn plasma(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let cells = rng.gen_range(1.5..4.0);
    let persistence = rng.gen_range(0.4..0.65);
    let planes: Vec<Vec<f32>> = (0..3).map(|_| fbm(w, h, cells, 4, persistence, rng)).collect();
    (0..w * h).flat_map(|p| [planes[0][p], planes[1][p], planes[2][p]]).collect()
}

/// A unit direction at a uniformly random angle.
fn direction(rng: &mut ChaCha8Rng) -> (f32, f32) {
    let a = rng.gen::<f32>() * std::f32::consts::TAU;
    (a.cos(), a.sin())
}

fn waves(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let side = w.min(h) as f32;
    let tau = std::f32::consts::TAU;
    let layers = if rng.gen_bool(0.3) { 2 } else { 1 };
    let mut field = vec![0f32; w * h];
    for layer in 0..layers {
        // Half-periods wider than a stroke (>= ~4.5 px at 28 px), so stripes don't mimic strokes;
        // a crossing wave is weaker.
        let (dx, dy) = direction(rng);
        let cycles = rng.gen_range(1.0..3.0);
        let strength = if layer == 0 { 1.0 } else { 0.5 };
        let phase = rng.gen::<f32>() * tau;
        let bend = rng.gen_range(0.0..3.0);
        let warp = fbm(w, h, 2.0, 2, 0.5, rng);
        for y in 0..h {
            for x in 0..w {
                let u = (x as f32 * dx + y as f32 * dy) / side;
                let p = y * w + x;
                field[p] += strength * (tau * cycles * u + phase + bend * warp[p]).sin();
            }
        }
    }
    stretch(&mut field);
    let n = rng.gen_range(2..=3);
    let palette: Vec<[f32; 3]> = (0..n).map(|_| random_colour(rng)).collect();
    through_palette(&field, &palette)
}

fn cells(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let n = rng.gen_range(5..=14);
    let sites: Vec<(f32, f32, [f32; 3])> = (0..n).map(|_| (rng.gen::<f32>() * w as f32, rng.gen::<f32>() * h as f32, random_colour(rng))).collect();
    let border = rng.gen_range(0.2..0.5);
    let shade = fbm(w, h, 3.0, 2, 0.5, rng);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let (mut d1, mut d2, mut nearest) = (f32::MAX, f32::MAX, 0);
            for (i, &(sx, sy, _)) in sites.iter().enumerate() {
                let d = ((px - sx).powi(2) + (py - sy).powi(2)).sqrt();
                if d < d1 {
                    (d2, d1, nearest) = (d1, d, i);
                } else if d < d2 {
                    d2 = d;
                }
            }
            // Pixels within about a pixel of the bisector between two sites form the border.
            let edge = ((d2 - d1) / 1.5).min(1.0);
            let k = (1.0 - border * (1.0 - edge)) * (0.8 + 0.2 * shade[y * w + x]);
            let c = sites[nearest].2;
            out.extend_from_slice(&[c[0] * k, c[1] * k, c[2] * k]);
        }
    }
    out
}

fn marble(w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let side = w.min(h) as f32;
    let (dx, dy) = direction(rng);
    let cycles = rng.gen_range(1.0..3.0);
    let turbulence = rng.gen_range(2.5..5.0);
    let noise = fbm(w, h, 2.0, 3, 0.5, rng);
    let base = random_colour(rng);
    let vein = random_colour(rng);
    let sharpness = rng.gen_range(0.5..1.0);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let u = (x as f32 * dx + y as f32 * dy) / side;
            let s = (std::f32::consts::TAU * cycles * u + turbulence * noise[p]).sin();
            let t = (1.0 - s.abs()).powf(1.0 / sharpness); // thin bright ridges where s crosses 0
            let shade = 0.75 + 0.25 * noise[p];
            for c in 0..3 {
                out.push((base[c] + (vein[c] - base[c]) * t) * shade);
            }
        }
    }
    out
}
