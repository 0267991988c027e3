//! Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper), speckle.
//! Independent per value (each channel of each pixel), as the reference.

use rand::Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};

use super::Ctx;
use crate::data::Image;

const GAUSSIAN_SIGMA: [f32; 5] = [0.08, 0.12, 0.18, 0.26, 0.38];
const SHOT_C: [f64; 5] = [60.0, 25.0, 12.0, 5.0, 3.0];
const IMPULSE_AMOUNT: [f32; 5] = [0.03, 0.06, 0.09, 0.17, 0.27];
const SPECKLE_SIGMA: [f32; 5] = [0.15, 0.2, 0.35, 0.45, 0.6];

/// `x + N(0, sigma)`.
pub(crate) fn gaussian_noise(image: &Image, ctx: &mut Ctx) -> Image {
    let sigma = GAUSSIAN_SIGMA[ctx.level];
    let mut out = image.clone();
    for v in &mut out.data {
        let n: f32 = ctx.rng.sample(StandardNormal);
        *v += sigma * n;
    }
    out
}

/// `Poisson(x * c) / c`: photon noise, relatively stronger in dark regions.
pub(crate) fn shot_noise(image: &Image, ctx: &mut Ctx) -> Image {
    let c = SHOT_C[ctx.level];
    let mut out = image.clone();
    for v in &mut out.data {
        let lambda = f64::from(*v) * c;
        // Poisson(0) is 0; rand_distr wants lambda > 0. Draw nothing for it: the stream
        // position then depends on the image, which is fine (same image, same bits).
        *v = if lambda > 0.0 {
            let k: f64 = Poisson::new(lambda).expect("finite positive lambda").sample(&mut ctx.rng);
            (k / c) as f32
        } else {
            0.0
        };
    }
    out
}

/// Salt and pepper (skimage `random_noise(mode="s&p")`): each value is replaced with
/// probability `amount`, by 1 or 0 with equal odds. With one seed, the values hit at a
/// lower severity are also hit at every higher one (the uniforms are shared).
pub(crate) fn impulse_noise(image: &Image, ctx: &mut Ctx) -> Image {
    let amount = IMPULSE_AMOUNT[ctx.level];
    let mut out = image.clone();
    for v in &mut out.data {
        let hit: f32 = ctx.rng.gen();
        let salt: bool = ctx.rng.gen();
        if hit < amount {
            *v = if salt { 1.0 } else { 0.0 };
        }
    }
    out
}

/// `x + x * N(0, sigma)`: multiplicative noise.
pub(crate) fn speckle_noise(image: &Image, ctx: &mut Ctx) -> Image {
    let sigma = SPECKLE_SIGMA[ctx.level];
    let mut out = image.clone();
    for v in &mut out.data {
        let n: f32 = ctx.rng.sample(StandardNormal);
        *v += *v * sigma * n;
    }
    out
}
