//! The one in-memory image type of the data pipeline: float pixels in [0, 1], interleaved
//! (height, width, channel) like decoded files, 1 (grayscale) or 3 (RGB) channels.

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    /// `height * width * channels` values, row-major, channels interleaved.
    pub data: Vec<f32>,
}

impl Image {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<f32>) -> Result<Self> {
        if width == 0 || height == 0 || !(channels == 1 || channels == 3) {
            return Err(Error::invalid_data(format!("image must be non-empty with 1 or 3 channels, got {width}x{height}x{channels}")));
        }
        if data.len() != width * height * channels {
            return Err(Error::invalid_data(format!("image {width}x{height}x{channels} needs {} values, got {}", width * height * channels, data.len())));
        }
        Ok(Self { width, height, channels, data })
    }

    pub fn filled(width: usize, height: usize, channels: usize, value: f32) -> Self {
        Self { width, height, channels, data: vec![value; width * height * channels] }
    }

    pub fn from_u8(width: usize, height: usize, channels: usize, bytes: &[u8]) -> Result<Self> {
        Self::new(width, height, channels, bytes.iter().map(|&b| b as f32 / 255.0).collect())
    }

    /// Rounds to 8-bit, clamping to [0, 1] first.
    pub fn to_u8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect()
    }

    #[inline]
    pub fn index(&self, x: usize, y: usize, c: usize) -> usize {
        (y * self.width + x) * self.channels + c
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize, c: usize) -> f32 {
        self.data[self.index(x, y, c)]
    }

    pub fn clamp01(mut self) -> Self {
        for v in &mut self.data {
            *v = v.clamp(0.0, 1.0);
        }
        self
    }

    /// From planar (channel, height, width) values.
    pub fn from_chw(width: usize, height: usize, channels: usize, chw: &[f32]) -> Result<Self> {
        let plane = width * height;
        if chw.len() != plane * channels {
            return Err(Error::invalid_data(format!("planar image {width}x{height}x{channels} needs {} values, got {}", plane * channels, chw.len())));
        }
        let mut data = vec![0f32; chw.len()];
        for p in 0..plane {
            for c in 0..channels {
                data[p * channels + c] = chw[c * plane + p];
            }
        }
        Self::new(width, height, channels, data)
    }

    /// Planar (channel, height, width) copy, the layout tensors use.
    pub fn to_chw(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.data.len()];
        let plane = self.width * self.height;
        for p in 0..plane {
            for c in 0..self.channels {
                out[c * plane + p] = self.data[p * self.channels + c];
            }
        }
        out
    }
}
