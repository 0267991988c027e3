//! An in-memory image dataset from typed arrays (NCHW or NHWC, uint8 or float32), and views of
//! one (subsets, splits, concatenations) that share its stored images.

use std::sync::Arc;

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
#[derive(Clone)]
pub struct ArrayDataset {
    /// The stored images, shared by every view of them.
    images: Arc<Vec<f32>>,
    /// Sample i is stored image `rows[i]` (a view); `None`: sample i is stored image i.
    rows: Option<Arc<Vec<u32>>>,
    /// Per-channel normalisation applied at construction (undone for image-space augmentation).
    mean: Vec<f64>,
    std: Vec<f64>,
    /// One per sample, in sample order.
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
        if let Some(n) = num_classes {
            crate::options::DATASET_CLASSES.check(n as f64)?;
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
        Ok(Self { images: Arc::new(images), rows: None, labels, mean, std, channels: c, height: h, width: w, num_classes })
    }

    /// The samples `indices` (an index may repeat), sharing this dataset's stored images.
    pub fn select(&self, indices: &[u32]) -> Result<Self> {
        if let Some((at, &i)) = indices.iter().enumerate().find(|(_, &i)| i as usize >= self.len()) {
            return Err(Error::invalid_data(format!("indices[{at}] = {i} is out of range for a dataset of {} samples", self.len())));
        }
        let rows = indices.iter().map(|&i| self.row(i as usize) as u32).collect();
        let labels = indices.iter().map(|&i| self.labels[i as usize]).collect();
        Ok(Self { rows: Some(Arc::new(rows)), labels, ..self.clone() })
    }

    /// The samples of every part, part after part; parts viewing the same stored images stay
    /// views, others are copied once. The parts must agree on image shape and normalisation;
    /// the class count is the largest of theirs.
    pub fn concat(parts: &[&Self]) -> Result<Self> {
        let Some(first) = parts.first() else {
            return Err(Error::invalid_data("concat needs at least one dataset"));
        };
        for (at, part) in parts.iter().enumerate().skip(1) {
            if part.image_shape() != first.image_shape() {
                let shape = |(c, h, w): (usize, usize, usize)| format!("[{c}, {h}, {w}]");
                return Err(Error::invalid_data(format!(
                    "dataset {at} has images of shape {} but dataset 0 has {} ([channels, height, width])",
                    shape(part.image_shape()),
                    shape(first.image_shape())
                )));
            }
            if part.mean != first.mean || part.std != first.std {
                return Err(Error::invalid_data(format!(
                    "dataset {at} was normalised with mean {:?} std {:?} but dataset 0 with mean {:?} std {:?}",
                    part.mean, part.std, first.mean, first.std
                )));
            }
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > u32::MAX as usize {
            return Err(Error::invalid_data(format!("{total} samples in all, more than 2^32")));
        }
        let labels: Vec<u32> = parts.iter().flat_map(|p| p.labels.iter().copied()).collect();
        let num_classes = parts.iter().map(|p| p.num_classes).max().unwrap_or(first.num_classes);
        if parts.iter().all(|p| Arc::ptr_eq(&p.images, &first.images)) {
            let rows = parts.iter().flat_map(|p| (0..p.len()).map(|i| p.row(i) as u32)).collect();
            return Ok(Self { rows: Some(Arc::new(rows)), labels, num_classes, ..(*first).clone() });
        }
        let size = first.sample_len();
        let mut images = Vec::with_capacity(total * size);
        for part in parts {
            for i in 0..part.len() {
                images.extend_from_slice(part.stored(part.row(i)));
            }
        }
        Ok(Self { images: Arc::new(images), rows: None, labels, num_classes, ..(*first).clone() })
    }

    /// The labels, in sample order.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Where sample `i` is stored.
    fn row(&self, i: usize) -> usize {
        self.rows.as_ref().map_or(i, |rows| rows[i] as usize)
    }

    fn sample_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of stored image `row`.
    fn stored(&self, row: usize) -> &[f32] {
        let size = self.sample_len();
        &self.images[row * size..(row + 1) * size]
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
    /// stream of its own (seed, epoch, stored image): the same on any machine or batch split.
    pub fn batch(&self, indices: &[u32], device: &Device, augment: Option<(u64, u64)>) -> Result<(Tensor, Tensor)> {
        let (images, labels) = self.gather(indices, augment)?;
        self.to_tensors(images, labels, device)
    }

    /// The host-side half of `batch`: planar pixels and labels of `indices`.
    pub fn gather(&self, indices: &[u32], augment: Option<(u64, u64)>) -> Result<(Vec<f32>, Vec<u32>)> {
        if indices.is_empty() {
            return Err(Error::invalid_data("a batch needs at least one index"));
        }
        let mut images = Vec::with_capacity(indices.len() * self.sample_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let i = i as usize;
            if i >= self.len() {
                return Err(Error::invalid_data(format!("sample index {i} is out of range (dataset has {})", self.len())));
            }
            let row = self.row(i);
            let pixels = self.stored(row);
            match augment {
                None => images.extend_from_slice(pixels),
                // The stream follows the stored image, so a view augments a sample as its source does.
                Some((seed, epoch)) => images.extend(self.augmented(pixels, seed, epoch, row as u64)?),
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
