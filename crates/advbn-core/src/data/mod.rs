//! Data sources. For now: images held in memory, validated once, gathered into batches.

pub mod arrays;
pub mod image;
pub mod order;

pub use arrays::{ArrayDataset, ImageLayout, PixelData};
pub use image::Image;
pub use order::epoch_order;
