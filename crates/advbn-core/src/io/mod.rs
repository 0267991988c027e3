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
    remove_stale_temps(&dir, &name.to_string_lossy());
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

/// Removes the temp files `write_atomically` left for `name` in `dir` when a process was killed
/// mid-write: those of processes that are gone. Another live process's file may be a write in
/// progress and stays, as does everything where liveness cannot be told (no /proc).
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && process_gone(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_removes_the_temp_files_of_dead_writers_only() {
        let dir = std::env::temp_dir().join(format!("advbn-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Left by a killed run (no such process), by a live one (pid 1), and another file's.
        let dead = dir.join(".ckpt.safetensors.tmp-4000000000");
        let live = dir.join(".ckpt.safetensors.tmp-1");
        let other = dir.join(".weights.safetensors.tmp-4000000000");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_atomically(&dir.join("ckpt.safetensors"), |tmp| std::fs::write(tmp, b"done").map_err(|e| Error::invalid_data(e.to_string()))).unwrap();
        assert_eq!(std::fs::read(dir.join("ckpt.safetensors")).unwrap(), b"done");
        assert!(!dead.exists(), "a dead writer's temp file stayed");
        assert!(live.exists() && other.exists(), "a live writer's or another file's temp file was removed");
        std::fs::remove_dir_all(&dir).ok();
    }
}
