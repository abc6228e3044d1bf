//! `wardrobe bench`: engine speed on this machine, in one process — the sgemm ceiling, training
//! and inference throughput of an architecture (the seed CNN unless told), single-image latency,
//! achieved GFLOP/s and peak memory.

use crate::bench::proc::{peak_rss_mib, percentile};
use crate::data::augment::Augment;
use crate::data::dataset::{Dataset, Split};
use crate::data::source::DataSource;
use crate::error::Result;
use crate::nn::infer::{INFERENCE_BATCH, Predictor};
use crate::nn::matmul::{matmul, n as plain};
use crate::nn::model::Model;
use crate::nn::spec::ModelSpec;
use crate::optim::config::OptimizerConfig;
use crate::optim::schedule::Schedule;
use crate::train::config::TrainConfig;
use crate::train::state::TrainObserver;
use crate::train::trainer::Trainer;
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Everything `bench` measures.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Rayon worker threads.
    pub threads: usize,
    /// What inference computes in: `fp32`, or `int8 (KERNEL)`.
    pub precision: String,
    /// Best sgemm rate over all threads (independent 1024³ products per thread), GFLOP/s.
    pub sgemm_gflops_all_threads: f64,
    /// Best sgemm rate on one thread, GFLOP/s.
    pub sgemm_gflops_one_thread: f64,
    /// Forward FLOPs per image of the measured architecture.
    pub forward_flops_per_image: usize,
    /// Training runs.
    pub training: Vec<TrainingBench>,
    /// Inference over the test set in calls of 1000 images, images/s (median of 5 runs).
    pub inference_images_per_second: f64,
    /// Inference GFLOP/s.
    pub inference_gflops: f64,
    /// Single-image latency, median, ms.
    pub latency_ms_median: f64,
    /// Single-image latency, 99th percentile, ms.
    pub latency_ms_p99: f64,
    /// Calls measured for latency.
    pub latency_calls: usize,
    /// Peak resident memory of this process, MiB.
    pub peak_rss_mib: f64,
}

/// One training throughput measurement.
#[derive(Debug, Serialize)]
pub struct TrainingBench {
    /// Batch size.
    pub batch_size: usize,
    /// `steps` (optimiser steps only) or `epoch` (a full epoch over 54k images incl. shuffling).
    pub mode: &'static str,
    /// Training images per second.
    pub images_per_second: f64,
    /// Achieved GFLOP/s, counting training as 3× the forward FLOPs.
    pub gflops: f64,
    /// Fraction of the measured all-thread sgemm ceiling.
    pub fraction_of_ceiling: f64,
}

/// Best GFLOP/s of `reps` 1024³ products on each of `threads` threads at once (the best run is
/// the one least disturbed by other load on a shared machine).
fn sgemm_gflops(threads: usize, reps: usize) -> f64 {
    const N: usize = 1024;
    let a: Vec<f32> = (0..N * N).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut outs: Vec<Vec<f32>> = (0..threads).map(|_| vec![0.0; N * N]).collect();
    let mut best = 0.0f64;
    for _ in 0..reps {
        let start = Instant::now();
        outs.par_iter_mut().for_each(|c| matmul(N, N, N, plain(&a), plain(&a), c, false));
        best = best.max((2 * N * N * N * threads) as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

struct Silent;
impl TrainObserver for Silent {}

fn config(batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size,
        optimizer: OptimizerConfig::default(),
        schedule: Schedule::Constant,
        augment: Augment::default(),
        label_smoothing: 0.0,
        early_stopping: None,
        seed: 1,
    }
}

/// Images/s of `steps` optimiser steps (after 5 warm-up steps).
fn training_steps(spec: &ModelSpec, train: &Dataset, batch_size: usize, steps: usize) -> Result<f64> {
    let mut model = Model::initialised(spec.clone(), 10, 1)?;
    let mut trainer = Trainer::new(&mut model, config(batch_size));
    let batches: Vec<Vec<u32>> = (0..steps + 5)
        .map(|s| (0..batch_size).map(|i| ((s * batch_size + i) % train.len()) as u32).collect())
        .collect();
    for b in &batches[..5] {
        trainer.step(train, b, 0);
    }
    let start = Instant::now();
    for (s, b) in batches[5..].iter().enumerate() {
        trainer.step(train, b, s as u64);
    }
    Ok((steps * batch_size) as f64 / start.elapsed().as_secs_f64())
}

/// Images/s of one full epoch (shuffled batches; validation on an empty set).
fn training_epoch(spec: &ModelSpec, train: &Dataset, batch_size: usize) -> Result<f64> {
    let mut model = Model::initialised(spec.clone(), 10, 1)?;
    let mut trainer = Trainer::new(&mut model, config(batch_size));
    trainer.fit(train, &train.slice(0..0), &mut Silent, &AtomicBool::new(false), &mut |_| Ok(()))?;
    Ok(trainer.state().history[0].images_per_second)
}

/// What `bench` measures.
pub enum Target<'a> {
    /// A preset's architecture with fresh weights: training, then inference.
    Architecture(&'a ModelSpec),
    /// A saved model (float or int8) as it is: inference only.
    Model(&'a Model),
}

/// Runs every measurement on `target`; `quick` shortens them (for tests).
pub fn run(source: &DataSource, target: Target, quick: bool) -> Result<BenchReport> {
    let threads = rayon::current_num_threads();
    let test = source.load(Split::Test)?;
    let fresh;
    let model = match target {
        Target::Architecture(spec) => {
            fresh = Model::initialised(spec.clone(), 10, 1)?;
            &fresh
        }
        Target::Model(model) => model,
    };
    let flops = 2 * model.macs_per_sample();
    let reps = if quick { 2 } else { 30 };
    let ceiling = sgemm_gflops(threads, reps);
    let one = sgemm_gflops(1, reps);
    let gflops = |ips: f64| ips * flops as f64 / 1e9;
    let entry = |batch_size, mode, ips: f64| TrainingBench {
        batch_size,
        mode,
        images_per_second: ips,
        gflops: 3.0 * gflops(ips),
        fraction_of_ceiling: 3.0 * gflops(ips) / ceiling,
    };
    let mut training = Vec::new();
    if let Target::Architecture(spec) = target {
        let full = source.load(Split::Train)?;
        let train = full.slice(0..54_000);
        for batch in [64, 256] {
            let steps = if quick { 10 } else { 20_000 / batch };
            training.push(entry(batch, "steps", training_steps(spec, &train, batch, steps)?));
            if !quick {
                training.push(entry(batch, "epoch", training_epoch(spec, &train, batch)?));
            }
        }
    }
    let size = model.input_size();
    let mut predictor = Predictor::new(model, INFERENCE_BATCH);
    let test_pixels = if quick { &test.images[..1000 * size] } else { &test.images[..] };
    let predict_all =
        |p: &mut Predictor| test_pixels.chunks(1000 * size).for_each(|batch| drop(p.probabilities(batch)));
    predict_all(&mut predictor);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            predict_all(&mut predictor);
            (test_pixels.len() / size) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let inference = percentile(&runs, 50);
    let calls = if quick { 100 } else { 2000 };
    let mut single = crate::nn::infer::SingleImage::new(model);
    let mut lat: Vec<f64> = (0..calls + 50)
        .map(|i| {
            let start = Instant::now();
            std::hint::black_box(single.probabilities(test.image(i % test.len())));
            start.elapsed().as_secs_f64() * 1e3
        })
        .skip(50)
        .collect();
    lat.sort_by(f64::total_cmp);
    Ok(BenchReport {
        threads,
        precision: model.int8().map_or("fp32".to_string(), |q| format!("int8 ({})", q.kernel().name())),
        sgemm_gflops_all_threads: ceiling,
        sgemm_gflops_one_thread: one,
        forward_flops_per_image: flops,
        training,
        inference_images_per_second: inference,
        inference_gflops: gflops(inference),
        latency_ms_median: percentile(&lat, 50),
        latency_ms_p99: percentile(&lat, 99),
        latency_calls: calls,
        peak_rss_mib: peak_rss_mib(),
    })
}
