//! Corruption metrics (CE, mCE, relative mCE) from per-severity error tables.

use std::collections::HashMap;

use advbn_core::data::corruptions::Corruption;
use advbn_core::eval::metrics::{corruption_error, mean_corruption_error, relative_corruption_error, relative_mce, CorruptionErrors};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::sync;

/** Top-1 errors of one model: clean, and per corruption the 5 severities (fractions). */
#[napi(object)]
pub struct ErrorTable {
    pub clean: f64,
    pub corruptions: HashMap<String, Vec<f64>>,
}

/** CE and relative CE of one corruption; `relativeCe` is absent when the baseline's errors
 * under it do not exceed its clean error (the ratio is undefined). */
#[napi(object)]
pub struct CorruptionScore {
    #[napi(js_name = "CE")]
    pub ce: f64,
    #[napi(js_name = "relativeCE")]
    pub relative_ce: Option<f64>,
}

#[napi(object)]
pub struct CorruptionMetrics {
    #[napi(js_name = "mCE")]
    pub m_ce: f64,
    /** Absent when some corruption's relative CE is undefined (see `perCorruption`). */
    #[napi(js_name = "relativeMCE")]
    pub relative_m_ce: Option<f64>,
    pub per_corruption: HashMap<String, CorruptionScore>,
}

fn table(errors: &ErrorTable) -> advbn_core::Result<CorruptionErrors> {
    let mut out = CorruptionErrors::new();
    for (name, values) in &errors.corruptions {
        let corruption = Corruption::parse(name)?;
        let values: [f64; 5] = values
            .as_slice()
            .try_into()
            .map_err(|_| advbn_core::Error::invalid_data(format!("{name}: expected 5 errors (severities 1..5), got {}", values.len())))?;
        out.insert(corruption, values);
    }
    Ok(out)
}

/// mCE and relative mCE of `model` against `baseline` over the 15 benchmark corruptions.
#[napi]
pub fn corruption_metrics(env: Env, model: ErrorTable, baseline: ErrorTable) -> Result<CorruptionMetrics> {
    sync(&env, || {
        let (m, b) = (table(&model)?, table(&baseline)?);
        let m_ce = mean_corruption_error(&m, &b)?;
        let relative_m_ce = relative_mce(&m, model.clean, &b, baseline.clean).ok();
        let mut per_corruption = HashMap::new();
        for c in Corruption::BENCHMARK {
            let (mc, bc) = (&m[&c], &b[&c]);
            per_corruption.insert(
                c.name().to_string(),
                CorruptionScore { ce: corruption_error(mc, bc)?, relative_ce: relative_corruption_error(mc, model.clean, bc, baseline.clean).ok() },
            );
        }
        Ok(CorruptionMetrics { m_ce, relative_m_ce, per_corruption })
    })
}

/// Names of the 15 benchmark corruptions, in the ImageNet-C order.
#[napi]
pub fn benchmark_corruptions() -> Vec<String> {
    Corruption::BENCHMARK.iter().map(|c| c.name().to_string()).collect()
}
