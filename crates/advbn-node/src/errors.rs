//! The one place failures become JavaScript errors. A [`Failure`] keeps what the core error
//! knows (its stable `code`, the option at fault, the rejected value) and becomes, at the border,
//! a JS `Error` with those as own properties: `src/native.ts` picks the exported error class by
//! `err.code` and copies `option` and `value`, with no message parsing.
//!
//! Synchronous entry points take napi's `Env` and run their body through [`sync`]; async ones
//! implement [`Work`] and are handed to JavaScript as `AsyncTask<Typed<_>>` (see [`task`]), which
//! holds the failure from `compute` (a libuv thread, no JS access) until `reject` can build it.

use std::any::Any;

use advbn_core::Error;
use napi::bindgen_prelude::{AsyncTask, Either, Env, JsObjectValue, Task, ToNapiValue, TypeName};
use napi::{JsValue, Status};

/// A failure on its way to JavaScript.
#[derive(Debug)]
pub struct Failure {
    /// Stable code, e.g. `ADVBN_INVALID_OPTION` (the TypeScript error classes mirror them).
    pub code: &'static str,
    pub message: String,
    /// The option at fault (`InvalidOption` only), e.g. `advbn.steps`.
    pub option: Option<String>,
    /// The rejected value as the core printed it (`InvalidOption` only).
    pub value: Option<String>,
}

/// The result of the binding's own code: a [`Failure`] on error.
pub type Outcome<T> = std::result::Result<T, Failure>;

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), option: None, value: None }
    }

    /// Use of a handle after `dispose()`.
    pub fn disposed(what: &str) -> Self {
        Self::new("ADVBN_DISPOSED", format!("this {what} was disposed and can no longer be used"))
    }

    /// A call that must wait for another one in flight on the same object.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new("ADVBN_BUSY", message)
    }

    /// A Rust panic caught at the border: reported, never allowed to abort Node.
    pub fn panic(payload: Box<dyn Any + Send>) -> Self {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_string());
        match CONTAINED_AT.with(|at| at.take()) {
            Some(at) => Self::new("ADVBN_PANIC", format!("native code panicked at {at}: {text}")),
            None => Self::new("ADVBN_PANIC", format!("native code panicked: {text}")),
        }
    }

    /// The JS `Error` with `code`, and `option` / `value` when known. Should building it fail
    /// (the environment tearing down), a plain error that still names the code.
    pub fn into_js(self, env: &Env) -> napi::Error {
        let fallback = format!("[{}] {}", self.code, self.message);
        let build = || -> napi::Result<napi::Error> {
            let mut error = env.create_error(napi::Error::new(Status::GenericFailure, self.message.as_str()))?;
            error.set_named_property("code", self.code)?;
            if let Some(option) = &self.option {
                error.set_named_property("option", option.as_str())?;
            }
            if let Some(value) = &self.value {
                match js_value(value) {
                    Either::A(number) => error.set_named_property("value", number)?,
                    Either::B(text) => error.set_named_property("value", text)?,
                }
            }
            Ok(napi::Error::from(error.to_unknown()))
        };
        build().unwrap_or_else(|_| napi::Error::from_reason(fallback))
    }
}

/// The core prints a rejected value with `Display` (numbers) or `Debug` (strings, quoted):
/// numbers become JS numbers (`advbn.steps` = 5000, not "5000"), a quoted string its text.
fn js_value(printed: &str) -> Either<f64, String> {
    if let Ok(number) = printed.parse::<f64>() {
        if number.is_finite() {
            return Either::A(number);
        }
    }
    match printed.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => Either::B(inner.replace("\\\"", "\"").replace("\\\\", "\\")),
        None => Either::B(printed.to_string()),
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        // Users get the message; Candle's captured backtraces are noise at this border.
        let error = match error {
            Error::Candle(e) => Error::Candle(strip_backtrace(e)),
            other => other,
        };
        let (option, value) = match &error {
            Error::InvalidOption { option, value, .. } => (Some(option.clone()), Some(value.clone())),
            _ => (None, None),
        };
        Self { code: error.code(), message: error.to_string(), option, value }
    }
}

impl From<candle_core::Error> for Failure {
    fn from(error: candle_core::Error) -> Self {
        Error::Candle(error).into()
    }
}

fn strip_backtrace(error: candle_core::Error) -> candle_core::Error {
    match error {
        candle_core::Error::WithBacktrace { inner, .. } => strip_backtrace(*inner),
        other => other,
    }
}

thread_local! {
    /// How many `catch_panics` scopes this thread is inside.
    static CONTAINING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Where the last contained panic happened, for its `Failure`.
    static CONTAINED_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic inside `catch_panics` becomes a JS error carrying its message and location, so the
/// default hook's report (and backtrace, with RUST_BACKTRACE set) on stderr is left out; any
/// other panic is reported as before. ADVBN_DEBUG_PANICS=1 reports every panic.
fn quiet_contained_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let report = std::panic::take_hook();
        let debug = std::env::var_os("ADVBN_DEBUG_PANICS").is_some_and(|v| v != "0");
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINING.with(|c| c.get()) > 0 && !debug {
                let at = info.location().map(|l| format!("{}:{}", l.file(), l.line()));
                CONTAINED_AT.with(|slot| *slot.borrow_mut() = at);
            } else {
                report(info);
            }
        }));
    });
}

/// Runs `f` with panics caught.
pub fn catch_panics<T>(f: impl FnOnce() -> Outcome<T>) -> Outcome<T> {
    quiet_contained_panics();
    CONTAINING.with(|c| c.set(c.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINING.with(|c| c.set(c.get() - 1));
    result.unwrap_or_else(|payload| Err(Failure::panic(payload)))
}

/// The body of a synchronous entry point: panics caught, a failure thrown as its typed JS error.
pub fn sync<T>(env: &Env, f: impl FnOnce() -> Outcome<T>) -> napi::Result<T> {
    catch_panics(f).map_err(|failure| failure.into_js(env))
}

/// The work of an async entry point: `compute` off the JS thread, `resolve` on it.
pub trait Work: Send + Sized {
    type Output: Send + Sized + 'static;
    type JsValue: ToNapiValue + TypeName;

    fn compute(&mut self) -> Outcome<Self::Output>;

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue>;
}

/// A [`Work`] as a napi task whose rejection is the typed JS error.
pub struct Typed<W> {
    work: W,
    failure: Option<Failure>,
}

/// Hands `work` to JavaScript as a promise.
pub fn task<W: Work>(work: W) -> AsyncTask<Typed<W>> {
    AsyncTask::new(Typed { work, failure: None })
}

impl<W: Work> Task for Typed<W> {
    type Output = W::Output;
    type JsValue = W::JsValue;

    fn compute(&mut self) -> napi::Result<W::Output> {
        let work = &mut self.work;
        catch_panics(|| work.compute()).map_err(|failure| {
            let error = napi::Error::from_reason(failure.message.clone());
            self.failure = Some(failure);
            error
        })
    }

    fn resolve(&mut self, env: Env, output: W::Output) -> napi::Result<W::JsValue> {
        self.work.resolve(env, output)
    }

    fn reject(&mut self, env: Env, error: napi::Error) -> napi::Result<W::JsValue> {
        Err(self.failure.take().map_or(error, |failure| failure.into_js(&env)))
    }
}
