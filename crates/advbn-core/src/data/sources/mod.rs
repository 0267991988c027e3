//! Labelled image sources the loader reads from: a folder tree, MNIST IDX files, CIFAR-10 batches.

pub mod cifar;
pub mod folder;
pub mod mnist;

pub use cifar::Cifar10;
pub use folder::ImageFolder;
pub use mnist::Mnist;

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
    /// Where sample `index` comes from (a file path, a record), for error and skip reports.
    fn describe(&self, index: usize) -> String;
}

/// Reads a whole file; the error names it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| crate::error::Error::invalid_data(format!("{}: cannot read: {e}", path.display())))
}
