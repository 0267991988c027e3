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
            _ => Err(Error::invalid_option("device", format!("{other:?}"), "expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\"")),
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
    let device = Device::new_cuda_with_stream(ordinal).map_err(|e| Error::Device(format!("CUDA device {ordinal} is not usable: {e}")))?;
    #[cfg(feature = "cuda")]
    memory_pool::keep_freed_memory(ordinal)?;
    Ok(device)
}

/// The device's stream-ordered memory pool, which every Candle allocation comes from.
#[cfg(feature = "cuda")]
pub mod memory_pool {
    use super::{Error, Result};
    use candle_core::cuda_backend::cudarc::driver::sys;

    fn check(what: &str, r: sys::CUresult) -> Result<()> {
        if r == sys::CUresult::CUDA_SUCCESS {
            Ok(())
        } else {
            Err(Error::Device(format!("{what} failed: {r:?}")))
        }
    }

    fn pool(ordinal: usize) -> Result<sys::CUmemoryPool> {
        let mut device: sys::CUdevice = 0;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        // SAFETY: out-pointers to locals; the driver is initialised by the device just opened.
        unsafe {
            check("cuDeviceGet", sys::cuDeviceGet(&mut device, ordinal as i32))?;
            check("cuDeviceGetDefaultMemPool", sys::cuDeviceGetDefaultMemPool(&mut pool, device))?;
        }
        Ok(pool)
    }

    fn set(ordinal: usize, attr: sys::CUmemPool_attribute, mut value: u64) -> Result<()> {
        // SAFETY: both attributes take a cuuint64_t.
        unsafe { check("cuMemPoolSetAttribute", sys::cuMemPoolSetAttribute(pool(ordinal)?, attr, &mut value as *mut u64 as *mut _)) }
    }

    /// By default the pool returns freed memory to the driver at every synchronisation, so the
    /// next step's allocations are real allocations again: keep it (a caching allocator, as
    /// PyTorch's).
    pub fn keep_freed_memory(ordinal: usize) -> Result<()> {
        set(ordinal, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, u64::MAX)
    }

    /// Highest number of bytes allocated from the pool since the last reset (PyTorch's
    /// `max_memory_allocated`).
    pub fn peak_bytes(ordinal: usize) -> Result<u64> {
        let mut value = 0u64;
        // SAFETY: USED_MEM_HIGH is a cuuint64_t.
        unsafe {
            check(
                "cuMemPoolGetAttribute",
                sys::cuMemPoolGetAttribute(pool(ordinal)?, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, &mut value as *mut u64 as *mut _),
            )?;
        }
        Ok(value)
    }

    pub fn reset_peak(ordinal: usize) -> Result<()> {
        set(ordinal, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH, 0)
    }
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
    let mut devices =
        vec![DeviceInfo { id: "cpu".into(), kind: "cpu", name: format!("CPU ({} threads)", std::thread::available_parallelism().map_or(1, |n| n.get())) }];
    if CUDA_COMPILED {
        for ordinal in 0..16 {
            match cuda_device(ordinal) {
                Ok(_) => devices.push(DeviceInfo { id: format!("cuda:{ordinal}"), kind: "cuda", name: format!("CUDA device {ordinal}") }),
                Err(_) => break,
            }
        }
    }
    devices
}
