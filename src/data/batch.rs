//! Mini-batch order: a seeded permutation of the sample indices per epoch, cut into batches.

use crate::seed::mix_seed;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Shuffles sample indices each epoch and yields them in batches.
pub struct Batcher {
    order: Vec<u32>,
    batch_size: usize,
    seed: u64,
}

impl Batcher {
    /// Batches of `batch_size` over `samples` indices, shuffled from `seed`.
    pub fn new(samples: usize, batch_size: usize, seed: u64) -> Batcher {
        Batcher { order: (0..samples as u32).collect(), batch_size: batch_size.max(1), seed }
    }

    /// Number of batches per epoch (the last may be short).
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Shuffles for `epoch` (a pure function of seed and epoch) and returns the batches.
    pub fn epoch(&mut self, epoch: usize) -> std::slice::Chunks<'_, u32> {
        self.order.sort_unstable();
        self.order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(self.seed, epoch as u64)));
        self.order.chunks(self.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_once_per_epoch_in_a_new_order() {
        let mut b = Batcher::new(103, 10, 1);
        assert_eq!(b.batches_per_epoch(), 11);
        let first: Vec<u32> = b.epoch(0).flatten().copied().collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..103).collect::<Vec<_>>());
        let second: Vec<u32> = b.epoch(1).flatten().copied().collect();
        assert_ne!(first, second);
        let again: Vec<u32> = b.epoch(0).flatten().copied().collect();
        assert_eq!(first, again);
    }
}
