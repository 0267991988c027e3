//! Which samples a subset or a split keeps: seeded, and the same on any machine and thread count.
//! The datasets themselves (`ArrayDataset::select`, `sources::Subset`) only apply the indices.

use crate::data::epoch_order;
use crate::error::{Error, Result};

/// Streams of the seeded shuffles below, apart from the epoch streams of `epoch_order`.
const SUBSET_STREAM: u64 = 1 << 40;
const SPLIT_STREAM: u64 = 2 << 40;

/// `limit` samples of `0..len` drawn without replacement (all of them when `limit >= len`),
/// in ascending order.
pub fn random_subset(len: usize, limit: usize, seed: u64) -> Vec<u32> {
    let mut picked = epoch_order(len, true, seed, SUBSET_STREAM);
    picked.truncate(limit);
    picked.sort_unstable();
    picked
}

/// Splits the samples, class by class, into parts of the given fractions (which must be > 0 and
/// sum to 1): each class's samples are shuffled (seeded) and apportioned by largest remainder, so
/// every part gets each class in about its fraction. Each part lists its indices in ascending
/// order. A part that would be empty is an error naming it.
pub fn stratified_split(labels: &[u32], fractions: &[f64], seed: u64) -> Result<Vec<Vec<u32>>> {
    if fractions.len() < 2 {
        return Err(Error::invalid_option("fractions", format!("{fractions:?}"), "needs at least two fractions"));
    }
    if let Some((at, f)) = fractions.iter().enumerate().find(|(_, f)| !(f.is_finite() && **f > 0.0)) {
        return Err(Error::invalid_option(&format!("fractions[{at}]"), f, "every fraction must be a number > 0"));
    }
    let total: f64 = fractions.iter().sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(Error::invalid_option("fractions", format!("{fractions:?}"), format!("must sum to 1 (they sum to {total})")));
    }
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, &label) in labels.iter().enumerate() {
        by_class[label as usize].push(i as u32);
    }
    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); fractions.len()];
    for (class, members) in by_class.iter().enumerate() {
        let order = epoch_order(members.len(), true, seed, SPLIT_STREAM + class as u64);
        let counts = apportion(members.len(), fractions, class);
        let mut next = order.iter().map(|&k| members[k as usize]);
        for (part, &count) in parts.iter_mut().zip(&counts) {
            part.extend(next.by_ref().take(count));
        }
    }
    for (at, part) in parts.iter_mut().enumerate() {
        if part.is_empty() {
            return Err(Error::invalid_data(format!("split: part {at} (fraction {}) would get no samples out of {}", fractions[at], labels.len())));
        }
        part.sort_unstable();
    }
    Ok(parts)
}

/// `n` items shared out by `fractions`: floors first, then one more each to the largest
/// remainders; ties go round-robin from `rotate` so that no part wins every tie of every class.
fn apportion(n: usize, fractions: &[f64], rotate: usize) -> Vec<usize> {
    let k = fractions.len();
    let exact: Vec<f64> = fractions.iter().map(|f| f * n as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let left = n.saturating_sub(counts.iter().sum());
    let mut by_remainder: Vec<usize> = (0..k).collect();
    by_remainder.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(((a + k - rotate % k) % k).cmp(&((b + k - rotate % k) % k)))
    });
    for &part in by_remainder.iter().take(left) {
        counts[part] += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_is_seeded_sorted_and_clamped() {
        let a = random_subset(100, 10, 3);
        assert_eq!(a, random_subset(100, 10, 3));
        assert_ne!(a, random_subset(100, 10, 4));
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(random_subset(5, 50, 0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn split_is_stratified_disjoint_and_complete() {
        // 3 classes of 50, 30 and 20 samples, interleaved.
        let labels: Vec<u32> = (0..100)
            .map(|i| {
                if i % 2 == 0 {
                    0
                } else if i % 5 < 3 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let parts = stratified_split(&labels, &[0.8, 0.2], 7).unwrap();
        let mut all: Vec<u32> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<u32>>());
        for class in 0..3u32 {
            let n = labels.iter().filter(|&&l| l == class).count() as f64;
            let in_val = parts[1].iter().filter(|&&i| labels[i as usize] == class).count() as f64;
            assert!((in_val - 0.2 * n).abs() <= 1.0, "class {class}: {in_val} of {n} in the 0.2 part");
        }
        assert_eq!(parts, stratified_split(&labels, &[0.8, 0.2], 7).unwrap());
        assert_ne!(parts, stratified_split(&labels, &[0.8, 0.2], 8).unwrap());
    }

    #[test]
    fn split_refuses_bad_fractions_and_empty_parts() {
        let labels = vec![0u32, 1, 0, 1];
        for (fractions, says) in [
            (vec![1.0], "at least two"),
            (vec![0.5, 0.6], "sum to 1"),
            (vec![1.5, -0.5], "fractions[1]"),
            (vec![0.5, f64::NAN, 0.5], "fractions[1]"),
            (vec![0.97, 0.01, 0.01, 0.01], "part 1"),
        ] {
            let err = stratified_split(&labels, &fractions, 0).unwrap_err().to_string();
            assert!(err.contains(says), "{fractions:?}: {err}");
        }
    }

    #[test]
    fn apportion_gives_out_exactly_n() {
        for n in 0..40 {
            for fractions in [[0.5, 0.5, 0.0], [0.7, 0.2, 0.1], [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]] {
                let counts = apportion(n, &fractions, n);
                assert_eq!(counts.iter().sum::<usize>(), n, "{n} {fractions:?}");
            }
        }
    }
}
