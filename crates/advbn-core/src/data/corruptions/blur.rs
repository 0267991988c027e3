//! Blur corruptions: defocus, glass, motion, zoom, gaussian. Radii and sigmas are given for
//! 224 px and multiplied by `ctx.scale` (see the module docs); zoom factors are relative
//! and need no scaling.

use rand::Rng;

use super::filters::{self, convolve2d, map_planes, motion_blur_plane, zoom_center};
use super::Ctx;
use crate::data::Image;

/// (disk radius, alias-blur sigma).
const DEFOCUS: [(f32, f32); 5] = [(3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)];
/// (gaussian sigma, max displacement, iterations).
const GLASS: [(f32, f32, usize); 5] = [(0.7, 1.0, 2), (0.9, 2.0, 1), (1.0, 2.0, 3), (1.1, 3.0, 2), (1.5, 4.0, 2)];
/// (radius, sigma) of the motion kernel.
const MOTION: [(f32, f32); 5] = [(10.0, 3.0), (15.0, 5.0), (15.0, 8.0), (15.0, 12.0), (20.0, 15.0)];
/// Zoom factors `arange(1, end, step)`.
const ZOOM: [(f32, f32); 5] = [(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)];
const GAUSSIAN_SIGMA: [f32; 5] = [1.0, 2.0, 3.0, 4.0, 6.0];

/// The reference's `disk`: a flat disk of `radius`, antialiased by a small gaussian (3x3
/// for radii up to 8, else 5x5, as cv2.GaussianBlur there), normalised to sum 1.
fn disk_kernel(radius: f32, alias_sigma: f32, alias_radius: usize) -> Vec<f32> {
    let half = radius.ceil() as usize + alias_radius;
    let size = 2 * half + 1;
    let r2 = radius * radius;
    let disk: Vec<f32> = (0..size * size)
        .map(|i| {
            let (x, y) = ((i % size) as f32 - half as f32, (i / size) as f32 - half as f32);
            f32::from(u8::from(x * x + y * y <= r2))
        })
        .collect();
    let g: Vec<f32> = (-(alias_radius as isize)..=alias_radius as isize).map(|x| (-0.5 * (x as f32 / alias_sigma).powi(2)).exp()).collect();
    // Separable alias blur with zeros outside (the array is wide enough to hold it all).
    let conv = |src: &[f32], horizontal: bool| -> Vec<f32> {
        (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as isize, (i / size) as isize);
                g.iter()
                    .enumerate()
                    .map(|(k, &wk)| {
                        let o = k as isize - alias_radius as isize;
                        let (sx, sy) = if horizontal { (x + o, y) } else { (x, y + o) };
                        if (0..size as isize).contains(&sx) && (0..size as isize).contains(&sy) {
                            wk * src[sy as usize * size + sx as usize]
                        } else {
                            0.0
                        }
                    })
                    .sum()
            })
            .collect()
    };
    // Drop negligible weights (alias sigma 0.1 leaves ~1e-22 tails, which only cost time
    // as denormals), then normalise.
    let k: Vec<f32> = conv(&conv(&disk, true), false).into_iter().map(|v| if v < 1e-6 { 0.0 } else { v }).collect();
    let total: f32 = k.iter().sum();
    k.into_iter().map(|v| v / total).collect()
}

pub(crate) fn defocus_blur(image: &Image, ctx: &mut Ctx) -> Image {
    let (radius, alias) = DEFOCUS[ctx.level];
    let kernel = disk_kernel(radius * ctx.scale, alias, if radius <= 8.0 { 1 } else { 2 });
    map_planes(image, |p| convolve2d(p, image.width, &kernel))
}

/// Gaussian blur, then `iterations` passes of local pixel swaps (each pixel, visited from
/// the bottom-right, trades places with a random neighbour at most `delta` away), then
/// another gaussian blur: the reference's loops, in Rust.
pub(crate) fn glass_blur(image: &Image, ctx: &mut Ctx) -> Image {
    let (sigma, delta, iterations) = GLASS[ctx.level];
    let sigma = sigma * ctx.scale;
    // The reference moves pixels up to `delta` px at 224 px, `iterations` times: a random
    // walk whose mean squared displacement grows like `iterations * delta^2`. Scaled below
    // one pixel, moves stay one pixel but happen with probability `(delta * scale)^2` (the
    // draws are made anyway), so the walk's length keeps scaling with the image and the
    // severities stay ordered (the 224 px table has increasing `iterations * delta^2`).
    let delta = delta * ctx.scale;
    let swap_probability = (delta * delta).min(1.0);
    let delta = delta.round().max(1.0) as isize;
    let mut x = filters::gaussian_blur(image, sigma);
    let (w, h, c) = (image.width as isize, image.height as isize, image.channels);
    for _ in 0..iterations {
        for py in (delta + 1..=h - delta).rev() {
            for px in (delta + 1..=w - delta).rev() {
                let dx = ctx.rng.gen_range(-delta..delta);
                let dy = ctx.rng.gen_range(-delta..delta);
                if swap_probability < 1.0 && ctx.rng.gen::<f32>() >= swap_probability {
                    continue;
                }
                // `delta < p <= size - delta` and `-delta <= d < delta` keep both inside.
                let a = ((py * w + px) as usize) * c;
                let b = (((py + dy) * w + px + dx) as usize) * c;
                for ch in 0..c {
                    x.data.swap(a + ch, b + ch);
                }
            }
        }
    }
    filters::gaussian_blur(&x, sigma)
}

/// Line blur at a random angle in [-45, 45) degrees.
pub(crate) fn motion_blur(image: &Image, ctx: &mut Ctx) -> Image {
    let (radius, sigma) = MOTION[ctx.level];
    let angle: f32 = ctx.rng.gen_range(-45.0..45.0);
    map_planes(image, |p| motion_blur_plane(p, image.width, radius * ctx.scale, sigma * ctx.scale, angle))
}

/// Mean of the image and its centre zooms by each factor in `arange(1, end, step)`.
pub(crate) fn zoom_blur(image: &Image, ctx: &mut Ctx) -> Image {
    let (end, step) = ZOOM[ctx.level];
    let factors: Vec<f32> = (0..).map(|k| 1.0 + k as f32 * step).take_while(|&z| z < end - 1e-4).collect();
    let (w, h) = (image.width, image.height);
    map_planes(image, |p| {
        let mut acc = p.to_vec();
        for &z in &factors {
            for (a, v) in acc.iter_mut().zip(zoom_center(p, w, h, z)) {
                *a += v;
            }
        }
        let n = (factors.len() + 1) as f32;
        acc.into_iter().map(|v| v / n).collect()
    })
}

pub(crate) fn gaussian_blur(image: &Image, ctx: &mut Ctx) -> Image {
    filters::gaussian_blur(image, GAUSSIAN_SIGMA[ctx.level] * ctx.scale)
}
