//! AugMix: keeps size, channels and the [0, 1] range, a seed fixes every pixel, and each op
//! does what its PIL counterpart does.

use advbn_core::data::augmix::{apply_op, augmix, AugMixConfig, AugOp};
use advbn_core::data::Image;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A textured image: gradients plus noise, so every op changes something.
fn picture(w: usize, h: usize, c: usize, seed: u64) -> Image {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..w * h * c)
        .map(|i| {
            let (p, ch) = (i / c, i % c);
            let (x, y) = ((p % w) as f32 / w as f32, (p / w) as f32 / h as f32);
            (0.2 + 0.5 * (x + y * ch as f32) / 2.0 + rng.gen_range(0.0..0.3)).clamp(0.0, 1.0)
        })
        .collect();
    Image::new(w, h, c, data).unwrap()
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

#[test]
fn augmix_keeps_shape_and_range() {
    for (w, h, c) in [(32, 32, 3), (40, 24, 3), (28, 28, 1)] {
        let image = picture(w, h, c, 1);
        for seed in 0..20 {
            let out = augmix(&image, &mut rng(seed)).unwrap();
            assert_eq!((out.width, out.height, out.channels), (w, h, c));
            assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)), "{w}x{h}x{c}, seed {seed}");
        }
    }
}

#[test]
fn augmix_is_fixed_by_the_seed_and_varies_across_seeds() {
    let image = picture(32, 32, 3, 2);
    assert_eq!(augmix(&image, &mut rng(5)).unwrap(), augmix(&image, &mut rng(5)).unwrap());
    let outputs: Vec<Image> = (0..6).map(|s| augmix(&image, &mut rng(s)).unwrap()).collect();
    for i in 0..outputs.len() {
        for j in i + 1..outputs.len() {
            assert_ne!(outputs[i], outputs[j], "seeds {i} and {j} gave the same image");
        }
    }
    assert!(outputs.iter().any(|o| *o != image));
}

#[test]
fn config_is_the_reference_and_is_validated() {
    assert_eq!(AugMixConfig::default(), AugMixConfig { width: 3, depth: -1, severity: 3, alpha: 1.0 });
    let image = picture(32, 32, 3, 3);
    let cases = [
        (AugMixConfig { width: 0, ..Default::default() }, "augmix.width"),
        (AugMixConfig { severity: 0, ..Default::default() }, "augmix.severity"),
        (AugMixConfig { severity: 11, ..Default::default() }, "augmix.severity"),
        (AugMixConfig { alpha: 0.0, ..Default::default() }, "augmix.alpha"),
        (AugMixConfig { alpha: f64::NAN, ..Default::default() }, "augmix.alpha"),
    ];
    for (config, option) in cases {
        let err = config.apply(&image, &mut rng(0)).unwrap_err();
        assert_eq!(err.option(), Some(option), "{err}");
    }
    // One chain of fixed depth, the widest severity: still a valid image.
    let single = AugMixConfig { width: 1, depth: 2, severity: 10, alpha: 0.5 };
    let out = single.apply(&image, &mut rng(1)).unwrap();
    assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let bad = Image { width: 4, height: 4, channels: 3, data: vec![0.5; 10] };
    assert!(augmix(&bad, &mut rng(0)).is_err());
}

#[test]
fn every_op_keeps_shape_and_range() {
    let image = picture(30, 20, 3, 4);
    for op in AugOp::ALL {
        for seed in 0..5 {
            let out = apply_op(&image, op, 3, &mut rng(seed));
            assert_eq!((out.width, out.height, out.channels), (30, 20, 3), "{op:?}");
            assert!(out.data.iter().all(|v| (0.0..=1.0).contains(v)), "{op:?}");
        }
    }
}

#[test]
fn tone_ops_match_pil() {
    // autocontrast stretches each channel to [0, 1].
    let dim = Image::new(2, 2, 1, vec![0.2, 0.3, 0.4, 0.6]).unwrap();
    let out = apply_op(&dim, AugOp::AutoContrast, 3, &mut rng(0));
    let want = [0.0, 0.25, 0.5, 1.0];
    assert!(out.data.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-6), "{:?}", out.data);
    // A flat plane has nothing to stretch or equalise.
    let flat = Image::filled(4, 4, 1, 100.0 / 255.0);
    assert_eq!(apply_op(&flat, AugOp::AutoContrast, 3, &mut rng(0)), flat);
    assert_eq!(apply_op(&flat, AugOp::Equalize, 3, &mut rng(0)).to_u8(), flat.to_u8());
    // PIL equalize of 512 pixels, half at level 10, half at 20: step = (512 - 256) // 255 = 1,
    // lut[10] = (1 // 2) // 1 = 0, lut[20] = (0 + 256) // 1, capped at 255.
    let two = Image::from_u8(32, 16, 1, &[[10u8; 256], [20u8; 256]].concat()).unwrap();
    let eq = apply_op(&two, AugOp::Equalize, 3, &mut rng(0)).to_u8();
    assert!(eq[..256].iter().all(|&v| v == 0) && eq[256..].iter().all(|&v| v == 255), "{:?}", &eq[250..260]);
    // posterize keeps 3 or 4 bits at severity 3: every level is a multiple of 16.
    let image = picture(16, 16, 3, 5);
    for seed in 0..5 {
        let out = apply_op(&image, AugOp::Posterize, 3, &mut rng(seed));
        assert!(out.to_u8().iter().all(|v| v % 16 == 0), "seed {seed}");
    }
    // solarize inverts only bright values (threshold >= 180 at severity 3).
    let ramp = Image::from_u8(256, 1, 1, &(0..=255).collect::<Vec<u8>>()).unwrap();
    let out = apply_op(&ramp, AugOp::Solarize, 3, &mut rng(2)).to_u8();
    assert_eq!(&out[..180], &ramp.to_u8()[..180]);
    assert_eq!(out[255], 0);
}

#[test]
fn geometric_ops_move_content_and_fill_black() {
    let white = Image::filled(30, 30, 1, 1.0);
    // Translation by t whole pixels: t black columns on one side, white elsewhere.
    let out = apply_op(&white, AugOp::TranslateX, 3, &mut rng(0));
    let column = |x: usize| (0..30).map(|y| out.get(x, y, 0)).sum::<f32>() / 30.0;
    let black = (0..30).filter(|&x| column(x) == 0.0).count();
    let lit = (0..30).filter(|&x| column(x) == 1.0).count();
    assert!(black >= 1 && black + lit == 30, "black {black}, white {lit}");
    assert!(column(0) == 0.0 || column(29) == 0.0, "the black band sits at an edge");
    // Rotation about the centre: the centre stays, corners go black (|angle| >= 1 degree).
    for seed in 0..4 {
        let out = apply_op(&white, AugOp::Rotate, 3, &mut rng(seed));
        assert!((out.get(15, 15, 0) - 1.0).abs() < 1e-6);
        let corners = [out.get(0, 0, 0), out.get(29, 0, 0), out.get(0, 29, 0), out.get(29, 29, 0)];
        assert!(corners.iter().any(|&v| v < 1.0), "seed {seed}: {corners:?}");
    }
    // Shear along x about the top-left origin: row 0 is unchanged.
    let image = picture(24, 24, 3, 6);
    let out = apply_op(&image, AugOp::ShearX, 3, &mut rng(1));
    let row0 = |img: &Image| img.data[..24 * 3].to_vec();
    let diff = row0(&out).iter().zip(row0(&image)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff < 0.1, "row 0 moved by {diff}");
    assert_ne!(out, image);
}
