//! `ColorJitter` and `RandomRotation` (torchvision's definitions): what each adjustment keeps
//! and changes, exact rotations by right angles, and seeded draws.

use advbn_core::data::jitter::{color_jitter, rotate, ColorJitter};
use advbn_core::data::transforms::sample_rng;
use advbn_core::data::{Image, Pipeline, Transform};

fn ramp(w: usize, h: usize, c: usize) -> Image {
    let data = (0..w * h * c).map(|i| 0.1 + 0.8 * (i as f32 / (w * h * c) as f32)).collect();
    Image { width: w, height: h, channels: c, data }
}

fn none() -> ColorJitter {
    ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0, hue: 0.0 }
}

#[test]
fn each_adjustment_does_what_torchvision_defines() {
    let image = ramp(6, 5, 3);
    let mut rng = sample_rng(1, 0, 0);
    assert_eq!(color_jitter(image.clone(), &none(), &mut rng).data, image.data, "nothing asked, nothing changed");
    // Brightness: one factor in [0.5, 1.5] for every value (clamped at 1).
    let out = color_jitter(image.clone(), &ColorJitter { brightness: 0.5, ..none() }, &mut rng);
    let f = out.data[0] / image.data[0];
    assert!((0.5..=1.5).contains(&f), "{f}");
    for (o, i) in out.data.iter().zip(&image.data) {
        assert!((o - (i * f).min(1.0)).abs() < 1e-5);
    }
    // Contrast blends with the mean gray: without clamping the mean gray stays.
    let mean_gray = |im: &Image| im.data.chunks_exact(3).map(|p| 0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2]).sum::<f32>() / 30.0;
    let out = color_jitter(image.clone(), &ColorJitter { contrast: 0.3, ..none() }, &mut rng);
    assert!((mean_gray(&out) - mean_gray(&image)).abs() < 1e-4);
    // Saturation and hue leave gray pixels and 1-channel images alone.
    let gray = Image { width: 2, height: 2, channels: 3, data: vec![0.3, 0.3, 0.3, 0.7, 0.7, 0.7, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1] };
    let out = color_jitter(gray.clone(), &ColorJitter { saturation: 0.9, hue: 0.5, ..none() }, &mut rng);
    // (torchvision's weights sum to 0.9999: a gray pixel moves by at most 1e-4 of its value)
    assert!(out.data.iter().zip(&gray.data).all(|(a, b)| (a - b).abs() < 2e-4));
    let one = ramp(4, 4, 1);
    assert_eq!(color_jitter(one.clone(), &ColorJitter { saturation: 0.9, hue: 0.5, ..none() }, &mut rng).data, one.data);
    // Hue turns the colour but keeps value (max channel) and saturation.
    let red = Image { width: 1, height: 1, channels: 3, data: vec![0.8, 0.2, 0.2] };
    let out = color_jitter(red.clone(), &ColorJitter { hue: 0.5, ..none() }, &mut rng);
    let (max, min) = (out.data.iter().cloned().fold(0.0, f32::max), out.data.iter().cloned().fold(1.0, f32::min));
    assert!((max - 0.8).abs() < 1e-5 && (min - 0.2).abs() < 1e-5, "{:?}", out.data);
}

#[test]
fn right_angle_rotations_are_exact() {
    let image = ramp(3, 3, 1);
    let at = |im: &Image, x: usize, y: usize| im.data[y * im.width + x];
    assert_eq!(rotate(&image, 0.0).data, image.data);
    // 90 degrees counter-clockwise: the top-right corner goes to the top-left.
    let r = rotate(&image, 90.0);
    for y in 0..3 {
        for x in 0..3 {
            assert_eq!(at(&r, x, y), at(&image, 2 - y, x), "({x}, {y})");
        }
    }
    let half = rotate(&image, 180.0);
    for y in 0..3 {
        for x in 0..3 {
            assert_eq!(at(&half, x, y), at(&image, 2 - x, 2 - y));
        }
    }
    // A non-square image keeps its size; uncovered pixels are 0.
    let wide = rotate(&ramp(6, 2, 3), 90.0);
    assert_eq!((wide.width, wide.height), (6, 2));
    assert!(wide.data.contains(&0.0));
}

#[test]
fn draws_come_from_the_sample_stream_and_bad_strengths_are_refused() {
    let pipeline = Pipeline::new(
        vec![Transform::ColorJitter(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }), Transform::RandomRotation(30.0)],
        None,
    )
    .unwrap();
    let run = |sample: u32| pipeline.apply(ramp(8, 8, 3), &mut sample_rng(7, 0, sample)).unwrap().data;
    assert_eq!(run(3), run(3), "same seed, epoch and sample: same pixels");
    assert_ne!(run(3), run(4));
    let err = Pipeline::new(vec![Transform::ColorJitter(ColorJitter { hue: 0.6, ..none() })], None).unwrap_err().to_string();
    assert!(err.contains("transforms[0].hue") && err.contains("[0, 0.5]"), "{err}");
    let err = Pipeline::new(vec![Transform::RandomRotation(-1.0)], None).unwrap_err().to_string();
    assert!(err.contains("transforms[0].degrees"), "{err}");
}
