//! How steadily this machine runs a fixed piece of work: one thread repeats the same few
//! milliseconds of arithmetic and times each repetition. On a quiet dedicated core every
//! repetition takes about as long as the median; on a shared virtual machine some take several
//! times longer. A load test's latency tail is read against this reference: a server cannot have
//! a steadier tail than the machine it runs on.

use crate::bench::proc::percentile;
use serde::Serialize;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Repetitions timed to size a block of work before measuring.
const CALIBRATION_STEPS: u64 = 200_000;

/// Times of one fixed block of work, repeated.
#[derive(Debug, Clone, Serialize)]
pub struct Jitter {
    /// Blocks timed.
    pub blocks: usize,
    /// Median block time, ms.
    pub ms_p50: f64,
    /// 90th percentile, ms.
    pub ms_p90: f64,
    /// 99th percentile, ms.
    pub ms_p99: f64,
    /// Slowest block, ms.
    pub ms_max: f64,
}

/// A chain of dependent floating-point steps: the same instructions every time, no memory
/// traffic, nothing for the compiler to remove.
fn work(steps: u64) -> f64 {
    let mut x = black_box(1.0f64);
    for i in 0..steps {
        x = x * 0.999_999_9 + (i & 1) as f64 * 1e-9;
    }
    black_box(x)
}

/// Steps of [`work`] that take about `block` on this machine when it runs at full speed (the
/// fastest of ten timings, so a slow moment during calibration does not shrink the block).
fn steps_for(block: Duration) -> u64 {
    let fastest = (0..10)
        .map(|_| {
            let start = Instant::now();
            work(CALIBRATION_STEPS);
            start.elapsed().as_secs_f64().max(1e-9)
        })
        .fold(f64::INFINITY, f64::min);
    ((block.as_secs_f64() / fastest) * CALIBRATION_STEPS as f64).max(1.0) as u64
}

/// Repeats about `block` of work for `total` on the calling thread and reports the block times.
pub fn measure(block: Duration, total: Duration) -> Jitter {
    let steps = steps_for(block);
    let start = Instant::now();
    let mut times = Vec::new();
    while times.is_empty() || start.elapsed() < total {
        let began = Instant::now();
        work(steps);
        times.push(began.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Jitter {
        blocks: times.len(),
        ms_p50: percentile(&times, 50),
        ms_p90: percentile(&times, 90),
        ms_p99: percentile(&times, 99),
        ms_max: times.last().copied().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_repeated_blocks_in_order() {
        let j = measure(Duration::from_micros(200), Duration::from_millis(50));
        assert!(j.blocks >= 2, "{j:?}");
        assert!(0.0 < j.ms_p50 && j.ms_p50 <= j.ms_p90 && j.ms_p90 <= j.ms_p99 && j.ms_p99 <= j.ms_max, "{j:?}");
        let once = measure(Duration::from_micros(200), Duration::ZERO);
        assert_eq!(once.blocks, 1);
    }

    #[test]
    fn more_steps_take_longer() {
        assert!(steps_for(Duration::from_millis(4)) > steps_for(Duration::from_micros(100)));
    }
}
