//! The image-folder walk over trees the input builds: folders, files and symlinks (to folders
//! above, to itself, dangling). Must finish, list each real file once, and never panic.
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;

use advbn_core::data::{ImageFolder, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let root = advbn_fuzz::scratch("unused", b"").with_file_name(format!("advbn-fuzz-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let class = root.join("c");
    if std::fs::create_dir_all(&class).is_err() {
        return;
    }
    let mut dirs: Vec<PathBuf> = vec![class.clone()];
    let mut files = 0usize;
    for (i, op) in data.chunks(2).take(24).enumerate() {
        let at = dirs[op.get(1).copied().unwrap_or(0) as usize % dirs.len()].clone();
        match op[0] % 4 {
            0 => {
                let d = at.join(format!("d{i}"));
                if std::fs::create_dir(&d).is_ok() {
                    dirs.push(d);
                }
            }
            1 => {
                if std::fs::write(at.join(format!("f{i}.png")), b"not really a png").is_ok() {
                    files += 1;
                }
            }
            2 => {
                let target = dirs[op[0] as usize / 4 % dirs.len()].clone();
                let _ = std::os::unix::fs::symlink(target, at.join(format!("l{i}")));
            }
            _ => {
                let _ = std::os::unix::fs::symlink(at.join("missing.png"), at.join(format!("x{i}.jpg")));
            }
        }
    }
    if let Ok(folder) = ImageFolder::new(&root, None) {
        // Every real file once: no more samples than files written, no canonical path twice.
        assert!(folder.len() <= files, "{} samples from {files} files", folder.len());
        let canonical: HashSet<PathBuf> = folder.samples().iter().filter_map(|(p, _)| p.canonicalize().ok()).collect();
        assert_eq!(canonical.len(), folder.len());
        let _ = folder.load(0);
    }
    let _ = std::fs::remove_dir_all(&root);
});
