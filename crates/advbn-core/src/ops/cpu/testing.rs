//! Shared by the CPU kernels' unit tests.

use super::cache::with_l1_budget;
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

/// Asserts that `run` gives the same bits whatever the L1 budget (so wherever channel blocks end):
/// one channel per block, 4, 16 and 24 KB blocks, and one block of every channel.
pub fn assert_l1_budget_changes_no_bit(label: &str, run: impl Fn() -> Vec<f32>) {
    let bits = |bytes: usize| with_l1_budget(bytes, || run().iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    let whole = bits(1 << 40);
    for bytes in [1, 4 << 10, 16 << 10, 24 << 10] {
        let got = bits(bytes);
        let differing = got.iter().zip(&whole).filter(|(a, b)| a != b).count();
        assert!(got.len() == whole.len() && differing == 0, "{label}: {differing} values differ with a {bytes}-byte L1 budget");
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

/// The "same" correlation of x [n][c][h][w] with w [o][c][k][k] (k = 2 pad + 1) in f32, each
/// output one chain of fused multiply-adds over the channels, then the kernel rows, then the
/// columns, padding taps included (as zeros): the order every direct kernel sums in, so its
/// outputs must match these bit for bit.
pub fn fma_chain_reference(x: &[f32], wt: &[f32], (n, c, h, w): (usize, usize, usize, usize), o: usize, k: usize) -> Vec<f32> {
    let pad = (k - 1) / 2;
    let mut want = vec![0f32; n * o * h * w];
    for (q, out) in want.iter_mut().enumerate() {
        let (b, oc, oy, ox) = (q / (o * h * w), (q / (h * w)) % o, (q / w) % h, q % w);
        let mut acc = 0f32;
        for ci in 0..c {
            for i in 0..k {
                for j in 0..k {
                    let (iy, ix) = ((oy + i) as isize - pad as isize, (ox + j) as isize - pad as isize);
                    let inside = (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                    let v = if inside { x[((b * c + ci) * h + iy as usize) * w + ix as usize] } else { 0.0 };
                    acc = v.mul_add(wt[((oc * c + ci) * k + i) * k + j], acc);
                }
            }
        }
        *out = acc;
    }
    want
}
