//! File formats and file handling: writing that never leaves a half-written file behind
//! ([`write_atomically`]), and reading PyTorch checkpoints without executing them (`pth`).

pub(crate) mod pth;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `path` through `write` without ever leaving a half-written file: `write` fills a temp
/// file next to the target, which is fsynced, renamed over the target, then the directory fsynced.
pub fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::invalid_option("path", format!("{path:?}"), "must name a file"))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let io = |what: &str, e: std::io::Error| Error::invalid_data(format!("{what} {}: {e}", path.display()));
    let result = (|| {
        write(&tmp)?;
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io("cannot sync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io("cannot move into place", e))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
