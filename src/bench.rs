//! `wardrobe bench`: engine speed on this machine, in one process — the sgemm ceiling, training
//! and inference throughput of an architecture (the seed CNN unless told), single-image latency,
//! achieved GFLOP/s and peak memory.

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
use crate::train::trainer::{TrainConfig, TrainObserver, Trainer};
use rayon::prelude::*;
use serde::Serialize;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Everything `bench` measures.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Rayon worker threads.
    pub threads: usize,
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

/// The value `per_cent` of the way through ascending `sorted` (0 when it is empty).
pub fn percentile(sorted: &[f64], per_cent: usize) -> f64 {
    let index = (sorted.len() * per_cent / 100).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied().unwrap_or(0.0)
}

/// Peak resident set size of this process from /proc (0 where unavailable).
pub fn peak_rss_mib() -> f64 {
    proc_status_mib("self", "VmHWM")
}

/// A memory field (in kB) of `/proc/PROCESS/status`, in MiB (0 where unavailable).
pub fn proc_status_mib(process: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time all threads of `/proc/PROCESS` have run so far, in seconds (from each thread's
/// schedstat, in nanoseconds; else from the process's stat, in clock ticks; 0 where unavailable).
pub fn proc_cpu_seconds(process: &str) -> f64 {
    let on_cpu_ns = |task: std::fs::DirEntry| {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        stat.split_whitespace().next()?.parse::<f64>().ok()
    };
    let scheduled = std::fs::read_dir(format!("/proc/{process}/task"))
        .ok()
        .and_then(|tasks| tasks.map(|t| on_cpu_ns(t.ok()?)).sum::<Option<f64>>());
    scheduled.map_or_else(|| stat_cpu_seconds(process), |ns| ns / 1e9)
}

/// User plus system time of a process from `/proc/PROCESS/stat`, in clock ticks (coarser than
/// schedstat, which kernels without scheduler statistics lack); 0 where unavailable.
fn stat_cpu_seconds(process: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces, so split after its closing paren):
    // state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if per_second > 0 { ticks / per_second as f64 } else { 0.0 }
}

/// Runs every measurement on the architecture `spec`; `quick` shortens them (for tests).
pub fn run(source: &DataSource, spec: &ModelSpec, quick: bool) -> Result<BenchReport> {
    let threads = rayon::current_num_threads();
    let full = source.load(Split::Train)?;
    let train = full.slice(0..54_000);
    let test = source.load(Split::Test)?;
    let model = Model::initialised(spec.clone(), 10, 1)?;
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
    for batch in [64, 256] {
        let steps = if quick { 10 } else { 20_000 / batch };
        training.push(entry(batch, "steps", training_steps(spec, &train, batch, steps)?));
        if !quick {
            training.push(entry(batch, "epoch", training_epoch(spec, &train, batch)?));
        }
    }
    let mut predictor = Predictor::new(&model, INFERENCE_BATCH);
    let test_pixels = if quick { &test.images[..1000 * 784] } else { &test.images[..] };
    let predict_all = |p: &mut Predictor| test_pixels.chunks(1000 * 784).for_each(|batch| drop(p.probabilities(batch)));
    predict_all(&mut predictor);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            predict_all(&mut predictor);
            (test_pixels.len() / 784) as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    let inference = percentile(&runs, 50);
    let calls = if quick { 100 } else { 2000 };
    let mut single = crate::nn::infer::SingleImage::new(&model);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_busy_process_grows() {
        // Another process, as the server is: this test binary's own threads come and go.
        let mut busy = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let pid = busy.id().to_string();
        let started = std::time::Instant::now();
        // At most 5 s: the clock-tick fallback moves in steps of 10 ms.
        while proc_cpu_seconds(&pid) < 0.02 && started.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (scheduled, ticks) = (proc_cpu_seconds(&pid), stat_cpu_seconds(&pid));
        busy.kill().unwrap();
        busy.wait().unwrap();
        assert!(scheduled >= 0.02, "CPU time did not grow: {scheduled}");
        assert!(ticks > 0.0, "the /proc/PID/stat fallback reads the process");
        assert_eq!(proc_cpu_seconds("no-such-process"), 0.0);
    }

    #[test]
    fn percentile_indexes_the_sorted_values() {
        let v: Vec<f64> = (0..200).map(f64::from).collect();
        assert_eq!((percentile(&v, 50), percentile(&v, 99), percentile(&v, 100)), (100.0, 198.0, 199.0));
        assert_eq!(percentile(&[7.0], 99), 7.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }
}
