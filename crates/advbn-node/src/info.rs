//! What `advbn doctor` asks the native side: versions, devices, a self-check per device.

use advbn_core::device::{list_devices as core_list_devices, parse_device, CUDA_COMPILED};
use advbn_core::selfcheck::self_check;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{sync, task, Outcome, Typed, Work};
use crate::executor;

#[napi(object)]
pub struct NativeInfo {
    pub version: String,
    pub variant: String,
    pub candle_version: String,
}

#[napi(object)]
pub struct DeviceInfo {
    pub id: String,
    pub kind: String,
    pub name: String,
}

#[napi(object)]
pub struct SelfCheckReport {
    pub device: String,
    pub ok: bool,
    pub clean_loss: f64,
    pub adv_loss: f64,
    pub millis: f64,
    pub message: String,
}

#[napi]
pub fn native_info() -> NativeInfo {
    NativeInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        variant: if CUDA_COMPILED { "cuda" } else { "cpu" }.to_string(),
        candle_version: advbn_core::CANDLE_VERSION.to_string(),
    }
}

#[napi]
pub fn list_devices(env: Env) -> Result<Vec<DeviceInfo>> {
    sync(&env, || executor::run(|| Ok(core_list_devices().into_iter().map(|d| DeviceInfo { id: d.id, kind: d.kind.to_string(), name: d.name }).collect())))
}

pub struct SelfCheckTask {
    device: String,
}

impl Work for SelfCheckTask {
    type Output = SelfCheckReport;
    type JsValue = SelfCheckReport;

    fn compute(&mut self) -> Outcome<SelfCheckReport> {
        let id = self.device.clone();
        executor::run(move || {
            let device = parse_device(&id)?;
            let check = self_check(&device)?;
            Ok(SelfCheckReport {
                device: id,
                ok: check.ok,
                clean_loss: check.clean_loss,
                adv_loss: check.adv_loss,
                millis: check.millis,
                message: check.message,
            })
        })
    }

    fn resolve(&mut self, _env: Env, report: SelfCheckReport) -> Result<SelfCheckReport> {
        Ok(report)
    }
}

/// Runs a tiny AdvBN training step on the device and checks the result is finite and sane.
#[napi(js_name = "selfCheck", ts_return_type = "Promise<SelfCheckReport>")]
pub fn self_check_device(device: String) -> AsyncTask<Typed<SelfCheckTask>> {
    task(SelfCheckTask { device })
}

#[napi(object)]
pub struct CpuThreads {
    pub threads: u32,
    pub lanes: u32,
}

/// The CPU compute threads and how many lanes they form.
#[napi]
pub fn cpu_threads() -> CpuThreads {
    CpuThreads { threads: advbn_core::threads::thread_count() as u32, lanes: advbn_core::threads::lane_count() as u32 }
}

/// Splits the CPU compute threads into `count` lanes, one per job run side by side.
#[napi]
pub fn set_cpu_lanes(env: Env, count: u32) -> Result<()> {
    sync(&env, || Ok(advbn_core::threads::set_lanes(count as usize)?))
}

/// Test hook (the addon's `testing` namespace, not part of the library's API): panics inside
/// native code; must surface as a JS error, never kill the process.
#[napi(namespace = "testing")]
pub fn debug_panic(env: Env, message: String) -> Result<()> {
    sync(&env, || panic!("{message}"))
}

pub struct PanicTask {
    message: String,
}

impl Work for PanicTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Outcome<()> {
        let message = self.message.clone();
        executor::run(move || panic!("{message}"))
    }

    fn resolve(&mut self, _env: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

/// Test hook (`testing` namespace): panics inside an async task.
#[napi(namespace = "testing", ts_return_type = "Promise<void>")]
pub fn debug_panic_async(message: String) -> AsyncTask<Typed<PanicTask>> {
    task(PanicTask { message })
}
