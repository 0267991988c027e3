//! The one place core errors become JavaScript errors. Messages start with a stable code
//! (`[ADVBN_INVALID_OPTION option=lr] ...`) that the TypeScript layer turns into typed errors.

use std::any::Any;

use advbn_core::Error;

pub fn to_napi(error: Error) -> napi::Error {
    // Users get the message; Candle's captured backtraces are noise at this boundary.
    let error = match error {
        Error::Candle(e) => Error::Candle(strip_backtrace(e)),
        other => other,
    };
    let head = match error.option() {
        Some(option) => format!("[{} option={option}]", error.code()),
        None => format!("[{}]", error.code()),
    };
    napi::Error::from_reason(format!("{head} {error}"))
}

pub fn candle_to_napi(error: candle_core::Error) -> napi::Error {
    to_napi(Error::Candle(error))
}

pub fn disposed(what: &str) -> napi::Error {
    napi::Error::from_reason(format!("[ADVBN_DISPOSED] this {what} was disposed and can no longer be used"))
}

/// A Rust panic caught at the boundary: reported, never allowed to abort Node.
pub fn panic_to_napi(payload: Box<dyn Any + Send>) -> napi::Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    napi::Error::from_reason(format!("[ADVBN_PANIC] native code panicked: {text}"))
}

/// Runs a synchronous entry point, turning a panic into an `[ADVBN_PANIC]` error.
pub fn catch_panics<T>(f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(panic_to_napi(payload)))
}

pub trait IntoNapi<T> {
    fn into_napi(self) -> napi::Result<T>;
}

impl<T> IntoNapi<T> for advbn_core::Result<T> {
    fn into_napi(self) -> napi::Result<T> {
        self.map_err(to_napi)
    }
}

impl<T> IntoNapi<T> for candle_core::Result<T> {
    fn into_napi(self) -> napi::Result<T> {
        self.map_err(candle_to_napi)
    }
}

fn strip_backtrace(error: candle_core::Error) -> candle_core::Error {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => strip_backtrace(*inner),
        other => other,
    }
}
