//! Helpers shared by the fuzz targets: a per-process scratch file (the loaders under test take
//! paths) and the tiny model the weight/checkpoint targets load into.

use std::path::PathBuf;

use advbn_core::models::{Arch, ModelConfig, ResNet};
use candle_core::Device;

/// Writes `bytes` to a per-process file named `name` in /dev/shm (tmpfs) or the temp dir.
pub fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = base.join(format!("advbn-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// small_resnet depth 8 width 4, 3 classes: the shapes of tests/fixtures/tiny_resnet.pth.
pub fn tiny_model() -> ResNet {
    let config = ModelConfig { seed: 0, ..ModelConfig::new(Arch::SmallResNet { depth: 8, width: 4 }, 3) };
    ResNet::new(config, &Device::Cpu).expect("tiny model")
}
