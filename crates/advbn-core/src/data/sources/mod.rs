//! Labelled image sources the loader reads from: a folder tree, MNIST IDX files, CIFAR-10 batches.

pub mod cifar;
pub mod folder;
pub mod mnist;
pub mod views;

pub use cifar::Cifar10;
pub use folder::ImageFolder;
pub use mnist::Mnist;
pub use views::{Concat, Subset};

use crate::data::Image;
use crate::error::Result;

/// Random access to labelled samples. `load` may be called from several threads at once.
pub trait Source: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn num_classes(&self) -> usize;
    fn class_names(&self) -> Vec<String>;
    /// Sample `index` decoded; errors name the file or record.
    fn load(&self, index: usize) -> Result<(Image, u32)>;
    /// The label of sample `index`. Sources that know their labels without decoding (every
    /// source here) answer from memory; the default decodes the sample.
    fn label(&self, index: usize) -> Result<u32> {
        self.load(index).map(|(_, label)| label)
    }
    /// Where sample `index` comes from (a file path, a record), for error and skip reports.
    fn describe(&self, index: usize) -> String;
}

/// Reads a whole regular file of at most `max_bytes`; the error names it and the reason. The
/// file is opened without blocking (a FIFO named `a.jpg` would wait for a writer forever) and
/// checked to be a regular file (not a device such as a symlink to /dev/zero); the read stops
/// past `max_bytes` even if the file grows meanwhile.
pub(crate) fn read_file(path: &std::path::Path, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let fail = |why: String| crate::error::Error::invalid_data(format!("{}: {why}", path.display()));
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK, Linux's value (libc is not a dependency for one constant).
        open.custom_flags(0o4000);
    }
    let file = open.open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let meta = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a folder" } else { "not a regular file (a device, FIFO or socket)" };
        return Err(fail(format!("{kind}; only regular files are read")));
    }
    if meta.len() > max_bytes {
        return Err(fail(format!("{} bytes, more than the limit of {max_bytes} (maxFileBytes)", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(fail(format!("grew past the limit of {max_bytes} bytes (maxFileBytes) while being read")));
    }
    Ok(bytes)
}

/// Limit of a whole-dataset file (MNIST IDX, CIFAR batches): far above any real one.
pub(crate) const DATASET_FILE_BYTES: u64 = 1 << 30;

/// How much one sample of a folder may cost: its file size and its declared pixel count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    pub max_file_bytes: u64,
    pub max_pixels: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        use crate::options::{MAX_FILE_BYTES, MAX_PIXELS};
        Self { max_file_bytes: MAX_FILE_BYTES.default_value() as u64, max_pixels: MAX_PIXELS.default_value() as u64 }
    }
}

impl FileLimits {
    pub fn validate(&self) -> Result<()> {
        crate::options::MAX_FILE_BYTES.check(self.max_file_bytes as f64)?;
        crate::options::MAX_PIXELS.check(self.max_pixels as f64).map(|_| ())
    }
}
