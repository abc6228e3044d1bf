//! The training loop: per-epoch shuffling, data-parallel steps (`replicas`), the optimiser
//! update, validation and early stopping after each epoch.

use crate::data::augment::Visit;
use crate::data::batch::Batcher;
use crate::data::dataset::Dataset;
use crate::model_dir::EpochStats;
use crate::nn::infer::{INFERENCE_BATCH, Predictor};
use crate::nn::loss::BatchScore;
use crate::nn::model::Model;
use crate::optim::{Optimizer, OptimizerState};
use crate::seed::mix_seed;
use crate::train::config::TrainConfig;
use crate::train::metrics::Evaluation;
use crate::train::replicas::{MICRO_BATCH, MicroResult, Replica, StepSettings, reduce_in_order};
use crate::train::state::{FitEnd, RunState, TrainObserver};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A model being trained with its optimiser and per-thread replicas.
pub struct Trainer<'a> {
    model: &'a mut Model,
    optimizer: Box<dyn Optimizer>,
    replicas: Vec<Replica>,
    micro: Vec<MicroResult>,
    config: TrainConfig,
    state: RunState,
    best_params: Option<Vec<f32>>,
    kernels: Vec<std::ops::Range<usize>>,
    /// Optimiser steps taken so far in the run.
    updates: usize,
}

impl<'a> Trainer<'a> {
    /// Prepares to train `model` (already initialised) with `config`.
    pub fn new(model: &'a mut Model, config: TrainConfig) -> Trainer<'a> {
        // Training changes the float weights; an int8 form made from them would be stale.
        model.set_int8(None);
        let micro_batches = config.batch_size.div_ceil(MICRO_BATCH).max(1);
        let threads = rayon::current_num_threads().clamp(1, micro_batches);
        let capacity = config.batch_size.clamp(1, MICRO_BATCH);
        let replicas = (0..threads)
            .map(|_| Replica {
                ws: model.workspace(capacity),
                labels: Vec::with_capacity(capacity),
                augmented: vec![0; model.input_size()],
            })
            .collect();
        let micro = (0..micro_batches)
            .map(|_| MicroResult {
                grads: vec![0.0; model.params.len()],
                state: vec![0.0; model.state_len()],
                score: BatchScore::default(),
            })
            .collect();
        let optimizer = config.optimizer.build(&model.params);
        let kernels =
            model.tensors().into_iter().filter(|(name, _, _)| name.ends_with(".kernel")).map(|(_, _, r)| r).collect();
        let state = RunState { epoch: 1, ..Default::default() };
        Trainer { model, optimizer, replicas, micro, config, state, best_params: None, kernels, updates: 0 }
    }

    /// One optimiser step on the samples `batch` of `data`: its micro-batches are shared out to
    /// the threads in contiguous runs, and their gradients and statistics summed in micro-batch
    /// order, so the result does not depend on the number of threads.
    pub fn step(&mut self, data: &Dataset, batch: &[u32], seed: u64) -> BatchScore {
        let micro: Vec<&[u32]> = batch.chunks(MICRO_BATCH).collect();
        assert!(micro.len() <= self.micro.len(), "batch of {} exceeds the configured batch size", batch.len());
        let used = &mut self.micro[..micro.len()];
        let per = micro.len().div_ceil(self.replicas.len());
        let shared = StepSettings {
            scale: 1.0 / batch.len() as f32,
            seed,
            augment: self.config.augment,
            visit: Visit { seed: mix_seed(self.config.seed, 2), image: 0, epoch: self.state.epoch },
            smoothing: self.config.label_smoothing,
        };
        let model = &*self.model;
        self.replicas.par_iter_mut().zip(used.par_chunks_mut(per)).enumerate().for_each(|(t, (r, outs))| {
            for (j, out) in outs.iter_mut().enumerate() {
                let m = t * per + j;
                r.run(model, data, micro[m], m, shared, out);
            }
        });
        let score = used.iter().map(|r| r.score).sum();
        reduce_in_order(used, |r| &mut r.grads);
        if !used[0].state.is_empty() {
            reduce_in_order(used, |r| &mut r.state);
            self.model.update_state(&used[0].state, micro.len(), self.updates);
        }
        let (params, grads, opt) = (&mut self.model.params, &mut self.micro[0].grads, &self.config.optimizer);
        opt.add_l2_gradient(params, grads, &self.kernels);
        self.optimizer.step(params, grads);
        opt.decay_weights(params, self.optimizer.learning_rate(), &self.kernels);
        self.updates += 1;
        score
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Where the run stands.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The model being trained.
    pub fn model(&self) -> &Model {
        self.model
    }

    /// Everything a checkpoint needs: run state, optimiser state and the best weights so far.
    pub fn snapshot(&self) -> (RunState, OptimizerState, Option<&[f32]>) {
        (self.state.clone(), self.optimizer.state(), self.best_params.as_deref())
    }

    /// Continues from a checkpoint's run state, optimiser state and best weights.
    pub fn resume(&mut self, state: RunState, optimizer: OptimizerState, best: Option<Vec<f32>>) -> crate::Result<()> {
        self.optimizer.restore(optimizer)?;
        self.state = state;
        self.best_params = best;
        Ok(())
    }

    /// Trains until the configured epochs are done, early stopping ends the run, or `interrupt`
    /// is raised (checked between steps). `on_epoch` runs after every epoch, e.g. to checkpoint.
    pub fn fit(
        &mut self,
        train: &Dataset,
        val: &Dataset,
        observer: &mut dyn TrainObserver,
        interrupt: &AtomicBool,
        on_epoch: &mut dyn FnMut(&Trainer) -> crate::Result<()>,
    ) -> crate::Result<FitEnd> {
        let mut batcher = Batcher::new(train.len(), self.config.batch_size, mix_seed(self.config.seed, 1));
        while self.state.epoch <= self.config.epochs && !self.state.stopped_early {
            let epoch = self.state.epoch;
            let started = Instant::now();
            observer.epoch_started(epoch, batcher.batches_per_epoch());
            let batches: Vec<Vec<u32>> = batcher.epoch(epoch).map(<[u32]>::to_vec).collect();
            let (steps, first_step, seen_before) = (batches.len() as f64, self.state.step, self.state.seen);
            for (step, batch) in batches.iter().enumerate().skip(first_step) {
                if interrupt.load(Ordering::Relaxed) {
                    return Ok(FitEnd::Interrupted);
                }
                let progress = (epoch - 1) as f64 + step as f64 / steps;
                let lr = self.config.schedule.rate(self.config.optimizer.lr, progress, self.config.epochs as f64);
                self.optimizer.set_learning_rate(lr);
                self.updates = (epoch - 1) * batches.len() + step;
                let s = self.step(train, batch, mix_seed(self.config.seed, ((epoch as u64) << 32) | step as u64));
                let st = &mut self.state;
                (st.loss_sum, st.correct, st.seen, st.step) =
                    (st.loss_sum + s.loss_sum, st.correct + s.correct, st.seen + batch.len(), step + 1);
                observer.step_done(st.loss_sum / st.seen as f64, st.correct as f64 / st.seen as f64);
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let eval = evaluate(self.model, val);
            let st = &self.state;
            let stats = EpochStats {
                epoch,
                loss: st.loss_sum / st.seen.max(1) as f64,
                accuracy: st.correct as f64 / st.seen.max(1) as f64,
                val_loss: eval.loss,
                val_accuracy: eval.accuracy,
                lr: self.optimizer.learning_rate(),
                seconds: started.elapsed().as_secs_f64(),
                images_per_second: (st.seen - seen_before) as f64 / train_seconds,
            };
            observer.epoch_done(&stats, &eval);
            self.finish_epoch(stats);
            on_epoch(self)?;
        }
        if let (Some(es), Some(best)) = (self.config.early_stopping, &self.best_params)
            && es.restore_best
        {
            self.model.params.copy_from_slice(best);
        }
        Ok(if self.state.stopped_early { FitEnd::StoppedEarly } else { FitEnd::Completed })
    }

    /// Records an epoch, tracks the best one and decides on early stopping.
    fn finish_epoch(&mut self, stats: EpochStats) {
        let st = &mut self.state;
        if let Some(es) = self.config.early_stopping {
            let best_score = st.best_epoch.map(|b| es.monitor.score(&st.history[b - 1]));
            if best_score.is_none_or(|best| es.monitor.score(&stats) > best + es.min_delta) {
                st.best_epoch = Some(stats.epoch);
                if es.restore_best {
                    self.best_params = Some(self.model.params.clone());
                }
            }
            st.stopped_early = stats.epoch - st.best_epoch.unwrap_or(stats.epoch) >= es.patience;
        }
        st.history.push(stats);
        (st.epoch, st.step, st.loss_sum, st.correct, st.seen) = (st.epoch + 1, 0, 0.0, 0, 0);
    }
}

/// Evaluates `model` on `data` (inference mode) with generic class names `0..k`.
pub fn evaluate(model: &Model, data: &Dataset) -> Evaluation {
    let names: Vec<String> = (0..model.classes()).map(|i| i.to_string()).collect();
    evaluate_named(model, data, &names, false)
}

/// Evaluates `model` on `data` with the given class names, optionally with test-time
/// augmentation (averaging each image with its mirror image).
pub fn evaluate_named(model: &Model, data: &Dataset, names: &[String], tta: bool) -> Evaluation {
    Evaluation::from_probabilities(&probabilities(model, data, tta), &data.labels, names)
}

/// Class probabilities of every image of `data` (rows of the class count), optionally with
/// test-time augmentation.
pub fn probabilities(model: &Model, data: &Dataset, tta: bool) -> Vec<f32> {
    let mut predictor = Predictor::new(model, INFERENCE_BATCH);
    if tta { predictor.probabilities_tta(&data.images) } else { predictor.probabilities(&data.images) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alternating_flip_shows_each_image_the_other_way_in_the_next_epoch() {
        use crate::data::augment::Augment;
        use crate::nn::spec::ModelSpec;
        use rand::{RngExt, SeedableRng};
        use rand_chacha::ChaCha8Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let images: Vec<u8> = (0..64 * 784).map(|_| rng.random()).collect();
        let mirrored = crate::nn::infer::mirror(&images, 28, 1);
        let labels: Vec<u16> = (0..64).map(|i| i % 10).collect();
        let augment = Augment { flip: true, alternate: true, ..Default::default() };
        let config = TrainConfig { batch_size: 64, augment, ..Default::default() };
        let after_one_step = |images: &[u8], epoch| {
            let data = Dataset::fashion(images.to_vec(), labels.clone(), 28, 28).unwrap();
            let mut model = Model::initialised(ModelSpec::seed(), 10, 1).unwrap();
            let mut trainer = Trainer::new(&mut model, config.clone());
            trainer.state.epoch = epoch;
            trainer.step(&data, &(0..64).collect::<Vec<u32>>(), 9);
            model.params
        };
        let first = after_one_step(&images, 1);
        assert!(after_one_step(&mirrored, 2) == first, "epoch 2 of the mirrored images must see epoch 1's");
        assert!(after_one_step(&images, 2) != first, "epoch 2 must show the images the other way");
    }
}
