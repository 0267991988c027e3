//! An in-memory image dataset from typed arrays (NCHW or NHWC, uint8 or float32).

use candle_core::{Device, Tensor};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augmix::augmix;
use super::image::Image;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLayout {
    Nchw,
    Nhwc,
}

/// Pixels as given by the caller. uint8 is scaled to [0, 1].
pub enum PixelData<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

/// Validated images, stored once as float32 NCHW (normalised), and their labels.
pub struct ArrayDataset {
    images: Vec<f32>,
    /// Per-channel normalisation applied at construction (undone for image-space augmentation).
    mean: Vec<f64>,
    std: Vec<f64>,
    labels: Vec<u32>,
    channels: usize,
    height: usize,
    width: usize,
    num_classes: usize,
}

impl ArrayDataset {
    /// `shape` is [N, C, H, W] for NCHW or [N, H, W, C] for NHWC.
    pub fn new(
        pixels: PixelData,
        labels: &[i32],
        shape: &[usize],
        layout: ImageLayout,
        num_classes: Option<usize>,
        normalize: Option<(&[f64], &[f64])>,
    ) -> Result<Self> {
        let &[n, d1, d2, d3] = shape else {
            return Err(Error::invalid_option("shape", format!("{shape:?}"), "must have 4 dimensions"));
        };
        let (c, h, w) = match layout {
            ImageLayout::Nchw => (d1, d2, d3),
            ImageLayout::Nhwc => (d3, d1, d2),
        };
        if n == 0 || c == 0 || h == 0 || w == 0 {
            return Err(Error::invalid_option("shape", format!("{shape:?}"), "every dimension must be >= 1"));
        }
        let expected = n.checked_mul(c * h * w).ok_or_else(|| Error::invalid_option("shape", format!("{shape:?}"), "too many elements"))?;
        let given = match pixels {
            PixelData::U8(d) => d.len(),
            PixelData::F32(d) => d.len(),
        };
        if given != expected {
            return Err(Error::invalid_data(format!("images: shape {shape:?} needs {expected} values, the array has {given}")));
        }
        if labels.len() != n {
            return Err(Error::invalid_data(format!("labels: {} labels for {n} images", labels.len())));
        }
        if let Some(i) = labels.iter().position(|&l| l < 0) {
            return Err(Error::invalid_data(format!("labels[{i}] = {} is negative", labels[i])));
        }
        let max_label = labels.iter().copied().max().unwrap_or(0) as usize;
        let num_classes = num_classes.unwrap_or(max_label + 1);
        if let Some(i) = labels.iter().position(|&l| l as usize >= num_classes) {
            return Err(Error::invalid_data(format!(
                "labels[{i}] = {} is out of range for {num_classes} classes (labels must be integers from 0 to {})",
                labels[i],
                num_classes.saturating_sub(1)
            )));
        }
        let (mean, std) = match normalize {
            None => (vec![0.0; c], vec![1.0; c]),
            Some((mean, std)) => {
                if mean.len() != c || std.len() != c {
                    return Err(Error::invalid_option(
                        "normalize",
                        format!("mean {mean:?} std {std:?}"),
                        format!("needs one mean and one std per channel ({c})"),
                    ));
                }
                if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                    return Err(Error::invalid_option("std", s, "every std must be > 0"));
                }
                (mean.to_vec(), std.to_vec())
            }
        };
        let value = |i: usize| -> f32 {
            match pixels {
                PixelData::U8(d) => d[i] as f32 / 255.0,
                PixelData::F32(d) => d[i],
            }
        };
        if let PixelData::F32(d) = pixels {
            if let Some(i) = d.iter().position(|v| !v.is_finite()) {
                return Err(Error::invalid_data(format!("images: value {} at index {i} (image {}) is not finite", d[i], i / (c * h * w))));
            }
        }
        let mut images = vec![0f32; expected];
        let plane = h * w;
        for img in 0..n {
            for ch in 0..c {
                let (m, s) = (mean[ch] as f32, std[ch] as f32);
                let dst = &mut images[(img * c + ch) * plane..(img * c + ch + 1) * plane];
                for (p, out) in dst.iter_mut().enumerate() {
                    let src = match layout {
                        ImageLayout::Nchw => (img * c + ch) * plane + p,
                        ImageLayout::Nhwc => (img * plane + p) * c + ch,
                    };
                    *out = (value(src) - m) / s;
                }
            }
        }
        let labels = labels.iter().map(|&l| l as u32).collect();
        Ok(Self { images, labels, mean, std, channels: c, height: h, width: w, num_classes })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// (channels, height, width)
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Gathers `indices` into (images [B, C, H, W] f32, labels [B] u32) on `device`.
    /// With `augment = Some((seed, epoch))` each image goes through AugMix first, with a
    /// stream of its own (seed, epoch, sample index): the same on any machine or batch split.
    pub fn batch(&self, indices: &[u32], device: &Device, augment: Option<(u64, u64)>) -> Result<(Tensor, Tensor)> {
        let (images, labels) = self.gather(indices, augment)?;
        self.to_tensors(images, labels, device)
    }

    /// The host-side half of `batch`: planar pixels and labels of `indices`.
    pub fn gather(&self, indices: &[u32], augment: Option<(u64, u64)>) -> Result<(Vec<f32>, Vec<u32>)> {
        if indices.is_empty() {
            return Err(Error::invalid_data("a batch needs at least one index"));
        }
        let size = self.channels * self.height * self.width;
        let mut images = Vec::with_capacity(indices.len() * size);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let i = i as usize;
            if i >= self.len() {
                return Err(Error::invalid_data(format!("sample index {i} is out of range (dataset has {})", self.len())));
            }
            let pixels = &self.images[i * size..(i + 1) * size];
            match augment {
                None => images.extend_from_slice(pixels),
                Some((seed, epoch)) => images.extend(self.augmented(pixels, seed, epoch, i as u64)?),
            }
            labels.push(self.labels[i]);
        }
        Ok((images, labels))
    }

    /// The device half of `batch`: uploads what `gather` returned.
    pub fn to_tensors(&self, images: Vec<f32>, labels: Vec<u32>, device: &Device) -> Result<(Tensor, Tensor)> {
        let b = labels.len();
        let images = Tensor::from_vec(images, (b, self.channels, self.height, self.width), device)?;
        let labels = Tensor::from_vec(labels, b, device)?;
        Ok((images, labels))
    }

    /// AugMix of one stored (normalised, planar) image, returned in the same form.
    fn augmented(&self, pixels: &[f32], seed: u64, epoch: u64, index: u64) -> Result<Vec<f32>> {
        let plane = self.width * self.height;
        let mut raw = pixels.to_vec();
        for (c, chunk) in raw.chunks_mut(plane).enumerate() {
            let (m, s) = (self.mean[c] as f32, self.std[c] as f32);
            chunk.iter_mut().for_each(|v| *v = *v * s + m);
        }
        let image = Image::from_chw(self.width, self.height, self.channels, &raw)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream((epoch << 32) | index);
        let mut out = augmix(&image, &mut rng)?.to_chw();
        for (c, chunk) in out.chunks_mut(plane).enumerate() {
            let (m, s) = (self.mean[c] as f32, self.std[c] as f32);
            chunk.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        Ok(out)
    }
}
