//! MNIST-style IDX files (also Fashion-MNIST, KMNIST): an IDX3 ubyte image file and an IDX1
//! ubyte label file, uncompressed. Everything is read and checked up front.

use std::path::Path;

use super::{read_file, Source, DATASET_FILE_BYTES};
use crate::data::Image;
use crate::error::{Error, Result};

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;
const MAX_SIDE: usize = 4096;
const CLASSES: usize = 10;

pub struct Mnist {
    origin: String,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
}

impl Mnist {
    /// Reads `images_path` (magic 2051) and `labels_path` (magic 2049). Gzipped files must be
    /// unpacked first.
    pub fn from_idx(images_path: impl AsRef<Path>, labels_path: impl AsRef<Path>) -> Result<Self> {
        let (ip, lp) = (images_path.as_ref(), labels_path.as_ref());
        let (images, labels) = (read_file(ip, DATASET_FILE_BYTES)?, read_file(lp, DATASET_FILE_BYTES)?);
        Self::parse(&images, &ip.display().to_string(), &labels, &lp.display().to_string())
    }

    /// The same from bytes in memory; `origin` names them in errors.
    pub fn from_bytes(images: &[u8], labels: &[u8], origin: &str) -> Result<Self> {
        Self::parse(images, &format!("{origin} (images)"), labels, &format!("{origin} (labels)"))
    }

    fn parse(images: &[u8], images_name: &str, labels: &[u8], labels_name: &str) -> Result<Self> {
        let head = header(images, images_name, IMAGES_MAGIC, 4)?;
        let (n, rows, cols) = (head[0], head[1], head[2]);
        if rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
            return Err(Error::invalid_data(format!("{images_name}: image size {rows}x{cols} is not sane (1..={MAX_SIDE} a side)")));
        }
        let need = 16 + n * rows * cols;
        if images.len() != need {
            return Err(Error::invalid_data(format!(
                "{images_name}: header says {n} images of {rows}x{cols} ({need} bytes), the file has {} bytes",
                images.len()
            )));
        }
        let count = header(labels, labels_name, LABELS_MAGIC, 2)?[0];
        if labels.len() != 8 + count {
            return Err(Error::invalid_data(format!("{labels_name}: header says {count} labels ({} bytes), the file has {} bytes", 8 + count, labels.len())));
        }
        if count != n {
            return Err(Error::invalid_data(format!("{labels_name}: {count} labels for {n} images in {images_name}")));
        }
        if n == 0 {
            return Err(Error::invalid_data(format!("{images_name}: no images")));
        }
        let labels = labels[8..].to_vec();
        if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
            return Err(Error::invalid_data(format!("{labels_name}: label {} of record {i} is not in 0..{CLASSES}", labels[i])));
        }
        Ok(Self { origin: images_name.to_string(), pixels: images[16..].to_vec(), labels, rows, cols })
    }
}

/// Checks the magic and returns the `words - 1` big-endian u32 values after it.
fn header(bytes: &[u8], name: &str, magic: u32, words: usize) -> Result<Vec<usize>> {
    if bytes.len() < words * 4 {
        return Err(Error::invalid_data(format!("{name}: {} bytes is too short for an IDX header", bytes.len())));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    if word(0) != magic {
        let hint = if bytes.starts_with(&[0x1F, 0x8B]) { " (gzip: unpack it first)" } else { "" };
        return Err(Error::invalid_data(format!("{name}: magic number {} is not the IDX magic {magic}{hint}", word(0))));
    }
    Ok((1..words).map(|i| word(i) as usize).collect())
}

impl Source for Mnist {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn num_classes(&self) -> usize {
        CLASSES
    }

    fn class_names(&self) -> Vec<String> {
        (0..CLASSES).map(|c| c.to_string()).collect()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        if index >= self.len() {
            return Err(Error::invalid_data(format!("{}: record {index} is out of range ({} images)", self.origin, self.len())));
        }
        let size = self.rows * self.cols;
        let image = Image::from_u8(self.cols, self.rows, 1, &self.pixels[index * size..(index + 1) * size])?;
        Ok((image, self.labels[index] as u32))
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.labels
            .get(index)
            .map(|&l| l as u32)
            .ok_or_else(|| Error::invalid_data(format!("{}: record {index} is out of range ({} images)", self.origin, self.len())))
    }

    fn describe(&self, index: usize) -> String {
        format!("{} record {index}", self.origin)
    }
}
