//! Data sources. For now: images held in memory, validated once, gathered into batches.

pub mod arrays;
pub mod augmix;
pub mod corruptions;
pub mod image;
pub mod jitter;
pub mod order;
pub(crate) mod resample;
pub mod selection;

pub use arrays::{ArrayDataset, ImageLayout, PixelData};
pub use image::Image;
pub use order::epoch_order;
pub mod decode;
pub mod digits;
pub use decode::decode_image;
pub mod loader;
pub mod sources;
pub mod transforms;
pub use loader::{BadSample, Batch, EpochIter, Loader, LoaderConfig, Pass};
pub use sources::{Cifar10, Concat, FileLimits, ImageFolder, Mnist, Source, Subset};
pub use transforms::{Pipeline, Transform, IMAGENET_MEAN, IMAGENET_STD};
