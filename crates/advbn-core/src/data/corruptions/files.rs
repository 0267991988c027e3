//! Corrupting image files on disk, ImageNet-C style: every input image is written once per
//! (corruption, severity) to `output/<corruption>/<severity>/<its path relative to the input>`,
//! in its own format (PNG stays PNG, JPEG stays JPEG at quality 95), 8 bits per channel.
//!
//! Each file gets its own seed, mixed from the job's seed and its relative path, so the noise
//! differs between files but a file's outputs do not depend on the other files or on threads.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageFormat};

use super::{corrupt, Corruption};
use crate::data::sources::folder::collect_images;
use crate::data::{decode_image, Image};
use crate::error::{Error, Result};

/// JPEG quality of written JPEG files.
pub const JPEG_QUALITY: u8 = 95;

/// What [`corrupt_files`] does.
#[derive(Debug, Clone)]
pub struct CorruptFilesJob {
    /// One image file, or a folder searched recursively for .jpg/.jpeg/.png files.
    pub input: PathBuf,
    pub output: PathBuf,
    pub corruptions: Vec<Corruption>,
    /// Severities in 1..=5.
    pub severities: Vec<u8>,
    pub seed: u64,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptFilesSummary {
    /// Input images read.
    pub images: usize,
    /// Files written in all.
    pub written: usize,
    /// Files written per corruption, in the job's order.
    pub per_corruption: Vec<(Corruption, usize)>,
}

/// Runs `job`. Stops at the first file that cannot be read, decoded, corrupted or written
/// (the error names it); files written before stay.
pub fn corrupt_files(job: &CorruptFilesJob) -> Result<CorruptFilesSummary> {
    if job.corruptions.is_empty() {
        return Err(Error::invalid_option("corruptions", "[]", "needs at least one corruption"));
    }
    if job.severities.is_empty() {
        return Err(Error::invalid_option("severities", "[]", "needs at least one severity"));
    }
    for &severity in &job.severities {
        crate::options::CORRUPTION_SEVERITY.check(severity as f64)?;
    }
    let files = list_inputs(&job.input)?;
    check_output(&job.input, &job.output)?;
    let counts: Vec<AtomicUsize> = job.corruptions.iter().map(|_| AtomicUsize::new(0)).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // The error of the first file (in input order) that failed, for a stable report.
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    let threads = match job.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(files.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= files.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let (path, relative) = &files[i];
                if let Err(e) = corrupt_one(job, path, relative, &counts) {
                    failed.store(true, Ordering::Relaxed);
                    let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                        *slot = Some((i, e));
                    }
                }
            });
        }
    });
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let per_corruption: Vec<(Corruption, usize)> = job.corruptions.iter().zip(&counts).map(|(c, n)| (*c, n.load(Ordering::Relaxed))).collect();
    Ok(CorruptFilesSummary { images: files.len(), written: per_corruption.iter().map(|(_, n)| n).sum(), per_corruption })
}

/// (path, path relative to the input) of every input image, sorted.
fn list_inputs(input: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    if input.is_file() {
        let name = input.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("image"));
        return Ok(vec![(input.to_path_buf(), name)]);
    }
    if !input.is_dir() {
        return Err(Error::invalid_data(format!("{}: no such image file or folder", input.display())));
    }
    let mut paths = collect_images(input)?;
    if paths.is_empty() {
        return Err(Error::invalid_data(format!("{}: no .jpg/.jpeg/.png files in the folder", input.display())));
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let relative = p.strip_prefix(input).map(Path::to_path_buf).unwrap_or_else(|_| p.clone());
            (p, relative)
        })
        .collect())
}

/// Refuses an output inside the input folder (its images would become inputs), then creates it.
fn check_output(input: &Path, output: &Path) -> Result<()> {
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if input.is_dir() && absolute(output).starts_with(absolute(input)) {
        return Err(Error::invalid_option("output", output.display(), format!("must not be inside the input folder {}", input.display())));
    }
    std::fs::create_dir_all(output).map_err(|e| Error::invalid_data(format!("{}: cannot create the output folder: {e}", output.display())))
}

fn corrupt_one(job: &CorruptFilesJob, path: &Path, relative: &Path, counts: &[AtomicUsize]) -> Result<()> {
    let name = path.display().to_string();
    let bytes = crate::data::sources::read_file(path, crate::data::FileLimits::default().max_file_bytes)?;
    let format = match image::guess_format(&bytes) {
        Ok(ImageFormat::Png) => ImageFormat::Png,
        _ => ImageFormat::Jpeg, // anything else fails to decode below, naming the file
    };
    let image = decode_image(&bytes, &name)?;
    let seed = file_seed(job.seed, relative);
    for (corruption, count) in job.corruptions.iter().zip(counts) {
        for &severity in &job.severities {
            let out = corrupt(&image, *corruption, severity, seed).map_err(|e| match e {
                Error::InvalidData(msg) => Error::invalid_data(format!("{name}: {msg}")),
                other => other,
            })?;
            let target = job.output.join(corruption.name()).join(severity.to_string()).join(relative);
            let fail = |what: &str, e: &dyn std::fmt::Display| Error::invalid_data(format!("{}: cannot {what}: {e}", target.display()));
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail("create its folder", &e))?;
            }
            std::fs::write(&target, encode(&out, format)?).map_err(|e| fail("write", &e))?;
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// 8-bit PNG bytes of `image`.
pub fn encode_png(image: &Image) -> Result<Vec<u8>> {
    encode(image, ImageFormat::Png)
}

/// 8-bit JPEG bytes of `image`, quality [`JPEG_QUALITY`].
pub fn encode_jpeg(image: &Image) -> Result<Vec<u8>> {
    encode(image, ImageFormat::Jpeg)
}

fn encode(image: &Image, format: ImageFormat) -> Result<Vec<u8>> {
    let pixels = image.to_u8();
    let color = if image.channels == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
    let (w, h) = (image.width as u32, image.height as u32);
    let mut out = Vec::new();
    let written = match format {
        ImageFormat::Png => PngEncoder::new(&mut out).write_image(&pixels, w, h, color),
        _ => JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(&pixels, w, h, color),
    };
    written.map_err(|e| Error::invalid_data(format!("cannot encode a {w}x{h} image as {format:?}: {e}")))?;
    Ok(out)
}

/// FNV-1a of the relative path (with `/` separators), mixed with the seed by SplitMix64.
fn file_seed(seed: u64, relative: &Path) -> u64 {
    let text = relative.to_string_lossy().replace('\\', "/");
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut z = (seed ^ hash).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("advbn-files-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn gradient(w: usize, h: usize) -> Image {
        let data = (0..w * h * 3).map(|i| ((i * 7) % 255) as f32 / 255.0).collect();
        Image::new(w, h, 3, data).unwrap()
    }

    #[test]
    fn writes_every_corruption_and_severity_in_the_input_layout_and_format() {
        let root = temp_dir("layout");
        let (input, output) = (root.join("in"), root.join("out"));
        std::fs::create_dir_all(input.join("cls")).unwrap();
        std::fs::write(input.join("cls/a.png"), encode_png(&gradient(32, 30)).unwrap()).unwrap();
        std::fs::write(input.join("b.jpg"), encode_jpeg(&gradient(40, 32)).unwrap()).unwrap();
        let job = CorruptFilesJob {
            input: input.clone(),
            output: output.clone(),
            corruptions: vec![Corruption::GaussianNoise, Corruption::Contrast],
            severities: vec![1, 5],
            seed: 3,
            threads: 2,
        };
        let summary = corrupt_files(&job).unwrap();
        assert_eq!(summary.images, 2);
        assert_eq!(summary.written, 8);
        assert_eq!(summary.per_corruption, vec![(Corruption::GaussianNoise, 4), (Corruption::Contrast, 4)]);
        let png = std::fs::read(output.join("gaussian_noise/5/cls/a.png")).unwrap();
        assert_eq!(image::guess_format(&png).unwrap(), ImageFormat::Png);
        let jpeg = std::fs::read(output.join("contrast/1/b.jpg")).unwrap();
        assert_eq!(image::guess_format(&jpeg).unwrap(), ImageFormat::Jpeg);
        // Same seed, same bytes; the output folder inside the input is refused.
        let again = root.join("again");
        corrupt_files(&CorruptFilesJob { output: again.clone(), threads: 1, ..job.clone() }).unwrap();
        assert_eq!(std::fs::read(again.join("gaussian_noise/5/cls/a.png")).unwrap(), png);
        let inside = corrupt_files(&CorruptFilesJob { output: input.join("out"), ..job });
        assert!(matches!(inside, Err(Error::InvalidOption { ref option, .. }) if option == "output"));
        let _ = std::fs::remove_dir_all(root);
    }
}
