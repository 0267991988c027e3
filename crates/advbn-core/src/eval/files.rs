//! Images to predict on: named files, and folders searched recursively, without labels. Each
//! file is read and decoded exactly as an image folder's samples are (regular files only, within
//! the same [`FileLimits`]); every sample has label 0.

use std::path::PathBuf;

use crate::data::decode::decode_image_within;
use crate::data::sources::folder::collect_images;
use crate::data::sources::read_file;
use crate::data::{FileLimits, Image, Source};
use crate::error::{Error, Result};

pub struct ImageFiles {
    files: Vec<PathBuf>,
    limits: FileLimits,
}

impl ImageFiles {
    /// `paths` in the order given; a folder stands for its .jpg/.jpeg/.png files (any case,
    /// hidden entries skipped, each real file once), sorted by path. A path that does not exist,
    /// a folder without images and an empty list are errors naming the problem.
    pub fn new(paths: &[PathBuf], limits: FileLimits) -> Result<Self> {
        limits.validate()?;
        if paths.is_empty() {
            return Err(Error::invalid_data("no image files or folders given"));
        }
        let mut files = Vec::new();
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|e| Error::invalid_data(format!("{}: {e}", path.display())))?;
            if meta.is_dir() {
                let mut found = collect_images(path)?;
                if found.is_empty() {
                    return Err(Error::invalid_data(format!("{}: folder has no .jpg/.jpeg/.png files", path.display())));
                }
                found.sort();
                files.extend(found);
            } else {
                files.push(path.clone());
            }
        }
        if files.len() > u32::MAX as usize {
            return Err(Error::invalid_data("more than 2^32 images"));
        }
        Ok(Self { files, limits })
    }

    /// The files, in sample order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

impl Source for ImageFiles {
    fn len(&self) -> usize {
        self.files.len()
    }

    /// One class: the files carry no labels.
    fn num_classes(&self) -> usize {
        1
    }

    fn class_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        let path = self.files.get(index).ok_or_else(|| Error::invalid_data(format!("sample index {index} is out of range ({} images)", self.len())))?;
        let bytes = read_file(path, self.limits.max_file_bytes)?;
        Ok((decode_image_within(&bytes, &path.display().to_string(), self.limits.max_pixels)?, 0))
    }

    fn describe(&self, index: usize) -> String {
        self.files.get(index).map_or_else(|| format!("sample {index}"), |p| p.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &std::path::Path) {
        let bytes = crate::data::corruptions::encode_png(&Image::filled(4, 4, 3, 0.5)).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn lists_files_in_order_and_folders_sorted() {
        let dir = std::env::temp_dir().join(format!("advbn-image-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("folder/sub")).unwrap();
        for name in ["z.png", "folder/b.png", "folder/sub/a.png", "folder/.hidden.png"] {
            png(&dir.join(name));
        }
        std::fs::write(dir.join("folder/notes.txt"), "not an image").unwrap();
        let files = ImageFiles::new(&[dir.join("z.png"), dir.join("folder")], FileLimits::default()).unwrap();
        let names: Vec<String> = (0..files.len()).map(|i| files.describe(i)).collect();
        let expected: Vec<String> = ["z.png", "folder/b.png", "folder/sub/a.png"].iter().map(|n| dir.join(n).display().to_string()).collect();
        assert_eq!(names, expected);
        let (image, label) = files.load(1).unwrap();
        assert_eq!((image.width, image.height, label), (4, 4, 0));

        let missing = ImageFiles::new(&[dir.join("nope.png")], FileLimits::default()).err().unwrap().to_string();
        assert!(missing.contains("nope.png"), "{missing}");
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        let empty = ImageFiles::new(&[dir.join("empty")], FileLimits::default()).err().unwrap().to_string();
        assert!(empty.contains("has no .jpg/.jpeg/.png files"), "{empty}");
        assert!(ImageFiles::new(&[], FileLimits::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
