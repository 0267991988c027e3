//! Corruption-benchmark metrics (Hendrycks & Dietterich, ICLR 2019), on top-1 error rates
//! given as fractions in [0, 1]:
//! - CE_c = sum_s E_model(c, s) / sum_s E_base(c, s); mCE = mean of CE_c over the 15 benchmark
//!   corruptions.
//! - relative CE_c = sum_s (E_model(c, s) - E_model_clean) / sum_s (E_base(c, s) - E_base_clean);
//!   relative mCE = its mean over the 15.
//!
//! The baseline is AlexNet for ImageNet-C (`alexnet_errors`) and a model the user names
//! elsewhere (e.g. the same net before fine-tuning). Results are fractions too: 0.727, not 72.7.

use std::collections::HashMap;

use crate::data::corruptions::Corruption;
use crate::error::{Error, Result};

/// Top-1 error at severities 1..=5 of each corruption.
pub type CorruptionErrors = HashMap<Corruption, [f64; 5]>;

/// AlexNet's ImageNet-C top-1 error of each benchmark corruption, averaged over severities,
/// the normalisation of the published mCE.
pub const ALEXNET_MEAN_ERRORS: [(Corruption, f64); 15] = [
    (Corruption::GaussianNoise, 0.886428),
    (Corruption::ShotNoise, 0.894468),
    (Corruption::ImpulseNoise, 0.922640),
    (Corruption::DefocusBlur, 0.819880),
    (Corruption::GlassBlur, 0.826268),
    (Corruption::MotionBlur, 0.785948),
    (Corruption::ZoomBlur, 0.798360),
    (Corruption::Snow, 0.866816),
    (Corruption::Frost, 0.826572),
    (Corruption::Fog, 0.819324),
    (Corruption::Brightness, 0.564592),
    (Corruption::Contrast, 0.853204),
    (Corruption::ElasticTransform, 0.646056),
    (Corruption::Pixelate, 0.717840),
    (Corruption::JpegCompression, 0.606500),
];

/// AlexNet's clean ImageNet top-1 error, the baseline clean error of relative mCE.
pub const ALEXNET_CLEAN_ERROR: f64 = 0.4348;

/// AlexNet as a baseline table: each severity holds the corruption's average. Both metrics
/// only ever sum a baseline over the 5 severities, and 5 copies of the average have the
/// published sum, so this reproduces the published normalisation exactly.
pub fn alexnet_errors() -> CorruptionErrors {
    ALEXNET_MEAN_ERRORS.iter().map(|&(c, e)| (c, [e; 5])).collect()
}

/// Top-1 error of `correct` hits out of `count`.
pub fn top1_error(correct: usize, count: usize) -> Result<f64> {
    if count == 0 || correct > count {
        return Err(Error::invalid_data(format!("top-1 error of {correct} correct out of {count}: need 0 <= correct <= count, count > 0")));
    }
    Ok(1.0 - correct as f64 / count as f64)
}

/// CE of one corruption: the model's summed error over severities relative to the baseline's.
pub fn corruption_error(model: &[f64; 5], baseline: &[f64; 5]) -> Result<f64> {
    check_rates("model", model)?;
    check_rates("baseline", baseline)?;
    let base: f64 = baseline.iter().sum();
    if base == 0.0 {
        return Err(Error::invalid_data("corruption error is undefined: the baseline makes no mistake at any severity"));
    }
    Ok(model.iter().sum::<f64>() / base)
}

/// Relative CE of one corruption: how much the model's error rises above its clean error,
/// relative to the baseline's rise. A baseline whose error does not rise in total (a sum of
/// rises <= 0) makes the ratio meaningless, so that is an error rather than a NaN or a flip
/// of sign.
pub fn relative_corruption_error(model: &[f64; 5], model_clean: f64, baseline: &[f64; 5], baseline_clean: f64) -> Result<f64> {
    check_rates("model", model)?;
    check_rates("baseline", baseline)?;
    check_rates("model clean", &[model_clean])?;
    check_rates("baseline clean", &[baseline_clean])?;
    let rise = |errors: &[f64; 5], clean: f64| errors.iter().map(|e| e - clean).sum::<f64>();
    let base_rise = rise(baseline, baseline_clean);
    if base_rise <= 0.0 {
        return Err(Error::invalid_data(format!(
            "relative corruption error is undefined: the baseline's corrupted errors {baseline:?} do not \
             rise above its clean error {baseline_clean} (sum of rises {base_rise})"
        )));
    }
    Ok(rise(model, model_clean) / base_rise)
}

/// mCE: mean CE over the 15 benchmark corruptions (`Corruption::BENCHMARK`); entries for the
/// 4 extra corruptions are ignored.
pub fn mean_corruption_error(model: &CorruptionErrors, baseline: &CorruptionErrors) -> Result<f64> {
    mean_over_benchmark(model, baseline, |c, m, b| corruption_error(m, b).map_err(|e| about(c, e)))
}

/// Relative mCE: mean relative CE over the 15 benchmark corruptions.
pub fn relative_mce(model: &CorruptionErrors, model_clean: f64, baseline: &CorruptionErrors, baseline_clean: f64) -> Result<f64> {
    mean_over_benchmark(model, baseline, |c, m, b| relative_corruption_error(m, model_clean, b, baseline_clean).map_err(|e| about(c, e)))
}

/// Averages `metric` over the benchmark corruptions after checking both tables have all of
/// them; a missing one is reported with every other missing one, by name.
fn mean_over_benchmark(model: &CorruptionErrors, baseline: &CorruptionErrors, metric: impl Fn(Corruption, &[f64; 5], &[f64; 5]) -> Result<f64>) -> Result<f64> {
    for (who, table) in [("model", model), ("baseline", baseline)] {
        let missing: Vec<&str> = Corruption::BENCHMARK.iter().filter(|c| !table.contains_key(c)).map(|c| c.name()).collect();
        if !missing.is_empty() {
            return Err(Error::invalid_data(format!("{who} errors lack benchmark corruptions: {}", missing.join(", "))));
        }
    }
    let total = Corruption::BENCHMARK.iter().map(|&c| metric(c, &model[&c], &baseline[&c])).sum::<Result<f64>>()?;
    Ok(total / Corruption::BENCHMARK.len() as f64)
}

/// Error rates must be fractions: this also catches percentages passed by mistake.
fn check_rates(who: &str, rates: &[f64]) -> Result<()> {
    match rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
        Some(bad) => Err(Error::invalid_data(format!("{who} error rate {bad} is not a fraction in [0, 1]"))),
        None => Ok(()),
    }
}

/// Prefixes an error with the corruption it concerns.
fn about(corruption: Corruption, e: Error) -> Error {
    Error::invalid_data(format!("{corruption}: {e}"))
}
