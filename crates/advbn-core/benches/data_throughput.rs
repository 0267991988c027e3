//! Images/s of the data pipeline on ~ImageNet-sized JPEGs: decode + RandomResizedCrop(224) +
//! flip + normalise through the loader at 1, 2 and all threads, against a loop that only reads
//! and decodes the same files (the ceiling). Prints a markdown table.
//!
//! cargo bench -p advbn-core --bench data_throughput

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use advbn_core::data::{decode_image, ImageFolder, Loader, LoaderConfig, Pipeline, Source};

const FILES: usize = 200;
const PASSES: usize = 3;

fn make_jpegs(dir: &Path) -> Vec<PathBuf> {
    let class = dir.join("class0");
    std::fs::create_dir_all(&class).unwrap();
    (0..FILES)
        .map(|i| {
            // Smooth gradients plus hashed noise: compresses like a photo (~40-70 KB at quality 75).
            let img = image::RgbImage::from_fn(500, 375, |x, y| {
                let n = (x.wrapping_mul(374_761_393) ^ y.wrapping_mul(668_265_263) ^ (i as u32).wrapping_mul(2_246_822_519)) >> 27;
                image::Rgb([(x / 2 + n) as u8, ((y * 2 / 3) as u8).wrapping_add(i as u8), ((x + y) / 4 + n * 2) as u8])
            });
            let path = class.join(format!("img{i:04}.jpg"));
            img.save(&path).unwrap();
            path
        })
        .collect()
}

fn decode_only(files: &[PathBuf], threads: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..PASSES {
        std::thread::scope(|s| {
            for part in files.chunks(files.len().div_ceil(threads)) {
                s.spawn(move || {
                    for f in part {
                        let bytes = std::fs::read(f).unwrap();
                        std::hint::black_box(decode_image(&bytes, "bench").unwrap());
                    }
                });
            }
        });
    }
    (PASSES * files.len()) as f64 / start.elapsed().as_secs_f64()
}

fn loader(source: &Arc<ImageFolder>, threads: usize) -> f64 {
    let config = LoaderConfig { batch_size: 32, threads, prefetch: 4, pipeline: Arc::new(Pipeline::imagenet_train(224).unwrap()), ..LoaderConfig::default() };
    let loader = Loader::new(source.clone() as Arc<dyn Source>, config).unwrap();
    let start = Instant::now();
    let mut n = 0;
    for epoch in 0..PASSES as u64 {
        for batch in loader.epoch(epoch) {
            n += std::hint::black_box(batch.unwrap()).len();
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("advbn-bench-data-{}", std::process::id()));
    let files = make_jpegs(&dir);
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let source = Arc::new(ImageFolder::new(&dir, None).unwrap());
    decode_only(&files, all); // warm the page cache
    println!("{FILES} JPEGs 500x375, mean {:.1} KB; {PASSES} passes each; {all} cores\n", bytes as f64 / FILES as f64 / 1e3);
    println!("| workload | threads | images/s |");
    println!("|---|---:|---:|");
    println!("| read + decode only (ceiling) | 1 | {:.0} |", decode_only(&files, 1));
    println!("| read + decode only (ceiling) | {all} (all) | {:.0} |", decode_only(&files, all));
    let mut counts = vec![1, 2, all];
    counts.dedup();
    for threads in counts {
        let label = if threads == all { format!("{threads} (all)") } else { threads.to_string() };
        println!("| loader: decode + RandomResizedCrop(224) + flip + normalize, batch 32 | {label} | {:.0} |", loader(&source, threads));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
