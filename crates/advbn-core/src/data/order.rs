//! Seeded sample order: the same seed and epoch give the same order on any machine.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Indices 0..len, shuffled with a stream derived from (seed, epoch) when `shuffle` is set.
pub fn epoch_order(len: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch);
        order.shuffle(&mut rng);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_seeded_permutation() {
        let a = epoch_order(100, true, 7, 3);
        assert_eq!(a, epoch_order(100, true, 7, 3));
        assert_ne!(a, epoch_order(100, true, 7, 4));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, epoch_order(100, false, 7, 3));
    }
}
