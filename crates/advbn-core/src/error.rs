//! One error type for the core. Each variant carries a stable code so the binding can hand
//! JavaScript a typed error without parsing prose.

use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option has a value outside its domain. Names the option and the value.
    #[error("option `{option}` = {value} is invalid: {reason}")]
    InvalidOption { option: String, value: String, reason: String },
    /// Input data is malformed (shape, NaN/inf, labels out of range, ...).
    #[error("{0}")]
    InvalidData(String),
    /// The loss became NaN or infinite; nothing was updated by that step.
    #[error("training diverged: the loss is {loss} at epoch {epoch}, step {step} (this step updated nothing; earlier checkpoints are intact)")]
    Diverged { epoch: usize, step: usize, loss: f64 },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// A numeric failure inside Candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn invalid_option(option: &str, value: impl fmt::Display, reason: impl Into<String>) -> Self {
        Error::InvalidOption { option: option.to_string(), value: value.to_string(), reason: reason.into() }
    }

    pub fn invalid_data(msg: impl Into<String>) -> Self {
        Error::InvalidData(msg.into())
    }

    /// Stable machine-readable code (mirrored by the TypeScript error classes).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidOption { .. } => "ADVBN_INVALID_OPTION",
            Error::InvalidData(_) => "ADVBN_INVALID_DATA",
            Error::Diverged { .. } => "ADVBN_DIVERGED",
            Error::Device(_) => "ADVBN_DEVICE",
            Error::Candle(_) => "ADVBN_NATIVE",
        }
    }

    /// The option at fault, if any.
    pub fn option(&self) -> Option<&str> {
        match self {
            Error::InvalidOption { option, .. } => Some(option),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `value` is finite and satisfies `ok`, else an `InvalidOption` naming it.
pub fn check_option(option: &str, value: f64, ok: bool, requirement: &str) -> Result<()> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::invalid_option(option, value, requirement))
    }
}

/// A seed that arrived as a JavaScript number, checked by the `SEED` rule (an `InvalidOption`
/// naming `option`).
pub fn seed_from_f64(option: &str, value: f64) -> Result<u64> {
    crate::options::SEED.check_as(option, value).map(|v| v as u64)
}
