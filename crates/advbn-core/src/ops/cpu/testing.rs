//! Shared by the CPU kernels' unit tests.

use super::simd::{detect, Isa};

/// Deterministic values in [-1, 1), different for each seed (never zeros only).
pub fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len).map(|i| (((i + seed) * 7919) % 2001) as f32 / 1000.0 - 1.0).collect()
}

/// Every instruction set this CPU can run the kernels with (AVX2 too on an AVX-512 CPU).
pub fn isas() -> Vec<Isa> {
    match detect() {
        Some(Isa::Avx512) => vec![Isa::Avx512, Isa::Avx2],
        Some(Isa::Avx2) => vec![Isa::Avx2],
        None => vec![],
    }
}

/// The largest difference relative to max(|reference|, 1).
pub fn worst_relative(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter().zip(want).map(|(a, b)| (*a as f64 - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max)
}

/// The values widened to f64 (the references run in f64).
pub fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}
