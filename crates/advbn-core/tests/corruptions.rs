//! ImageNet-C corruptions: shapes and ranges, determinism, severity ordering, names, errors.

use advbn_core::data::corruptions::{corrupt, Corruption};
use advbn_core::data::Image;

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

#[test]
#[ignore]
fn explore() {
    let mut imgs = test_images();
    imgs.push(("224 rgb", synthetic(224, 224, 3)));
    for (label, img) in &imgs {
        println!("== {label}");
        for c in Corruption::ALL {
            let errs: Vec<String> = (1..=5).map(|s| format!("{:.4}", mae(&corrupt(img, c, s, 7).unwrap(), img))).collect();
            println!("{:18} {}", c.name(), errs.join(" "));
        }
    }
    let img = synthetic(224, 224, 3);
    for s in [1u8, 3, 5] {
        let mut tiles = vec![img.clone()];
        tiles.extend(Corruption::ALL.iter().map(|&c| corrupt(&img, c, s, 7).unwrap()));
        let (cols, t) = (5, 224);
        let mut buf = vec![0u8; cols * t * 4 * t * 3];
        for (k, tile) in tiles.iter().enumerate() {
            let (ox, oy) = ((k % cols) * t, (k / cols) * t);
            let bytes = tile.to_u8();
            for y in 0..t {
                for x in 0..t {
                    for ch in 0..3 {
                        buf[((oy + y) * cols * t + ox + x) * 3 + ch] = bytes[(y * t + x) * 3 + ch];
                    }
                }
            }
        }
        image::save_buffer(format!("/tmp/corr_s{s}.png"), &buf, (cols * t) as u32, (4 * t) as u32, image::ExtendedColorType::Rgb8).unwrap();
    }
}
