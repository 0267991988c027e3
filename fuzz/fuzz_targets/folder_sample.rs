//! Whole-file bytes as an image-folder sample: written to a file, read through the file-size
//! limit (regular files only), the header checked against maxPixels, then decoded. Must return
//! Ok or an error, never panic or allocate past the limits. (`decode_image` fuzzes the decoder
//! alone.)
#![no_main]

use advbn_core::data::{FileLimits, ImageFolder, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file limit below the input size half of the time; a small pixel limit keeps bombs cheap.
    let dir = advbn_fuzz::scratch("unused", b"").with_file_name(format!("advbn-fuzz-folder-sample-{}", std::process::id()));
    let class = dir.join("c");
    let _ = std::fs::create_dir_all(&class);
    if std::fs::write(class.join("x.png"), data).is_ok() {
        let limits = FileLimits {
            max_file_bytes: (data.len() as u64 / 2).max(1) + u64::from(data.first().copied().unwrap_or(0) & 1) * data.len() as u64,
            max_pixels: 1 << 20,
        };
        if let Ok(folder) = ImageFolder::with_limits(&dir, None, limits) {
            let _ = folder.load(0);
        }
    }
});
