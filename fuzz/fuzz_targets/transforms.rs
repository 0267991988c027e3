//! The transforms after decoding, on small images with parameters the input chooses. Must
//! return Ok or an error naming the transform, never panic.
#![no_main]

use advbn_core::data::{Image, Pipeline, Transform};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (w, h, c) = (data[0] as usize % 40 + 1, data[1] as usize % 40 + 1, [1, 3][data[2] as usize % 2]);
    let image = Image::filled(w, h, c, data[3] as f32 / 255.0);
    let side = |b: u8| b as usize % 70;
    let frac = |b: u8| b as f64 / 128.0 - 0.1;
    let transforms: Vec<Transform> = data[4..]
        .chunks(3)
        .take(6)
        .map(|t| {
            let (a, b) = (t.get(1).copied().unwrap_or(0), t.get(2).copied().unwrap_or(0));
            match t[0] % 8 {
                0 => Transform::Resize(side(a), side(b)),
                1 => Transform::ResizeShorter(side(a)),
                2 => Transform::CenterCrop(side(a)),
                3 => Transform::RandomResizedCrop { size: side(a), scale: (frac(a), frac(b)), ratio: (frac(b), frac(a) * 3.0) },
                4 => Transform::HorizontalFlip(frac(a)),
                5 => Transform::Grayscale(b as usize % 4),
                6 => Transform::ToRgb,
                _ => Transform::random_resized_crop(side(a)),
            }
        })
        .collect();
    if let Ok(pipeline) = Pipeline::new(transforms, None) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(data[3]));
        if let Ok(out) = pipeline.apply(image, &mut rng) {
            assert!(out.data.iter().all(|v| v.is_finite()), "a transform produced a non-finite pixel");
        }
    }
});
