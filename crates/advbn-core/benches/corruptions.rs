//! Timing of every corruption at every severity on a 224x224 RGB image, one thread.
//! `cargo bench -p advbn-core --bench corruptions` prints a markdown table: the median over
//! the runs at each severity, and the worst of those medians.

use std::hint::black_box;
use std::time::Instant;

use advbn_core::data::corruptions::{corrupt, Corruption};
use advbn_core::data::Image;

const SIZE: usize = 224;
const RUNS: usize = 15;
const BUDGET_MS: f64 = 50.0;

/// Smooth gradients, an edge and a disc (content barely matters for timing, except for
/// JPEG and shot noise, which depend on it mildly).
fn synthetic() -> Image {
    let mut data = Vec::with_capacity(SIZE * SIZE * 3);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (u, v) = (x as f32 / SIZE as f32, y as f32 / SIZE as f32);
            let disc = ((u - 0.3).powi(2) + (v - 0.35).powi(2) < 0.04) as u8 as f32;
            let edge = if u > 0.5 { 0.2 } else { 0.0 };
            data.extend_from_slice(&[0.15 + 0.6 * u + 0.2 * disc, 0.2 + 0.5 * v - edge, 0.7 - 0.4 * u * v + 0.2 * disc]);
        }
    }
    Image::new(SIZE, SIZE, 3, data).unwrap().clamp01()
}

fn median_ms(image: &Image, c: Corruption, severity: u8) -> f64 {
    black_box(corrupt(image, c, severity, 0).unwrap());
    let mut times: Vec<f64> = (0..RUNS)
        .map(|run| {
            let start = Instant::now();
            black_box(corrupt(black_box(image), c, severity, run as u64).unwrap());
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let image = synthetic();
    println!("{SIZE}x{SIZE} RGB, median of {RUNS} runs per severity, ms, one thread\n");
    println!("| corruption | s1 | s2 | s3 | s4 | s5 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut over = Vec::new();
    for c in Corruption::ALL {
        let ms: Vec<f64> = (1..=5).map(|s| median_ms(&image, c, s)).collect();
        let max = ms.iter().copied().fold(0.0, f64::max);
        let cells: Vec<String> = ms.iter().map(|m| format!("{m:.2}")).collect();
        println!("| {} | {} | {max:.2} |", c.name(), cells.join(" | "));
        if max > BUDGET_MS {
            over.push(c.name());
        }
    }
    if over.is_empty() {
        println!("\nall under {BUDGET_MS} ms");
    } else {
        println!("\nOVER {BUDGET_MS} ms: {}", over.join(", "));
    }
}
