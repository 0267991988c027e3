//! `root/<class>/**/<image>` trees, like torchvision's `ImageFolder`. Files are listed once,
//! decoded lazily in `load`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{read_file, FileLimits, Source};
use crate::data::decode::decode_image_within;
use crate::data::Image;
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, u32)>,
    limits: FileLimits,
}

impl ImageFolder {
    /// Classes are the sub-folders of `root` sorted by name (byte order), or `classes` in the
    /// order given. Each class folder is searched recursively for .jpg/.jpeg/.png files (any
    /// case; hidden entries skipped), sorted by path. Other files are ignored.
    pub fn new(root: impl AsRef<Path>, classes: Option<Vec<String>>) -> Result<Self> {
        Self::with_limits(root, classes, FileLimits::default())
    }

    /// [`ImageFolder::new`] whose samples may cost at most `limits` (file size, declared pixels).
    pub fn with_limits(root: impl AsRef<Path>, classes: Option<Vec<String>>, limits: FileLimits) -> Result<Self> {
        limits.validate()?;
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::invalid_data(format!("{}: image folder root is not a directory", root.display())));
        }
        let classes = match classes {
            Some(list) => {
                if list.is_empty() {
                    return Err(Error::invalid_option("classes", "[]", "needs at least one class name"));
                }
                for (i, name) in list.iter().enumerate() {
                    if list[..i].contains(name) {
                        return Err(Error::invalid_option("classes", format!("{name:?}"), "class names must be unique"));
                    }
                    if !root.join(name).is_dir() {
                        return Err(Error::invalid_data(format!("{}: class folder for class {name:?} does not exist", root.join(name).display())));
                    }
                }
                list
            }
            None => {
                let mut names = Vec::new();
                for entry in list_dir(&root)? {
                    if entry.is_dir() {
                        let Some(name) = entry.file_name().and_then(|n| n.to_str()) else {
                            return Err(Error::invalid_data(format!("{}: class folder name is not UTF-8", entry.display())));
                        };
                        names.push(name.to_string());
                    }
                }
                names.sort();
                if names.is_empty() {
                    return Err(Error::invalid_data(format!("{}: no class folders in the image folder root", root.display())));
                }
                names
            }
        };
        let mut samples = Vec::new();
        for (label, name) in classes.iter().enumerate() {
            let dir = root.join(name);
            let mut files = collect_images(&dir)?;
            if files.is_empty() {
                return Err(Error::invalid_data(format!("{}: class folder has no .jpg/.jpeg/.png files", dir.display())));
            }
            files.sort();
            samples.extend(files.into_iter().map(|f| (f, label as u32)));
        }
        if samples.len() > u32::MAX as usize {
            return Err(Error::invalid_data(format!("{}: more than 2^32 images", root.display())));
        }
        Ok(Self { root, classes, samples, limits })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// (path, label) of every sample, in index order.
    pub fn samples(&self) -> &[(PathBuf, u32)] {
        &self.samples
    }
}

impl ImageFolder {
    fn sample(&self, index: usize) -> Result<&(PathBuf, u32)> {
        self.samples.get(index).ok_or_else(|| Error::invalid_data(format!("sample index {index} is out of range ({} images)", self.len())))
    }
}

impl Source for ImageFolder {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn load(&self, index: usize) -> Result<(Image, u32)> {
        let (path, label) = self.sample(index)?;
        let bytes = read_file(path, self.limits.max_file_bytes)?;
        Ok((decode_image_within(&bytes, &path.display().to_string(), self.limits.max_pixels)?, *label))
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.sample(index).map(|(_, label)| *label)
    }

    fn describe(&self, index: usize) -> String {
        self.samples.get(index).map_or_else(|| format!("sample {index}"), |(p, _)| p.display().to_string())
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// The entries of `dir` but hidden ones, sorted (so a file reached twice is always kept under
/// the same path).
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::invalid_data(format!("{}: cannot list: {e}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::invalid_data(format!("{}: cannot list: {e}", dir.display())))?;
        let path = entry.path();
        if !file_name(&path).starts_with('.') {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Folders nested deeper than this are taken to be a symlink cycle.
const MAX_DEPTH: usize = 32;

/// The .jpg/.jpeg/.png files (any case) under `dir`, recursively, hidden entries skipped. Each
/// real file and folder counts once however many links lead to it (by device and inode: a DAG
/// of symlinks does not multiply the samples or the walk), and an entry that cannot be examined (a
/// path too long, a dangling link, no permission) is an error naming it, never silently left out.
pub(crate) fn collect_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let cannot = |path: &Path, e: std::io::Error| Error::invalid_data(format!("{}: cannot be listed: {e}", path.display()));
    let root = std::fs::metadata(dir).map_err(|e| cannot(dir, e))?;
    let (mut seen, mut out) = (HashSet::new(), Vec::new());
    walk(dir, &root, 0, &mut seen, &mut out)?;
    Ok(out)
}

/// What makes two paths the same file or folder: device and inode on Unix (from the metadata
/// the walk reads anyway: no extra system call per file), the canonical path elsewhere.
#[derive(PartialEq, Eq, Hash)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Path(PathBuf),
}

fn identity(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Identity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        Ok(Identity::Inode(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        path.canonicalize().map(Identity::Path)
    }
}

fn walk(dir: &Path, meta: &std::fs::Metadata, depth: usize, seen: &mut HashSet<Identity>, out: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid_data(format!("{}: folders nested deeper than {MAX_DEPTH}", dir.display())));
    }
    let cannot = |path: &Path, e: std::io::Error| Error::invalid_data(format!("{}: cannot be listed: {e}", path.display()));
    if !seen.insert(identity(dir, meta).map_err(|e| cannot(dir, e))?) {
        return Ok(());
    }
    for path in list_dir(dir)? {
        let meta = std::fs::metadata(&path).map_err(|e| cannot(&path, e))?;
        if meta.is_dir() {
            walk(&path, &meta, depth + 1, seen, out)?;
        } else {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            if EXTENSIONS.contains(&ext.as_str()) && seen.insert(identity(&path, &meta).map_err(|e| cannot(&path, e))?) {
                out.push(path);
            }
        }
    }
    Ok(())
}
