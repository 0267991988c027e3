//! Seeded per-sample image transforms with torchvision semantics, and the final
//! normalised (channel, height, width) layout.
//!
//! Seeding: sample `index` in epoch `epoch` draws from [`sample_rng`], ChaCha8 keyed by the run
//! seed on stream `(epoch + 1) * 2^32 + index` (stream `epoch` < 2^32 is the shuffle's, see
//! `epoch_order`). The result depends on (seed, epoch, index) only, not on threads or batches.

use std::fmt;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::jitter::{color_jitter, rotate, ColorJitter};
use crate::data::resample::{Filter, Normalize, Taps};
use crate::data::Image;
use crate::error::{Error, Result};
use crate::options;

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The random stream of one sample (see the module docs).
pub fn sample_rng(seed: u64, epoch: u64, index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((epoch + 1) << 32) | index as u64);
    rng
}

/// A user transform: gets the image and the sample's random stream.
pub type CustomFn = dyn Fn(&Image, &mut ChaCha8Rng) -> Result<Image> + Send + Sync;

#[derive(Clone)]
pub enum Transform {
    /// Shorter side to this size, aspect kept (longer side truncated), like `Resize(int)`.
    ResizeShorter(usize),
    /// To exactly (height, width).
    Resize(usize, usize),
    /// The central size x size square; zero-padded where the image is smaller.
    CenterCrop(usize),
    /// torchvision's `RandomResizedCrop`: area fraction in `scale`, aspect ratio (w/h) drawn
    /// log-uniformly in `ratio`, 10 tries then a central crop; resized to size x size.
    RandomResizedCrop {
        size: usize,
        scale: (f64, f64),
        ratio: (f64, f64),
    },
    /// Mirror left-right with probability p.
    HorizontalFlip(f64),
    /// ITU-R 601-2 luma (as PIL `convert("L")`), repeated to 1 or 3 channels.
    Grayscale(usize),
    /// Gray images repeated to 3 channels, RGB kept (as PIL `convert("RGB")`).
    ToRgb,
    /// torchvision's `ColorJitter`: brightness, contrast, saturation and hue in random order.
    ColorJitter(ColorJitter),
    /// torchvision's `RandomRotation(degrees)`: an angle in [-degrees, degrees], nearest, size kept.
    RandomRotation(f64),
    Custom(Arc<CustomFn>),
}

impl Transform {
    /// torchvision's default area fraction of `RandomResizedCrop`.
    pub const CROP_SCALE: (f64, f64) = (0.08, 1.0);
    /// torchvision's default aspect-ratio range of `RandomResizedCrop`.
    pub const CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);
    /// torchvision's default probability of `RandomHorizontalFlip`.
    pub const FLIP_P: f64 = options::TRANSFORM_FLIP_P.default.unwrap();
    /// Output channels of `Grayscale` when none are given (PIL's `convert("L")`).
    pub const GRAYSCALE_CHANNELS: usize = 1;

    /// `RandomResizedCrop` with torchvision's defaults.
    pub fn random_resized_crop(size: usize) -> Self {
        Transform::RandomResizedCrop { size, scale: Self::CROP_SCALE, ratio: Self::CROP_RATIO }
    }

    fn check(&self, at: usize) -> Result<()> {
        let positive = |name: &str, v: usize| options::TRANSFORM_SIDE.check_as(&format!("transforms[{at}].{name}"), v as f64).map(|_| ());
        let range = |name: &str, (lo, hi): (f64, f64), max: f64| {
            if lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi && hi <= max {
                Ok(())
            } else {
                Err(Error::invalid_option(&format!("transforms[{at}].{name}"), format!("({lo}, {hi})"), format!("needs 0 < min <= max <= {max}")))
            }
        };
        match self {
            Transform::ResizeShorter(s) | Transform::CenterCrop(s) => positive("size", *s),
            Transform::Resize(h, w) => positive("height", *h).and(positive("width", *w)),
            Transform::RandomResizedCrop { size, scale, ratio } => {
                positive("size", *size).and(range("scale", *scale, 1.0)).and(range("ratio", *ratio, f64::MAX))
            }
            Transform::HorizontalFlip(p) => options::TRANSFORM_FLIP_P.check_as(&format!("transforms[{at}].p"), *p).map(|_| ()),
            Transform::Grayscale(c) => {
                let option = format!("transforms[{at}].channels");
                options::GRAYSCALE_CHANNELS.check_as(&option, *c as f64)?;
                if *c == 2 {
                    return Err(Error::invalid_option(&option, c, "must be 1 or 3"));
                }
                Ok(())
            }
            Transform::ColorJitter(j) => {
                let named = |field: &str| format!("transforms[{at}].{field}");
                options::TRANSFORM_JITTER.check_as(&named("brightness"), j.brightness)?;
                options::TRANSFORM_JITTER.check_as(&named("contrast"), j.contrast)?;
                options::TRANSFORM_JITTER.check_as(&named("saturation"), j.saturation)?;
                options::TRANSFORM_HUE.check_as(&named("hue"), j.hue).map(|_| ())
            }
            Transform::RandomRotation(d) => options::TRANSFORM_DEGREES.check_as(&format!("transforms[{at}].degrees"), *d).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn apply(&self, image: Image, rng: &mut ChaCha8Rng) -> Result<Image> {
        let (w, h) = (image.width, image.height);
        Ok(match self {
            Transform::ResizeShorter(s) => {
                let (nw, nh) = if w <= h { (*s, s * h / w) } else { (s * w / h, *s) };
                resize_region(&image, (0, 0, w, h), nw.max(1), nh.max(1))
            }
            Transform::Resize(nh, nw) => resize_region(&image, (0, 0, w, h), *nw, *nh),
            Transform::CenterCrop(s) => center_crop(&image, *s),
            Transform::RandomResizedCrop { size, scale, ratio } => {
                let region = random_crop_box(w, h, *scale, *ratio, rng);
                resize_region(&image, region, *size, *size)
            }
            Transform::HorizontalFlip(p) => {
                if rng.gen::<f64>() < *p {
                    flip(image)
                } else {
                    image
                }
            }
            Transform::Grayscale(c) => grayscale(&image, *c),
            Transform::ToRgb if image.channels == 1 => grayscale(&image, 3),
            Transform::ToRgb => image,
            Transform::ColorJitter(j) => color_jitter(image, j, rng),
            Transform::RandomRotation(d) => {
                let angle = if *d > 0.0 { rng.gen_range(-*d..=*d) } else { 0.0 };
                rotate(&image, angle)
            }
            Transform::Custom(f) => {
                let out = f(&image, rng)?;
                Image::new(out.width, out.height, out.channels, out.data)?
            }
        })
    }
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transform::ResizeShorter(s) => write!(f, "ResizeShorter({s})"),
            Transform::Resize(h, w) => write!(f, "Resize({h}, {w})"),
            Transform::CenterCrop(s) => write!(f, "CenterCrop({s})"),
            Transform::RandomResizedCrop { size, scale, ratio } => {
                write!(f, "RandomResizedCrop {{ size: {size}, scale: {scale:?}, ratio: {ratio:?} }}")
            }
            Transform::HorizontalFlip(p) => write!(f, "HorizontalFlip({p})"),
            Transform::Grayscale(c) => write!(f, "Grayscale({c})"),
            Transform::ToRgb => write!(f, "ToRgb"),
            Transform::ColorJitter(j) => write!(f, "{j:?}"),
            Transform::RandomRotation(d) => write!(f, "RandomRotation({d})"),
            Transform::Custom(_) => write!(f, "Custom(..)"),
        }
    }
}

/// Transforms in order, then (image - mean) / std per channel into (C, H, W).
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    transforms: Vec<Transform>,
    normalize: Option<(Vec<f32>, Vec<f32>)>,
}

impl Pipeline {
    pub fn new(transforms: Vec<Transform>, normalize: Option<(Vec<f32>, Vec<f32>)>) -> Result<Self> {
        for (i, t) in transforms.iter().enumerate() {
            t.check(i)?;
        }
        if let Some((mean, std)) = &normalize {
            if mean.len() != std.len() || !(mean.len() == 1 || mean.len() == 3) {
                return Err(Error::invalid_option("normalize", format!("mean {mean:?} std {std:?}"), "needs 1 or 3 means and as many stds"));
            }
            if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                return Err(Error::invalid_option("std", s, "every std must be > 0"));
            }
        }
        Ok(Self { transforms, normalize })
    }

    /// Training preset: random-resized-crop to `size`, flip, ImageNet normalisation.
    pub fn imagenet_train(size: usize) -> Result<Self> {
        let transforms = vec![Transform::random_resized_crop(size), Transform::HorizontalFlip(0.5)];
        Self::new(transforms, Some((IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec())))
    }

    /// Evaluation preset: shorter side to size * 256 / 224, central crop, ImageNet normalisation.
    pub fn imagenet_eval(size: usize) -> Result<Self> {
        let transforms = vec![Transform::ResizeShorter(size * 256 / 224), Transform::CenterCrop(size)];
        Self::new(transforms, Some((IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec())))
    }

    pub fn transforms(&self) -> &[Transform] {
        &self.transforms
    }

    pub fn apply(&self, mut image: Image, rng: &mut ChaCha8Rng) -> Result<Image> {
        for t in &self.transforms {
            image = t.apply(image, rng)?;
        }
        Ok(image)
    }

    /// (C, H, W) copy of `image`, normalised when the pipeline has a mean and std.
    pub fn to_chw_normalized(&self, image: &Image) -> Result<Vec<f32>> {
        let mut out = image.to_chw();
        if let Some((mean, std)) = &self.normalize {
            if mean.len() != image.channels {
                return Err(Error::invalid_data(format!(
                    "normalize has {} means but the image has {} channels (add Grayscale(3) or use {} means)",
                    mean.len(),
                    image.channels,
                    image.channels
                )));
            }
            let plane = image.width * image.height;
            for (c, chunk) in out.chunks_exact_mut(plane).enumerate() {
                let (m, s) = (mean[c], std[c]);
                chunk.iter_mut().for_each(|v| *v = (*v - m) / s);
            }
        }
        Ok(out)
    }
}

/// torchvision `RandomResizedCrop.get_params`, as (x, y, width, height).
fn random_crop_box(w: usize, h: usize, scale: (f64, f64), ratio: (f64, f64), rng: &mut ChaCha8Rng) -> (usize, usize, usize, usize) {
    let area = (w * h) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| lo + (hi - lo) * rng.gen::<f64>();
    for _ in 0..10 {
        let target = area * uniform(rng, scale.0, scale.1);
        let aspect = uniform(rng, lr0, lr1).exp();
        let cw = (target * aspect).sqrt().round_ties_even() as usize;
        let ch = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let y = rng.gen_range(0..=h - ch);
            let x = rng.gen_range(0..=w - cw);
            return (x, y, cw, ch);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < ratio.0 {
        (w, ((w as f64 / ratio.0).round_ties_even() as usize).clamp(1, h))
    } else if in_ratio > ratio.1 {
        (((h as f64 * ratio.1).round_ties_even() as usize).clamp(1, w), h)
    } else {
        (w, h)
    };
    ((w - cw) / 2, (h - ch) / 2, cw, ch)
}

fn center_crop(image: &Image, size: usize) -> Image {
    let offset = |len: usize| -> isize {
        if len >= size {
            ((len - size) as f64 / 2.0).round_ties_even() as isize
        } else {
            -(((size - len) / 2) as isize)
        }
    };
    let (ox, oy, c) = (offset(image.width), offset(image.height), image.channels);
    let mut out = Image::filled(size, size, c, 0.0);
    for y in 0..size {
        let sy = y as isize + oy;
        if sy < 0 || sy >= image.height as isize {
            continue;
        }
        let x0 = (-ox).max(0) as usize;
        let x1 = ((image.width as isize - ox).min(size as isize)).max(0) as usize;
        if x0 >= x1 {
            continue;
        }
        let src = image.index((x0 as isize + ox) as usize, sy as usize, 0);
        let dst = out.index(x0, y, 0);
        out.data[dst..dst + (x1 - x0) * c].copy_from_slice(&image.data[src..src + (x1 - x0) * c]);
    }
    out
}

fn flip(mut image: Image) -> Image {
    let (w, c) = (image.width, image.channels);
    for row in image.data.chunks_exact_mut(w * c) {
        for x in 0..w / 2 {
            for k in 0..c {
                row.swap(x * c + k, (w - 1 - x) * c + k);
            }
        }
    }
    image
}

fn grayscale(image: &Image, out_channels: usize) -> Image {
    let luma: Vec<f32> =
        if image.channels == 1 { image.data.clone() } else { image.data.chunks_exact(3).map(|p| p[0] * 0.299 + p[1] * 0.587 + p[2] * 0.114).collect() };
    let data = if out_channels == 1 { luma } else { luma.iter().flat_map(|&v| [v; 3]).collect() };
    Image { width: image.width, height: image.height, channels: out_channels, data }
}

/// Resizes the region (x, y, width, height) of `image` to out_w x out_h with PIL's bilinear
/// filter (antialiased when shrinking, see `Taps::resize`), separably: horizontal pass, then
/// vertical, on the interleaved pixels (the corruptions resize planes, vertical pass first).
pub fn resize_region(image: &Image, region: (usize, usize, usize, usize), out_w: usize, out_h: usize) -> Image {
    let (rx, ry, rw, rh) = region;
    let c = image.channels;
    let tx = Taps::resize(rw, out_w, Filter::Triangle, Normalize::F64);
    let mut mid = vec![0f32; out_w * rh * c];
    for y in 0..rh {
        let row = &image.data[image.index(rx, ry + y, 0)..image.index(rx, ry + y, 0) + rw * c];
        let dst = &mut mid[y * out_w * c..(y + 1) * out_w * c];
        for (o, taps) in tx.rows.iter().enumerate() {
            for k in 0..c {
                let mut acc = 0f32;
                for &(j, wgt) in taps {
                    acc += row[j as usize * c + k] * wgt;
                }
                dst[o * c + k] = acc;
            }
        }
    }
    let ty = Taps::resize(rh, out_h, Filter::Triangle, Normalize::F64);
    let stride = out_w * c;
    let mut data = vec![0f32; out_h * stride];
    for (o, taps) in ty.rows.iter().enumerate() {
        let dst = &mut data[o * stride..(o + 1) * stride];
        for &(j, wgt) in taps {
            let src = &mid[j as usize * stride..(j as usize + 1) * stride];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s * wgt);
        }
    }
    Image { width: out_w, height: out_h, channels: c, data }
}
