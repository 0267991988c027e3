//! Device selection by name: "cpu", "cuda", "cuda:N" or "auto".

use crate::error::{Error, Result};
use candle_core::Device;

/// A device the process can use, as reported to users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
}

/// True when this build was compiled with CUDA support.
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// Resolves a device name. `auto` picks the first GPU when one is usable, else the CPU.
/// Asking for `cuda` when none is usable is an error, never a silent CPU run.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(cuda_device(0).unwrap_or(Device::Cpu)),
        "cuda" => cuda_device(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(ordinal)) => cuda_device(ordinal),
            _ => Err(Error::invalid_option(
                "device",
                format!("{other:?}"),
                "expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\"",
            )),
        },
    }
}

/// One `Device` per GPU for the whole process: Candle compares devices by identity, and each
/// new CUDA device would carry its own context, stream and cuBLAS handle.
fn cuda_device(ordinal: usize) -> Result<Device> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<usize, Device>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(device) = cache.get(&ordinal) {
        return Ok(device.clone());
    }
    let device = open_cuda_device(ordinal)?;
    cache.insert(ordinal, device.clone());
    Ok(device)
}

fn open_cuda_device(ordinal: usize) -> Result<Device> {
    if !CUDA_COMPILED {
        return Err(Error::Device(format!(
            "device \"cuda:{ordinal}\" requested but this advbn binary was built without CUDA \
             (run `advbn doctor` to see which binary loaded and why)"
        )));
    }
    // An explicit stream (not the legacy default one): all work is issued from one thread.
    Device::new_cuda_with_stream(ordinal)
        .map_err(|e| Error::Device(format!("CUDA device {ordinal} is not usable: {e}")))
}

/// Canonical name of a device ("cpu", "cuda:0").
pub fn device_id(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".to_string(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Every usable device: the CPU, then each CUDA device that opens.
pub fn list_devices() -> Vec<DeviceInfo> {
    let mut devices = vec![DeviceInfo {
        id: "cpu".into(),
        kind: "cpu",
        name: format!("CPU ({} threads)", std::thread::available_parallelism().map_or(1, |n| n.get())),
    }];
    if CUDA_COMPILED {
        for ordinal in 0..16 {
            match cuda_device(ordinal) {
                Ok(_) => devices.push(DeviceInfo {
                    id: format!("cuda:{ordinal}"),
                    kind: "cuda",
                    name: format!("CUDA device {ordinal}"),
                }),
                Err(_) => break,
            }
        }
    }
    devices
}
