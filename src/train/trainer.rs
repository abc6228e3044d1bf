//! The training loop: per-epoch shuffling, data-parallel steps (each rayon thread runs a
//! contiguous part of the batch through its own workspace into its own gradient buffer; the
//! buffers are then summed in a fixed order, so results do not depend on thread timing), the
//! optimiser update, and validation after each epoch.

use crate::data::augment::{Augment, Visit};
use crate::data::batch::Batcher;
use crate::data::dataset::Dataset;
use crate::nn::infer::{INFERENCE_BATCH, Predictor};
use crate::nn::loss::{BatchScore, softmax_cross_entropy};
use crate::nn::model::{Model, Workspace};
use crate::optim::config::OptimizerConfig;
use crate::optim::schedule::Schedule;
use crate::optim::{Optimizer, OptimizerState};
use crate::seed::mix_seed;
use crate::train::metrics::Evaluation;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Settings of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch_size: usize,
    /// Optimiser settings (its `lr` is the schedule's base rate).
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Augmentation of training images.
    pub augment: Augment,
    /// Label smoothing ε: the targets are (1 − ε)·one-hot + ε/K.
    #[serde(default)]
    pub label_smoothing: f32,
    /// Stop when validation stops improving.
    pub early_stopping: Option<EarlyStopping>,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// The seed notebook's recipe: 10 epochs of Adam (Keras defaults) at batch 64 with a cosine
    /// decay, no augmentation, no early stopping, seed 1.
    fn default() -> TrainConfig {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            optimizer: OptimizerConfig::default(),
            schedule: Schedule::Cosine { warmup: 0.0 },
            augment: Augment::default(),
            label_smoothing: 0.0,
            early_stopping: None,
            seed: 1,
        }
    }
}

impl TrainConfig {
    /// The settings as the flags that set them, e.g. `--epochs 14 --batch-size 64 --optimizer adam
    /// --lr 0.002 --schedule cosine --augment flip --label-smoothing 0.1`.
    pub fn flags(&self) -> String {
        let o = &self.optimizer;
        let mut flags = format!(
            "--epochs {} --batch-size {} --optimizer {} --lr {} --schedule {} --augment {}",
            self.epochs, self.batch_size, o.kind, o.lr, self.schedule, self.augment
        );
        for (name, value) in [
            ("momentum", o.momentum),
            ("l2", o.l2),
            ("weight-decay", o.weight_decay),
            ("label-smoothing", self.label_smoothing),
        ] {
            if value != 0.0 {
                flags.push_str(&format!(" --{name} {value}"));
            }
        }
        if o.nesterov {
            flags.push_str(" --nesterov");
        }
        if let Some(lookahead) = o.lookahead {
            flags.push_str(&format!(" --lookahead {lookahead}"));
        }
        flags.push_str(&format!(" --seed {}", self.seed));
        flags
    }

    /// Checks that the settings can train: at least one epoch and one image per step, a positive
    /// finite learning rate, finite non-negative momentum and penalties, a lookahead that returns
    /// every K ≥ 1 steps by 0 < ALPHA ≤ 1.
    pub fn validate(&self) -> crate::Result<()> {
        let invalid = |m: String| Err(crate::Error::Invalid(m));
        let o = &self.optimizer;
        if self.epochs == 0 {
            return invalid("--epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return invalid("--batch-size must be at least 1".into());
        }
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            return invalid(format!("--lr must be a positive number, got {}", o.lr));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return invalid(format!("--label-smoothing must be in [0, 1), got {}", self.label_smoothing));
        }
        for (name, v) in [("momentum", o.momentum), ("l2", o.l2), ("weight-decay", o.weight_decay)] {
            if !(v >= 0.0 && v.is_finite()) {
                return invalid(format!("--{name} must be a non-negative number, got {v}"));
            }
        }
        if let Some(l) = o.lookahead.filter(|l| !l.is_valid()) {
            return invalid(format!("--lookahead must be K:ALPHA with K ≥ 1 and 0 < ALPHA ≤ 1, got {l}"));
        }
        Ok(())
    }
}

/// The validation metric early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    /// Validation loss, lower is better.
    ValLoss,
    /// Validation accuracy, higher is better.
    ValAccuracy,
}

impl std::str::FromStr for Monitor {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Monitor> {
        match s {
            "val-loss" => Ok(Monitor::ValLoss),
            "val-accuracy" => Ok(Monitor::ValAccuracy),
            _ => Err(crate::Error::Invalid(format!("monitor '{s}': expected val-loss or val-accuracy"))),
        }
    }
}

impl std::fmt::Display for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Monitor::ValLoss => "val-loss",
            Monitor::ValAccuracy => "val-accuracy",
        })
    }
}

impl Monitor {
    /// The watched value of an epoch, oriented so that larger is better.
    fn score(self, stats: &EpochStats) -> f64 {
        match self {
            Monitor::ValLoss => -stats.val_loss,
            Monitor::ValAccuracy => stats.val_accuracy,
        }
    }
}

/// Early stopping: end training after `patience` epochs without an improvement of more than
/// `min_delta` in `monitor`, optionally restoring the best epoch's weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Watched metric.
    pub monitor: Monitor,
    /// Epochs without improvement tolerated.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Put back the best epoch's weights at the end.
    pub restore_best: bool,
}

/// Where a run stands: enough to resume it exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epoch in progress (1-based).
    pub epoch: usize,
    /// Next step within that epoch.
    pub step: usize,
    /// Partial epoch totals.
    pub loss_sum: f64,
    /// Partial epoch correct predictions.
    pub correct: usize,
    /// Partial epoch samples.
    pub seen: usize,
    /// Finished epochs.
    pub history: Vec<EpochStats>,
    /// Best epoch so far (1-based) by the early-stopping metric.
    pub best_epoch: Option<usize>,
    /// The run ended because validation stopped improving.
    pub stopped_early: bool,
}

/// How `fit` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitEnd {
    /// All epochs ran.
    Completed,
    /// Early stopping ended the run.
    StoppedEarly,
    /// The interrupt flag was raised; the state is saved for resuming.
    Interrupted,
}

/// What one epoch achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss (with dropout active).
    pub loss: f64,
    /// Training accuracy (with dropout active).
    pub accuracy: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Wall time of the epoch including validation.
    pub seconds: f64,
    /// Training images per second (optimiser steps only).
    pub images_per_second: f64,
}

impl EpochStats {
    /// The Keras-like one-line report; the validation figures only when there was a validation
    /// set (`validated`).
    pub fn line(&self, epochs: usize, validated: bool) -> String {
        let validation = if validated {
            format!("  val_loss {:.4}  val_acc {:.4}", self.val_loss, self.val_accuracy)
        } else {
            String::new()
        };
        format!(
            "epoch {}/{epochs}  loss {:.4}  acc {:.4}{validation}  lr {:.1e}  {:.1}s  {:.0} img/s",
            self.epoch, self.loss, self.accuracy, self.lr, self.seconds, self.images_per_second
        )
    }
}

/// Receives progress while training runs.
pub trait TrainObserver {
    /// An epoch of `steps` steps begins.
    fn epoch_started(&mut self, _epoch: usize, _steps: usize) {}
    /// A step finished; running mean loss and accuracy of the epoch so far.
    fn step_done(&mut self, _loss: f64, _accuracy: f64) {}
    /// An epoch finished; `validation` is the evaluation its validation figures come from.
    fn epoch_done(&mut self, _stats: &EpochStats, _validation: &Evaluation) {}
}

/// Samples per micro-batch: a step is the fixed sequence of its batch's micro-batches of this
/// size (the last may be shorter), whatever the thread count. Batch norm normalises each
/// micro-batch by its own statistics.
pub const MICRO_BATCH: usize = 32;

/// What every micro-batch of one step shares.
#[derive(Clone, Copy)]
struct StepSettings {
    /// Gradient scale (1 / batch size, for a mean loss).
    scale: f32,
    /// Seed of the step; a micro-batch's dropout and augmentation seed mixes in its index.
    seed: u64,
    /// Augmentation to apply.
    augment: Augment,
    /// The epoch and the run's seed for flip orientations (an alternating flip's [`Visit`]).
    visit: Visit,
    /// Label smoothing of the targets.
    smoothing: f32,
}

/// Several observers in turn.
impl TrainObserver for Vec<&mut dyn TrainObserver> {
    fn epoch_started(&mut self, epoch: usize, steps: usize) {
        self.iter_mut().for_each(|o| o.epoch_started(epoch, steps));
    }

    fn step_done(&mut self, loss: f64, accuracy: f64) {
        self.iter_mut().for_each(|o| o.step_done(loss, accuracy));
    }

    fn epoch_done(&mut self, stats: &EpochStats, validation: &Evaluation) {
        self.iter_mut().for_each(|o| o.epoch_done(stats, validation));
    }
}

/// One thread's buffers: the activations of one micro-batch and its labels and augmented image.
struct Replica {
    ws: Workspace,
    labels: Vec<u16>,
    augmented: Vec<u8>,
}

/// The results of one micro-batch, kept apart until they are summed in micro-batch order.
struct MicroResult {
    /// Gradient of the batch-mean loss over this micro-batch's samples.
    grads: Vec<f32>,
    /// Batch statistics of this micro-batch (batch-norm models only; see `Model::state_len`).
    state: Vec<f32>,
    /// Loss and correct predictions.
    score: BatchScore,
}

impl Replica {
    /// Forward and backward over micro-batch number `m` (`indices`) of a step, leaving its
    /// gradient, statistics and score in `out`. Its randomness derives from the step's seed and
    /// `m` only.
    fn run(
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
fn reduce_in_order(results: &mut [MicroResult], field: fn(&mut MicroResult) -> &mut Vec<f32>) {
    const BLOCK: usize = 8192;
    let (first, rest) = results.split_first_mut().expect("at least one micro-batch");
    let rest: Vec<&[f32]> = rest.iter_mut().map(|r| &field(r)[..]).collect();
    field(first).par_chunks_mut(BLOCK).enumerate().for_each(|(b, chunk)| {
        for r in &rest {
            chunk.iter_mut().zip(&r[b * BLOCK..]).for_each(|(g, o)| *g += o);
        }
    });
}

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
    use crate::optim::lookahead::LookaheadConfig;

    #[test]
    fn validate_refuses_a_lookahead_a_spec_or_checkpoint_could_carry() {
        let with = |k, alpha| TrainConfig {
            optimizer: OptimizerConfig { lookahead: Some(LookaheadConfig { k, alpha }), ..Default::default() },
            ..Default::default()
        };
        assert!(with(5, 0.5).validate().is_ok());
        for (k, alpha) in [(0, 0.5), (5, 0.0), (5, 1.5), (5, f32::NAN)] {
            let err = with(k, alpha).validate().unwrap_err().to_string();
            assert!(err.contains("--lookahead must be K:ALPHA"), "{k}:{alpha}: {err}");
        }
    }

    #[test]
    fn an_alternating_flip_shows_each_image_the_other_way_in_the_next_epoch() {
        use crate::nn::spec::ModelSpec;
        use rand::{RngExt, SeedableRng};
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

    #[test]
    fn epoch_line_shows_validation_only_when_there_was_some() {
        let stats = EpochStats {
            epoch: 3,
            loss: 0.25,
            accuracy: 0.9,
            val_loss: 0.0,
            val_accuracy: 0.0,
            lr: 1e-3,
            seconds: 70.0,
            images_per_second: 800.0,
        };
        assert_eq!(stats.line(15, false), "epoch 3/15  loss 0.2500  acc 0.9000  lr 1.0e-3  70.0s  800 img/s");
        let validated = EpochStats { val_loss: 0.2, val_accuracy: 0.93, ..stats };
        assert!(validated.line(15, true).contains("  val_loss 0.2000  val_acc 0.9300  lr"));
    }
}
