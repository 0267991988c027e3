//! AugMix (Hendrycks et al., ICLR 2020), as the reference code (google-research/augmix):
//! `width` chains of 1-3 random ops each are applied to copies of the image, the chains are
//! mixed with Dirichlet weights, and the mix is blended with the original:
//!   out = (1 - m) * image + m * sum_i w_i * chain_i(image),  w ~ Dir(alpha), m ~ Beta(alpha, alpha)
//! The reference mixes after normalising; normalisation is affine per channel, so mixing the
//! [0, 1] pixels first and normalising later gives the same numbers.
//!
//! The ops are the reference's list without those that overlap the ImageNet-C corruptions
//! (no contrast, colour, brightness, sharpness), so corruption results stay out-of-distribution.
//! Ops defined on 8-bit levels (equalize, posterize, solarize) work on the pixels rounded to
//! 8 bits; the geometric ops are PIL's affine maps with bilinear sampling and black outside.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, Gamma};

use super::corruptions::filters::{bilinear, map_planes};
use super::Image;
use crate::error::{check_option, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugOp {
    AutoContrast,
    Equalize,
    Posterize,
    Rotate,
    Solarize,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
}

impl AugOp {
    /// The reference's `augmentations` list, in its order (the op is drawn uniformly from it).
    pub const ALL: [AugOp; 9] = [
        AugOp::AutoContrast,
        AugOp::Equalize,
        AugOp::Posterize,
        AugOp::Rotate,
        AugOp::Solarize,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
    ];
}

/// AugMix settings; defaults are the reference's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AugMixConfig {
    /// Number of chains mixed.
    pub width: usize,
    /// Ops per chain; 0 or less draws it uniformly from 1..=3 for each chain.
    pub depth: i32,
    /// Op strength on the reference's 1..=10 scale.
    pub severity: u32,
    /// Dirichlet concentration of the chain weights and both Beta parameters of m.
    pub alpha: f64,
}

impl Default for AugMixConfig {
    fn default() -> Self {
        Self { width: 3, depth: -1, severity: 3, alpha: 1.0 }
    }
}

impl AugMixConfig {
    pub fn validate(&self) -> Result<()> {
        if !(1..=16).contains(&self.width) {
            return Err(Error::invalid_option("augmix.width", self.width, "must be in 1..=16"));
        }
        if self.depth > 16 {
            return Err(Error::invalid_option("augmix.depth", self.depth, "must be <= 16 (<= 0: random 1..=3)"));
        }
        if !(1..=10).contains(&self.severity) {
            return Err(Error::invalid_option("augmix.severity", self.severity, "must be in 1..=10"));
        }
        check_option("augmix.alpha", self.alpha, self.alpha > 0.0, "must be a finite number > 0")
    }

    /// AugMix of `image` with these settings. Same image and random state, same pixels; the
    /// output has the input's size and channels and values in [0, 1].
    pub fn apply(&self, image: &Image, rng: &mut ChaCha8Rng) -> Result<Image> {
        self.validate()?;
        let (w, h, c) = (image.width, image.height, image.channels);
        if !(c == 1 || c == 3) || w == 0 || h == 0 || image.data.len() != w * h * c {
            return Err(Error::invalid_data(format!(
                "image {w}x{h}x{c} with {} values: expected 1 or 3 channels and width*height*channels values",
                image.data.len()
            )));
        }
        let image = image.clone().clamp01();
        // Draw order as the reference: chain weights, m, then each chain's depth and ops.
        let weights = dirichlet(self.alpha, self.width, rng)?;
        let m = Beta::new(self.alpha, self.alpha).map_err(|e| alpha_error(self.alpha, e))?.sample(rng) as f32;
        let mut mix = vec![0f32; image.data.len()];
        for &weight in &weights {
            let depth = if self.depth > 0 { self.depth as usize } else { rng.gen_range(1..=3) };
            let mut chain = image.clone();
            for _ in 0..depth {
                let op = *AugOp::ALL.choose(rng).expect("the op list is not empty");
                chain = apply_op(&chain, op, self.severity, rng);
            }
            for (acc, v) in mix.iter_mut().zip(&chain.data) {
                *acc += weight as f32 * v;
            }
        }
        let data = image.data.iter().zip(&mix).map(|(&x, &y)| (1.0 - m) * x + m * y).collect();
        Ok(Image { data, ..image }.clamp01())
    }
}

/// AugMix with the reference's settings (3 chains of random depth 1..=3, severity 3, alpha 1).
pub fn augmix(image: &Image, rng: &mut ChaCha8Rng) -> Result<Image> {
    AugMixConfig::default().apply(image, rng)
}

/// AugMix (reference settings) as a pipeline step, drawing from the sample's own stream.
pub fn augmix_transform() -> crate::data::Transform {
    crate::data::Transform::Custom(std::sync::Arc::new(augmix))
}

/// Applies one op, drawing its strength (and sign) like the reference: a level uniform in
/// [0.1, severity), scaled to the op's maximum at level 10.
pub fn apply_op(image: &Image, op: AugOp, severity: u32, rng: &mut ChaCha8Rng) -> Image {
    // Fraction of the op's maximum; drawn only by the ops that have a strength.
    let level = |rng: &mut ChaCha8Rng| (rng.gen_range(0.1..f64::from(severity.max(1))) / 10.0) as f32;
    match op {
        AugOp::AutoContrast => map_planes(image, autocontrast),
        AugOp::Equalize => map_planes(image, equalize),
        AugOp::Posterize => {
            let bits = 4 - (level(rng) * 4.0) as u32;
            map_planes(image, |p| posterize(p, bits))
        }
        AugOp::Solarize => {
            let threshold = 256 - (level(rng) * 256.0) as u32;
            map_planes(image, |p| solarize(p, threshold))
        }
        AugOp::Rotate => {
            let degrees = signed((level(rng) * 30.0).trunc(), rng);
            affine(image, rotation(degrees, image.width, image.height))
        }
        AugOp::ShearX => {
            let s = signed(level(rng) * 0.3, rng);
            affine(image, [1.0, s, 0.0, 0.0, 1.0, 0.0])
        }
        AugOp::ShearY => {
            let s = signed(level(rng) * 0.3, rng);
            affine(image, [1.0, 0.0, 0.0, s, 1.0, 0.0])
        }
        AugOp::TranslateX => {
            let t = signed((level(rng) * image.width as f32 / 3.0).trunc(), rng);
            affine(image, [1.0, 0.0, t, 0.0, 1.0, 0.0])
        }
        AugOp::TranslateY => {
            let t = signed((level(rng) * image.height as f32 / 3.0).trunc(), rng);
            affine(image, [1.0, 0.0, 0.0, 0.0, 1.0, t])
        }
    }
}

/// `value` with a random sign (the reference's `if uniform() > 0.5: v = -v`).
fn signed(value: f32, rng: &mut ChaCha8Rng) -> f32 {
    if rng.gen::<f64>() > 0.5 {
        -value
    } else {
        value
    }
}

fn alpha_error(alpha: f64, e: impl std::fmt::Display) -> Error {
    Error::invalid_option("augmix.alpha", alpha, e.to_string())
}

/// Dirichlet(alpha, ..., alpha) as normalised Gamma(alpha, 1) draws (also defined for one
/// component, unlike `rand_distr::Dirichlet`).
fn dirichlet(alpha: f64, n: usize, rng: &mut ChaCha8Rng) -> Result<Vec<f64>> {
    let gamma = Gamma::new(alpha, 1.0).map_err(|e| alpha_error(alpha, e))?;
    let draws: Vec<f64> = (0..n).map(|_| gamma.sample(rng)).collect();
    let total: f64 = draws.iter().sum();
    if total > 0.0 {
        Ok(draws.iter().map(|d| d / total).collect())
    } else {
        // Every draw underflowed (tiny alpha): the limit is one chain taking all the weight.
        Ok((0..n).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect())
    }
}

/// The 8-bit level of a [0, 1] value (as `Image::to_u8`).
fn level8(v: f32) -> usize {
    (v.clamp(0.0, 1.0) * 255.0).round() as usize
}

/// Stretches the plane to the full range (PIL `ImageOps.autocontrast`, no cutoff); a flat
/// plane is left as it is.
fn autocontrast(plane: &[f32]) -> Vec<f32> {
    let (lo, hi) = plane.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi - lo < 1.0 / 255.0 {
        return plane.to_vec();
    }
    plane.iter().map(|&v| (v - lo) / (hi - lo)).collect()
}

/// Histogram equalisation of the 8-bit levels, PIL `ImageOps.equalize`'s exact table.
fn equalize(plane: &[f32]) -> Vec<f32> {
    let mut hist = [0usize; 256];
    for &v in plane {
        hist[level8(v)] += 1;
    }
    let used: Vec<usize> = hist.iter().copied().filter(|&n| n > 0).collect();
    let step = if used.len() > 1 { (plane.len() - used[used.len() - 1]) / 255 } else { 0 };
    if step == 0 {
        return plane.iter().map(|&v| level8(v) as f32 / 255.0).collect();
    }
    let mut lut = [0f32; 256];
    let mut n = step / 2;
    for (entry, &count) in lut.iter_mut().zip(&hist) {
        *entry = (n / step).min(255) as f32 / 255.0;
        n += count;
    }
    plane.iter().map(|&v| lut[level8(v)]).collect()
}

/// Keeps the top `bits` bits of each 8-bit level.
fn posterize(plane: &[f32], bits: u32) -> Vec<f32> {
    let mask = !((1usize << (8 - bits)) - 1) & 0xff;
    plane.iter().map(|&v| (level8(v) & mask) as f32 / 255.0).collect()
}

/// Inverts every value whose 8-bit level is at least `threshold`.
fn solarize(plane: &[f32], threshold: u32) -> Vec<f32> {
    plane.iter().map(|&v| if level8(v) >= threshold as usize { 1.0 - v } else { v }).collect()
}

/// PIL `Image.rotate(degrees)` about the centre (counter-clockwise on screen), as the inverse
/// map `affine` takes.
fn rotation(degrees: f32, w: usize, h: usize) -> [f32; 6] {
    let (sin, cos) = (-degrees.to_radians()).sin_cos();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (a, b, d, e) = (cos, sin, -sin, cos);
    [a, b, cx - a * cx - b * cy, d, e, cy - d * cx - e * cy]
}

/// PIL `Image.transform(AFFINE, (a, b, c, d, e, f), BILINEAR)`: output pixel centre (x, y)
/// samples the input at (a x + b y + c, d x + e y + f); samples outside the image are 0.
fn affine(image: &Image, [a, b, c, d, e, f]: [f32; 6]) -> Image {
    let (w, h) = (image.width, image.height);
    map_planes(image, |plane| {
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (xc, yc) = (x as f32 + 0.5, y as f32 + 0.5);
                let (xs, ys) = (a * xc + b * yc + c, d * xc + e * yc + f);
                let inside = (0.0..w as f32).contains(&xs) && (0.0..h as f32).contains(&ys);
                // Within the image, one pixel's reflection is PIL's edge clamp.
                out.push(if inside { bilinear(plane, w, h, xs - 0.5, ys - 0.5) } else { 0.0 });
            }
        }
        out
    })
}
