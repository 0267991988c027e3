//! ImageNet-C corruptions: shapes and ranges, determinism, severity ordering, names, errors.

use advbn_core::data::corruptions::{corrupt, Corruption};
use advbn_core::data::Image;
use advbn_core::Error;

/// A deterministic test picture: smooth colour gradients, a hard vertical edge, a bright
/// disc, a dark square and a thin diagonal line.
fn synthetic(width: usize, height: usize, channels: usize) -> Image {
    let mut data = Vec::with_capacity(width * height * channels);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = (x as f32 / (width - 1) as f32, y as f32 / (height - 1) as f32);
            let mut rgb = [0.15 + 0.6 * u, 0.2 + 0.5 * v, 0.7 - 0.4 * u * v];
            if u > 0.5 {
                rgb = [rgb[0] * 0.6, rgb[1] * 0.8 + 0.15, rgb[2]];
            }
            let (dx, dy) = (u - 0.3, v - 0.35);
            if dx * dx + dy * dy < 0.04 {
                rgb = [0.95, 0.85, 0.3];
            }
            if (0.6..0.85).contains(&u) && (0.55..0.8).contains(&v) {
                rgb = [0.05, 0.1, 0.2];
            }
            if ((u - v).abs()) < 0.02 {
                rgb = [1.0, 1.0, 1.0];
            }
            if channels == 3 {
                data.extend_from_slice(&rgb);
            } else {
                data.push(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
            }
        }
    }
    Image::new(width, height, channels, data).unwrap()
}

fn test_images() -> Vec<(&'static str, Image)> {
    vec![("64x64 rgb", synthetic(64, 64, 3)), ("48x48 gray", synthetic(48, 48, 1)), ("28x28 rgb", synthetic(28, 28, 3))]
}

fn mae(a: &Image, b: &Image) -> f64 {
    a.data.iter().zip(&b.data).map(|(x, y)| f64::from((x - y).abs())).sum::<f64>() / a.data.len() as f64
}

/// Pearson correlation of all values.
fn correlation(a: &Image, b: &Image) -> f64 {
    let n = a.data.len() as f64;
    let mean = |img: &Image| img.data.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.data.iter().zip(&b.data) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn every_corruption_keeps_shape_and_range_and_is_seeded() {
    let mut images = test_images();
    images.push(("30x45 rgb", synthetic(30, 45, 3)));
    images.push(("45x28 gray", synthetic(45, 28, 1)));
    for (label, image) in &images {
        for c in Corruption::ALL {
            for severity in 1..=5 {
                let what = format!("{} severity {severity} on {label}", c.name());
                let out = corrupt(image, c, severity, 11).unwrap();
                assert_eq!((out.width, out.height, out.channels), (image.width, image.height, image.channels), "{what}");
                assert_eq!(out.data.len(), image.data.len(), "{what}");
                assert!(out.data.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{what}: value outside [0, 1]");
                let again = corrupt(image, c, severity, 11).unwrap();
                let bits = |img: &Image| img.data.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
                assert!(bits(&out) == bits(&again), "{what}: same seed, different output");
                let other = corrupt(image, c, severity, 12).unwrap();
                if c.is_random() {
                    assert!(bits(&out) != bits(&other), "{what}: the seed changes nothing");
                } else {
                    assert!(bits(&out) == bits(&other), "{what}: deterministic corruption depends on the seed");
                }
            }
        }
    }
}

/// Severity ordering. The metric is the mean absolute error (MAE) against the original,
/// required to be non-decreasing from severity 1 to 5, allowing ties within 3% (+1e-4):
/// on 28-48 px images neighbouring severities can round to the same integer geometry
/// (e.g. pixelate's `int(48 * 0.6) = 28` vs `int(48 * 0.5) = 24` box grids, or the same
/// defocus disk), so two severities may land a hair apart either way.
///
/// Three reference tables are not monotone in MAE, and get a metric that is:
/// - frost: `c0 * x + c1 * frost` with (c0, c1) = (1, .4) (.8, .6) (.7, .7) (.65, .7) (.6, .75).
///   The frost layer is brighter than the image is dark, so MAE ~ mean(c1 f - (1 - c0) x)
///   *falls* from severity 3 to 4 (c1 stays .7 while c0 drops). What grows is how much the
///   frost hides the picture: 1 - correlation(output, original), monotone in c1 / c0.
/// - saturate: severities 1-2 desaturate (S * .3, S * .1), 3-5 oversaturate (S * 2, 5, 20
///   plus an offset): two scales pointing different ways. MAE grows within each group, and
///   severity 5 is worse than severity 1. (On a gray image there is no saturation to take
///   away: severities 1-3 change nothing and MAE is 0 there.)
/// - elastic_transform: severities 1-2 have large random affine warps (.1 and .2 x 244 px,
///   against .02 for 3-5) and smooth displacement fields, 3-5 small local distortions with
///   a growing alpha (.05, .07, .12) and the same sigma and affine. MAE grows within 1-2
///   (the affine doubles) and within 3-5 (alpha grows; one seed draws the same fields), but
///   severity 2 is much larger than 5 by construction.
#[test]
fn error_grows_with_severity() {
    let non_decreasing = |errors: &[f64], what: &str| {
        for pair in errors.windows(2) {
            assert!(pair[1] >= pair[0] * 0.97 - 1e-4, "{what}: error falls with severity: {errors:?}");
        }
    };
    for (label, image) in test_images() {
        for c in Corruption::ALL {
            let outputs: Vec<Image> = (1..=5).map(|s| corrupt(&image, c, s, 3).unwrap()).collect();
            let errors: Vec<f64> = outputs.iter().map(|out| mae(out, &image)).collect();
            let what = format!("{} on {label}", c.name());
            match c {
                Corruption::Frost => {
                    let hidden: Vec<f64> = outputs.iter().map(|out| 1.0 - correlation(out, &image)).collect();
                    non_decreasing(&hidden, &format!("{what} (1 - correlation)"));
                    assert!(hidden[4] > hidden[0] + 0.05, "{what}: {hidden:?}");
                }
                Corruption::Saturate => {
                    non_decreasing(&errors[..2], &what);
                    non_decreasing(&errors[2..], &what);
                    assert!(errors[4] > errors[0], "{what}: {errors:?}");
                }
                Corruption::ElasticTransform => {
                    non_decreasing(&errors[..2], &what);
                    non_decreasing(&errors[2..], &what);
                    assert!(errors[1] > errors[0] && errors[4] > errors[2], "{what}: {errors:?}");
                }
                _ => {
                    non_decreasing(&errors, &what);
                    assert!(errors[4] > errors[0], "{what}: severity 5 no worse than 1: {errors:?}");
                }
            }
            assert!(errors.iter().all(|&e| e < 0.6), "{what}: {errors:?}");
            assert!(errors[4] > 1e-3, "{what}: severity 5 barely changes the image: {errors:?}");
        }
    }
}

#[test]
fn one_seed_gives_different_corruptions_different_noise() {
    // Gaussian and speckle noise both draw one standard normal per value; if they shared a
    // stream their residuals on a flat image would be perfectly correlated.
    let flat = Image::filled(64, 64, 3, 0.5);
    let gauss = corrupt(&flat, Corruption::GaussianNoise, 1, 5).unwrap();
    let speckle = corrupt(&flat, Corruption::SpeckleNoise, 1, 5).unwrap();
    let r = correlation(&gauss, &speckle);
    assert!(r.abs() < 0.1, "correlation {r}");
}

#[test]
fn names_round_trip_and_lists_are_ordered() {
    let names: Vec<&str> = Corruption::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "gaussian_noise",
            "shot_noise",
            "impulse_noise",
            "defocus_blur",
            "glass_blur",
            "motion_blur",
            "zoom_blur",
            "snow",
            "frost",
            "fog",
            "brightness",
            "contrast",
            "elastic_transform",
            "pixelate",
            "jpeg_compression",
            "speckle_noise",
            "gaussian_blur",
            "spatter",
            "saturate",
        ]
    );
    for c in Corruption::ALL {
        assert_eq!(Corruption::parse(c.name()).unwrap(), c);
        assert_eq!(c.to_string(), c.name());
    }
    assert_eq!(Corruption::ALL[..15], Corruption::BENCHMARK);
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let image = synthetic(32, 32, 3);
    for severity in [0u8, 6, 255] {
        let err = corrupt(&image, Corruption::Fog, severity, 0).unwrap_err();
        assert_eq!(err.option(), Some("severity"), "{err}");
        assert!(err.to_string().contains(&severity.to_string()), "{err}");
    }
    for (w, h) in [(27, 40), (40, 27), (1, 1)] {
        let err = corrupt(&Image::filled(w, h, 1, 0.5), Corruption::GaussianNoise, 1, 0).unwrap_err();
        assert!(matches!(err, Error::InvalidData(_)), "{err}");
        assert!(err.to_string().contains(&format!("{w}x{h}")) && err.to_string().contains("28"), "{err}");
    }
    let err = Corruption::parse("gausian_noise").unwrap_err();
    assert_eq!(err.option(), Some("corruption"));
    let message = err.to_string();
    assert!(message.contains("gausian_noise") && message.contains("expected one of"), "{message}");
    for c in Corruption::ALL {
        assert!(message.contains(c.name()), "{message} lacks {}", c.name());
    }
    let broken = Image { width: 32, height: 32, channels: 3, data: vec![0.5; 10] };
    assert!(matches!(corrupt(&broken, Corruption::Contrast, 1, 0), Err(Error::InvalidData(_))));
    let mut nan = synthetic(32, 32, 1);
    nan.data[5] = f32::NAN;
    assert!(matches!(corrupt(&nan, Corruption::Contrast, 1, 0), Err(Error::InvalidData(_))));
}
