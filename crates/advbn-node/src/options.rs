//! The core's option rules (defaults and ranges of the numeric options) and name lists, for
//! TypeScript to read or check its literal types against instead of keeping its own copy.

use advbn_core::options::{NumberRule, ALL};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::sync;

/** One numeric option: its default and range, as the core checks it. */
#[napi(object)]
pub struct OptionRule {
    /** Unique key, `<entry>.<option>` (e.g. `fineTune.advbn.steps`). */
    pub key: String,
    /** Dotted option name as users write it (e.g. `advbn.steps`). */
    pub name: String,
    pub default: Option<f64>,
    pub min: Option<f64>,
    pub min_exclusive: bool,
    pub max: Option<f64>,
    pub max_exclusive: bool,
    pub integer: bool,
    /** What a valid value is, in words (e.g. "an integer in 0..=1000"). */
    pub requirement: String,
}

impl From<&NumberRule> for OptionRule {
    fn from(r: &NumberRule) -> Self {
        OptionRule {
            key: r.key.to_string(),
            name: r.name.to_string(),
            default: r.default,
            min: r.min,
            min_exclusive: r.min_exclusive,
            max: r.max,
            max_exclusive: r.max_exclusive,
            integer: r.integer,
            requirement: r.requirement(),
        }
    }
}

/// Every numeric option's rule.
#[napi]
pub fn option_rules() -> Vec<OptionRule> {
    ALL.iter().map(OptionRule::from).collect()
}

/// The fine-tune method names the core knows (`Method::NAMES`), for TypeScript's literal list to
/// be checked against.
#[napi]
pub fn method_names() -> Vec<String> {
    advbn_core::train::Method::NAMES.iter().map(|n| n.to_string()).collect()
}

/// The digit domains the core renders, in the benchmark's order.
#[napi]
pub fn digit_domains() -> Vec<String> {
    advbn_core::data::digits::DigitDomain::ALL.iter().map(|d| d.name().to_string()).collect()
}

/// Whether `value` satisfies the rule `key`.
#[napi]
pub fn option_accepts(env: Env, key: String, value: f64) -> Result<bool> {
    sync(&env, || match ALL.iter().find(|r| r.key == key) {
        Some(rule) => Ok(rule.accepts(value)),
        None => Err(advbn_core::Error::invalid_option("key", format!("{key:?}"), "is not an option rule").into()),
    })
}
