//! Corruption-benchmark metrics against values computed by hand (the Python that computed the
//! longer ones is quoted next to them).

use advbn_core::data::corruptions::Corruption;
use advbn_core::eval::metrics::{
    alexnet_errors, corruption_error, mean_corruption_error, relative_corruption_error, relative_mce, top1_error, CorruptionErrors, ALEXNET_CLEAN_ERROR,
    ALEXNET_MEAN_ERRORS,
};

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() < 1e-9
}

/// Every benchmark corruption with the same errors per severity.
fn uniform(errors: [f64; 5]) -> CorruptionErrors {
    Corruption::BENCHMARK.iter().map(|&c| (c, errors)).collect()
}

#[test]
fn top1_error_counts_misses() {
    assert!(close(top1_error(75, 100).unwrap(), 0.25));
    assert!(close(top1_error(0, 8).unwrap(), 1.0));
    assert!(top1_error(0, 0).is_err());
    assert!(top1_error(9, 8).is_err());
}

#[test]
fn corruption_errors_by_hand() {
    // CE = (0.1 + 0.2 + 0.3 + 0.4 + 0.5) / (0.2 + 0.3 + 0.4 + 0.5 + 0.6) = 1.5 / 2.0
    let model = [0.1, 0.2, 0.3, 0.4, 0.5];
    let base = [0.2, 0.3, 0.4, 0.5, 0.6];
    assert!(close(corruption_error(&model, &base).unwrap(), 0.75));
    // relative CE with clean errors 0.05 and 0.1: (1.5 - 5 * 0.05) / (2.0 - 5 * 0.1) = 1.25 / 1.5
    assert!(close(relative_corruption_error(&model, 0.05, &base, 0.1).unwrap(), 1.25 / 1.5));
    // A model whose error does not rise with corruption has relative CE 0.
    assert!(close(relative_corruption_error(&[0.3; 5], 0.3, &base, 0.1).unwrap(), 0.0));
}

#[test]
fn alexnet_normalisation_matches_the_published_table() {
    assert_eq!(ALEXNET_MEAN_ERRORS.len(), 15);
    assert_eq!(ALEXNET_CLEAN_ERROR, 0.4348);
    let alexnet = alexnet_errors();
    assert_eq!(alexnet[&Corruption::GaussianNoise], [0.886428; 5]);
    assert_eq!(alexnet[&Corruption::JpegCompression], [0.6065; 5]);
    // AlexNet against itself: mCE 1, relative mCE 1.
    assert!(close(mean_corruption_error(&alexnet, &alexnet).unwrap(), 1.0));
    assert!(close(relative_mce(&alexnet, ALEXNET_CLEAN_ERROR, &alexnet, ALEXNET_CLEAN_ERROR).unwrap(), 1.0));

    // One corruption: errors summing to 2.0 over severities on gaussian noise give
    // CE = 2.0 / (5 * 0.886428)  (python: 2.0 / (5 * .886428) = 0.4512492836417622).
    let gaussian = [0.2, 0.3, 0.4, 0.5, 0.6];
    let ce = corruption_error(&gaussian, &alexnet[&Corruption::GaussianNoise]).unwrap();
    assert!(close(ce, 0.4512492836417622), "{ce}");

    // A model with errors .3 .4 .5 .6 .7 (mean .5) on every corruption and clean error .2:
    //   a = {published means};  mCE = sum(0.5 / v for v in a.values()) / 15 = 0.6467257299919341
    //   relative mCE = sum(1.5 / (5 * (v - .4348)) for v in a.values()) / 15 = 0.9768514706058171
    let model = uniform([0.3, 0.4, 0.5, 0.6, 0.7]);
    let mce = mean_corruption_error(&model, &alexnet).unwrap();
    assert!(close(mce, 0.6467257299919341), "{mce}");
    let rel = relative_mce(&model, 0.2, &alexnet, ALEXNET_CLEAN_ERROR).unwrap();
    assert!(close(rel, 0.9768514706058171), "{rel}");
}

#[test]
fn extra_corruptions_do_not_count() {
    let base = uniform([0.5; 5]);
    let mut model = uniform([0.25; 5]);
    model.insert(Corruption::Spatter, [1.0; 5]);
    model.insert(Corruption::Saturate, [1.0; 5]);
    assert!(close(mean_corruption_error(&model, &base).unwrap(), 0.5));
}

#[test]
fn missing_corruptions_are_named() {
    let mut model = uniform([0.3; 5]);
    model.remove(&Corruption::Snow);
    model.remove(&Corruption::Frost);
    let err = mean_corruption_error(&model, &alexnet_errors()).unwrap_err().to_string();
    assert!(err.contains("model") && err.contains("snow") && err.contains("frost"), "{err}");
    assert!(!err.contains("fog"), "{err}");
    let mut base = alexnet_errors();
    base.remove(&Corruption::Pixelate);
    let err = relative_mce(&uniform([0.3; 5]), 0.1, &base, ALEXNET_CLEAN_ERROR).unwrap_err().to_string();
    assert!(err.contains("baseline") && err.contains("pixelate"), "{err}");
}

#[test]
fn undefined_ratios_are_errors_not_nan() {
    // A baseline that never errs: CE has no denominator.
    let err = corruption_error(&[0.1; 5], &[0.0; 5]).unwrap_err().to_string();
    assert!(err.contains("undefined"), "{err}");
    // A baseline no worse under corruption than clean: relative CE has no (positive) denominator.
    let mut base = uniform([0.6; 5]);
    base.insert(Corruption::Fog, [0.3; 5]);
    let err = relative_mce(&uniform([0.5; 5]), 0.1, &base, 0.3).unwrap_err().to_string();
    assert!(err.contains("fog") && err.contains("undefined"), "{err}");
    // Percentages instead of fractions, and NaN, are rejected.
    assert!(corruption_error(&[30.0; 5], &[0.5; 5]).is_err());
    assert!(corruption_error(&[f64::NAN; 5], &[0.5; 5]).is_err());
    assert!(relative_corruption_error(&[0.3; 5], 12.0, &[0.5; 5], 0.1).is_err());
}
