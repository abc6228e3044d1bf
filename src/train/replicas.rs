//! Data-parallel steps: a step's batch is a fixed sequence of micro-batches; each rayon thread
//! runs micro-batches through its own replica (workspace, labels, augmented images) into its own
//! gradient buffer, and the buffers are then summed in micro-batch order, so the result does not
//! depend on the thread count or timing.

use crate::data::augment::{Augment, Visit};
use crate::data::dataset::Dataset;
use crate::nn::loss::{BatchScore, softmax_cross_entropy};
use crate::nn::model::{Model, Workspace};
use crate::seed::mix_seed;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Samples per micro-batch: a step is the fixed sequence of its batch's micro-batches of this
/// size (the last may be shorter), whatever the thread count. Batch norm normalises each
/// micro-batch by its own statistics.
pub const MICRO_BATCH: usize = 32;

/// What every micro-batch of one step shares.
#[derive(Clone, Copy)]
pub(super) struct StepSettings {
    /// Gradient scale (1 / batch size, for a mean loss).
    pub(super) scale: f32,
    /// Seed of the step; a micro-batch's dropout and augmentation seed mixes in its index.
    pub(super) seed: u64,
    /// Augmentation to apply.
    pub(super) augment: Augment,
    /// The epoch and the run's seed for flip orientations (an alternating flip's [`Visit`]).
    pub(super) visit: Visit,
    /// Label smoothing of the targets.
    pub(super) smoothing: f32,
}

/// One thread's buffers: the activations of one micro-batch and its labels and augmented image.
pub(super) struct Replica {
    pub(super) ws: Workspace,
    pub(super) labels: Vec<u16>,
    pub(super) augmented: Vec<u8>,
}

/// The results of one micro-batch, kept apart until they are summed in micro-batch order.
pub(super) struct MicroResult {
    /// Gradient of the batch-mean loss over this micro-batch's samples.
    pub(super) grads: Vec<f32>,
    /// Batch statistics of this micro-batch (batch-norm models only; see `Model::state_len`).
    pub(super) state: Vec<f32>,
    /// Loss and correct predictions.
    pub(super) score: BatchScore,
}

impl Replica {
    /// Forward and backward over micro-batch number `m` (`indices`) of a step, leaving its
    /// gradient, statistics and score in `out`. Its randomness derives from the step's seed and
    /// `m` only.
    pub(super) fn run(
        &mut self,
        model: &Model,
        data: &Dataset,
        indices: &[u32],
        m: usize,
        step: StepSettings,
        out: &mut MicroResult,
    ) {
        let seed = mix_seed(step.seed, m as u64);
        for (k, &i) in indices.iter().enumerate() {
            let mut image = data.image(i as usize);
            if !step.augment.is_off() {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, k as u64 | 1 << 40));
                let visit = Visit { image: i, ..step.visit };
                step.augment.apply(image, &mut self.augmented, data.shape(), visit, &mut rng);
                image = &self.augmented;
            }
            self.ws.load_image(k, image);
        }
        self.labels.clear();
        self.labels.extend(indices.iter().map(|&i| data.labels[i as usize]));
        let n = indices.len();
        model.forward(&mut self.ws, n, true, seed);
        if !out.state.is_empty() {
            out.state.fill(0.0);
            model.accumulate_state(&self.ws, n, &mut out.state);
        }
        let (logits, dlogits) = self.ws.logits_and_grad(n, model.classes());
        let classes = model.classes();
        out.score = softmax_cross_entropy(logits, &self.labels, classes, step.smoothing, step.scale, dlogits);
        out.grads.fill(0.0);
        model.backward(&mut self.ws, n, &mut out.grads);
    }
}

/// Sums the `field` of every result into the first, in micro-batch order (in parallel over
/// blocks of values, each block summed in that order).
pub(super) fn reduce_in_order(results: &mut [MicroResult], field: fn(&mut MicroResult) -> &mut Vec<f32>) {
    const BLOCK: usize = 8192;
    let (first, rest) = results.split_first_mut().expect("at least one micro-batch");
    let rest: Vec<&[f32]> = rest.iter_mut().map(|r| &field(r)[..]).collect();
    field(first).par_chunks_mut(BLOCK).enumerate().for_each(|(b, chunk)| {
        for r in &rest {
            chunk.iter_mut().zip(&r[b * BLOCK..]).for_each(|(g, o)| *g += o);
        }
    });
}
