//! Corruption metrics (CE, mCE, relative mCE) from per-severity error tables.

use std::collections::HashMap;

use advbn_core::data::corruptions::Corruption;
use advbn_core::eval::metrics::{
    alexnet_errors as alexnet_table, corruption_error, mean_corruption_error, relative_corruption_error, relative_mce, CorruptionErrors, ALEXNET_CLEAN_ERROR,
};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::sync;

/** Top-1 errors of one model: clean, and per corruption the 5 severities (fractions). */
#[napi(object)]
pub struct ErrorTable {
    pub clean: f64,
    pub corruptions: HashMap<String, Vec<f64>>,
}

/** CE and relative CE of one corruption; each is absent when undefined: CE when the baseline
 * makes no mistake at any severity, relative CE when the baseline's errors under it do not
 * exceed its clean error. */
#[napi(object)]
pub struct CorruptionScore {
    #[napi(js_name = "CE")]
    pub ce: Option<f64>,
    #[napi(js_name = "relativeCE")]
    pub relative_ce: Option<f64>,
}

#[napi(object)]
pub struct CorruptionMetrics {
    /** Mean CE over the 15 benchmark corruptions; absent when the model's table lacks one of them or a CE is undefined (`mCEReason` says which). */
    #[napi(js_name = "mCE")]
    pub m_ce: Option<f64>,
    #[napi(js_name = "mCEReason")]
    pub m_ce_reason: Option<String>,
    /** Absent like `mCE`, or when some corruption's relative CE is undefined (`relativeMCEReason` says why). */
    #[napi(js_name = "relativeMCE")]
    pub relative_m_ce: Option<f64>,
    #[napi(js_name = "relativeMCEReason")]
    pub relative_m_ce_reason: Option<String>,
    /** CE and relative CE of every corruption in the model's table. */
    pub per_corruption: HashMap<String, CorruptionScore>,
}

fn table(who: &str, errors: &ErrorTable) -> advbn_core::Result<CorruptionErrors> {
    let fraction = |what: String, e: f64| {
        if (0.0..=1.0).contains(&e) {
            Ok(e)
        } else {
            Err(advbn_core::Error::invalid_data(format!("{who} {what} error {e} is not a fraction in [0, 1]")))
        }
    };
    fraction("clean".into(), errors.clean)?;
    let mut out = CorruptionErrors::new();
    for (name, values) in &errors.corruptions {
        let corruption = Corruption::parse(name)?;
        let values: [f64; 5] = values
            .as_slice()
            .try_into()
            .map_err(|_| advbn_core::Error::invalid_data(format!("{who} {name}: expected 5 errors (severities 1..5), got {}", values.len())))?;
        for e in values {
            fraction(name.clone(), e)?;
        }
        out.insert(corruption, values);
    }
    Ok(out)
}

/// CE and relative CE of every corruption of `model` against `baseline` (which must have each of
/// them), and mCE and relative mCE over the 15 benchmark corruptions when `model` has them all.
#[napi]
pub fn corruption_metrics(env: Env, model: ErrorTable, baseline: ErrorTable) -> Result<CorruptionMetrics> {
    sync(&env, || {
        let (m, b) = (table("model", &model)?, table("baseline", &baseline)?);
        let mut lacking: Vec<&str> = m.keys().filter(|c| !b.contains_key(c)).map(|c| c.name()).collect();
        if !lacking.is_empty() {
            lacking.sort_unstable();
            return Err(advbn_core::Error::invalid_data(format!("the baseline has no errors for {}", lacking.join(", "))).into());
        }
        let mut per_corruption = HashMap::new();
        for (c, mc) in &m {
            let bc = &b[c];
            per_corruption.insert(
                c.name().to_string(),
                CorruptionScore { ce: corruption_error(mc, bc).ok(), relative_ce: relative_corruption_error(mc, model.clean, bc, baseline.clean).ok() },
            );
        }
        let missing: Vec<&str> = Corruption::BENCHMARK.iter().filter(|c| !m.contains_key(c)).map(|c| c.name()).collect();
        let (m_ce, m_ce_reason, relative_m_ce, relative_m_ce_reason) = if missing.is_empty() {
            let (ce, rel) = (mean_corruption_error(&m, &b), relative_mce(&m, model.clean, &b, baseline.clean));
            let (ce_reason, rel_reason) = (ce.as_ref().err().map(ToString::to_string), rel.as_ref().err().map(ToString::to_string));
            (ce.ok(), ce_reason, rel.ok(), rel_reason)
        } else {
            let reason = format!("mCE is the mean over the 15 benchmark corruptions; these were not evaluated: {}", missing.join(", "));
            (None, Some(reason.clone()), None, Some(reason))
        };
        Ok(CorruptionMetrics { m_ce, m_ce_reason, relative_m_ce, relative_m_ce_reason, per_corruption })
    })
}

/// ImageNet-C's AlexNet errors (Hendrycks & Dietterich, 2019) as a baseline table: clean, and per
/// benchmark corruption its published average at each severity (the sums the metrics take are
/// the published ones).
#[napi]
pub fn alexnet_errors() -> ErrorTable {
    let corruptions = alexnet_table().into_iter().map(|(c, e)| (c.name().to_string(), e.to_vec())).collect();
    ErrorTable { clean: ALEXNET_CLEAN_ERROR, corruptions }
}

/// Names of the 15 benchmark corruptions, in the ImageNet-C order.
#[napi]
pub fn benchmark_corruptions() -> Vec<String> {
    Corruption::BENCHMARK.iter().map(|c| c.name().to_string()).collect()
}
