//! Hostile files in an image folder (issue #14): image bombs, files that are not regular files
//! or are too large, symlink DAGs and entries that cannot be examined. Each is refused with an
//! error naming the file and the reason, before memory is spent on it (a FIFO that blocked the
//! open would hang this test rather than pass it).

use std::path::{Path, PathBuf};

use advbn_core::data::{FileLimits, ImageFolder, Source};

/// A fresh folder `root/cls/` under the temp dir; removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Self {
        let root = std::env::temp_dir().join(format!("advbn-hostile-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("cls")).unwrap();
        Tree(root)
    }

    fn class(&self) -> PathBuf {
        self.0.join("cls")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A PNG that declares `w` x `h` RGB pixels in its header and holds none.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    // An empty zlib stream: the decoder wants an IDAT before it reports the dimensions.
    out.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn small_png() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([10, 20, 30]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// Loads the only sample of `tree`; returns the error text.
fn load_error(root: &Path, limits: FileLimits) -> String {
    let folder = ImageFolder::with_limits(root, None, limits).unwrap();
    assert_eq!(folder.len(), 1);
    folder.load(0).expect_err("the hostile sample loaded").to_string()
}

#[test]
fn an_image_bomb_is_refused_from_its_header() {
    let tree = Tree::new("bomb");
    let bomb = png_declaring(10_000, 10_000);
    assert!(bomb.len() < 100, "the bomb is {} bytes", bomb.len());
    std::fs::write(tree.class().join("bomb.png"), &bomb).unwrap();
    let err = load_error(&tree.0, FileLimits::default());
    // Refused from the header: no pixel decoded, so no memory spent on it.
    assert!(err.contains("bomb.png") && err.contains("10000x10000") && err.contains("maxPixels") && err.contains("nothing was decoded"), "{err}");
    // A lower limit applies to real images too.
    std::fs::write(tree.class().join("bomb.png"), small_png()).unwrap();
    let err = load_error(&tree.0, FileLimits { max_pixels: 15, ..FileLimits::default() });
    assert!(err.contains("4x4 = 16 pixels, more than the limit of 15"), "{err}");
    let ok = ImageFolder::with_limits(&tree.0, None, FileLimits { max_pixels: 16, ..FileLimits::default() }).unwrap();
    assert_eq!(ok.load(0).unwrap().0.width, 4);
    // Limits outside their rules are refused when the folder is opened.
    let err = ImageFolder::with_limits(&tree.0, None, FileLimits { max_pixels: 0, ..FileLimits::default() }).err().unwrap().to_string();
    assert!(err.contains("maxPixels"), "{err}");
}

#[test]
fn only_regular_files_within_the_size_limit_are_read() {
    let tree = Tree::new("files");
    let sample = tree.class().join("a.jpg");
    // A symlink to /dev/zero (read whole, it never ends).
    std::os::unix::fs::symlink("/dev/zero", &sample).unwrap();
    let err = load_error(&tree.0, FileLimits::default());
    assert!(err.contains("a.jpg") && err.contains("not a regular file"), "{err}");
    std::fs::remove_file(&sample).unwrap();
    // A FIFO: opening it for reading would wait for a writer forever.
    let made = std::process::Command::new("mkfifo").arg(&sample).status().map(|s| s.success()).unwrap_or(false);
    if made {
        let err = load_error(&tree.0, FileLimits::default());
        assert!(err.contains("a.jpg") && err.contains("not a regular file"), "{err}");
        std::fs::remove_file(&sample).unwrap();
    }
    // A sparse 8 GiB file: refused from its size, nothing read.
    std::fs::File::create(&sample).unwrap().set_len(8 << 30).unwrap();
    let err = load_error(&tree.0, FileLimits::default());
    assert!(err.contains("a.jpg") && err.contains("8589934592 bytes, more than the limit") && err.contains("maxFileBytes"), "{err}");
    // The limit is the caller's to set.
    std::fs::write(&sample, small_png()).unwrap();
    let err = load_error(&tree.0, FileLimits { max_file_bytes: 10, ..FileLimits::default() });
    assert!(err.contains("more than the limit of 10"), "{err}");
}

#[test]
fn a_symlink_dag_lists_each_real_file_once_and_unlistable_entries_are_named() {
    let tree = Tree::new("dag");
    let class = tree.class();
    std::fs::create_dir(class.join("d0")).unwrap();
    std::fs::write(class.join("d0/x.png"), small_png()).unwrap();
    std::fs::write(class.join("d0/y.png"), small_png()).unwrap();
    // Level k holds two links to level k - 1: 2^20 paths to each file.
    for level in 1..=20 {
        let dir = class.join(format!("d{level}"));
        std::fs::create_dir(&dir).unwrap();
        for link in ["l1", "l2"] {
            std::os::unix::fs::symlink(format!("../d{}", level - 1), dir.join(link)).unwrap();
        }
    }
    let folder = ImageFolder::new(&tree.0, None).unwrap();
    assert_eq!(folder.len(), 2, "every real file once");
    assert!(folder.samples().iter().all(|(p, _)| p.starts_with(class.join("d0"))), "{:?}", folder.samples());
    // A dangling link is named, not silently left out.
    std::os::unix::fs::symlink(class.join("gone.png"), class.join("dangling.png")).unwrap();
    let err = ImageFolder::new(&tree.0, None).err().unwrap().to_string();
    assert!(err.contains("dangling.png") && err.contains("cannot be listed"), "{err}");
}
