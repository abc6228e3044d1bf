//! Calibration by temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
//! Networks"): one scalar `T` divides the logits before the softmax, fitted to minimise the
//! negative log-likelihood of held-out data. It never changes which class wins, only how sure the
//! model says it is. Since `softmax(z / T) ∝ softmax(z)^(1/T)`, it can be fitted and applied to
//! probabilities as well as logits. The expected calibration error (ECE) measures the result:
//! predictions are put into equal-width confidence bins, and the gap between each bin's mean
//! confidence and its accuracy is averaged, weighted by the bin's share of predictions.

use crate::model_dir::Calibration;
use crate::nn::loss::argmax;

/// Fits a temperature to the validation `probs` (made at temperature 1) and keeps it only when
/// it lowers the validation NLL by more than twice the standard error of the per-image gain, so
/// that a small validation split cannot make a model worse calibrated on new photos.
pub fn choose_temperature(probs: &[f32], labels: &[u16], classes: usize) -> Calibration {
    let fitted = fit_temperature(probs, labels, classes);
    let gains: Vec<f64> = probs
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, l)| {
            let one = std::slice::from_ref(l);
            nll(row, one, classes, 1.0) - nll(row, one, classes, f64::from(fitted))
        })
        .collect();
    let n = gains.len().max(1) as f64;
    let mean = gains.iter().sum::<f64>() / n;
    let var = gains.iter().map(|g| (g - mean) * (g - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    let margin = 2.0 * (var / n).sqrt();
    Calibration {
        fitted,
        nll_uncalibrated: nll(probs, labels, classes, 1.0),
        nll_fitted: nll(probs, labels, classes, f64::from(fitted)),
        margin,
        kept: !labels.is_empty() && mean > margin,
    }
}

/// Bins of the expected calibration error (the usual 15).
pub const ECE_BINS: usize = 15;

/// Smallest and largest temperature the fit considers.
const RANGE: (f64, f64) = (0.05, 20.0);

/// Log-probabilities are clamped here so that a probability of exactly 0 stays finite.
const LOG_FLOOR: f64 = -100.0;

/// Probabilities `probs` (rows of `classes`, made at temperature 1) as they are at `temperature`.
pub fn rescale(probs: &[f32], classes: usize, temperature: f32) -> Vec<f32> {
    let inv = 1.0 / f64::from(temperature);
    let mut out = Vec::with_capacity(probs.len());
    for row in probs.chunks_exact(classes) {
        let logs: Vec<f64> = row.iter().map(|&p| f64::from(p).ln().max(LOG_FLOOR) * inv).collect();
        let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = logs.iter().map(|l| (l - max).exp()).sum();
        out.extend(logs.iter().map(|l| ((l - max).exp() / sum) as f32));
    }
    out
}

/// Mean negative log-likelihood of `labels` under `probs` rescaled to `temperature`.
fn nll(probs: &[f32], labels: &[u16], classes: usize, temperature: f64) -> f64 {
    let inv = 1.0 / temperature;
    let total: f64 = probs
        .chunks_exact(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let logs = row.iter().map(|&p| f64::from(p).ln().max(LOG_FLOOR) * inv);
            let max = logs.clone().fold(f64::NEG_INFINITY, f64::max);
            let log_sum = max + logs.map(|l| (l - max).exp()).sum::<f64>().ln();
            log_sum - f64::from(row[label as usize]).ln().max(LOG_FLOOR) * inv
        })
        .sum();
    total / labels.len().max(1) as f64
}

/// The temperature that minimises the negative log-likelihood of `labels` under `probs` (made
/// at temperature 1): a golden-section search over log T, which is unimodal there. 1 when there
/// are no labels.
pub fn fit_temperature(probs: &[f32], labels: &[u16], classes: usize) -> f32 {
    if labels.is_empty() {
        return 1.0;
    }
    let f = |log_t: f64| nll(probs, labels, classes, log_t.exp());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (RANGE.0.ln(), RANGE.1.ln());
    let (mut c, mut d) = (b - ratio * (b - a), a + ratio * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp() as f32
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Bin {
    /// Predictions whose confidence falls in the bin.
    pub count: usize,
    /// Their mean confidence (the top probability).
    pub confidence: f64,
    /// The fraction of them that were right.
    pub accuracy: f64,
}

/// Predictions sorted into `bins` equal-width confidence bins over (0, 1].
pub fn reliability(probs: &[f32], labels: &[u16], classes: usize, bins: usize) -> Vec<Bin> {
    let mut out = vec![Bin::default(); bins];
    for (row, &label) in probs.chunks_exact(classes).zip(labels) {
        let top = argmax(row);
        let confidence = f64::from(row[top]);
        let bin = &mut out[((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1];
        bin.count += 1;
        bin.confidence += confidence;
        bin.accuracy += f64::from(u8::from(top == label as usize));
    }
    for bin in out.iter_mut().filter(|b| b.count > 0) {
        bin.confidence /= bin.count as f64;
        bin.accuracy /= bin.count as f64;
    }
    out
}

/// Expected calibration error over [`ECE_BINS`] equal-width bins.
pub fn ece(probs: &[f32], labels: &[u16], classes: usize) -> f64 {
    ece_of(&reliability(probs, labels, classes, ECE_BINS))
}

/// Expected calibration error of reliability bins: each bin's gap between confidence and
/// accuracy, weighted by its share of the predictions.
pub fn ece_of(bins: &[Bin]) -> f64 {
    let total = bins.iter().map(|b| b.count).sum::<usize>().max(1) as f64;
    bins.iter().map(|b| b.count as f64 / total * (b.confidence - b.accuracy).abs()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::loss::softmax;

    /// Probabilities of logits `z` at temperature 1, for samples drawn so that the true
    /// temperature is `t`: the label follows softmax(z / t).
    fn overconfident(t: f32, n: usize) -> (Vec<f32>, Vec<u16>) {
        let (mut probs, mut labels) = (Vec::new(), Vec::new());
        let mut state = 12345u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..n {
            let z: Vec<f32> = (0..4).map(|_| (uniform() * 8.0) as f32).collect();
            let mut p = vec![0.0; 4];
            softmax(&z, &mut p);
            let truth = rescale(&p, 4, t);
            let u = uniform() as f32;
            let mut acc = 0.0;
            let label = truth.iter().position(|&q| {
                acc += q;
                u < acc
            });
            labels.push(label.unwrap_or(3) as u16);
            probs.extend(p);
        }
        (probs, labels)
    }

    #[test]
    fn the_fit_recovers_the_temperature_that_made_the_labels() {
        let (probs, labels) = overconfident(2.5, 20_000);
        let t = fit_temperature(&probs, &labels, 4);
        assert!((t - 2.5).abs() < 0.15, "fitted {t}");
        let before = ece(&probs, &labels, 4);
        let after = ece(&rescale(&probs, 4, t), &labels, 4);
        assert!(before > 0.1 && after < 0.02, "ECE {before} → {after}");
    }

    #[test]
    fn rescaling_keeps_the_ranking_and_sums_to_one() {
        let probs = [0.7, 0.2, 0.1, 0.0];
        let warm = rescale(&probs, 4, 2.0);
        assert!((warm.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(warm[0] > warm[1] && warm[1] > warm[2] && warm[2] >= warm[3]);
        assert!(warm[0] < 0.7);
        assert_eq!(rescale(&probs, 4, 1.0)[..3], [0.7, 0.2, 0.1]);
        assert_eq!(fit_temperature(&[], &[], 4), 1.0);
    }

    #[test]
    fn ece_of_a_known_case() {
        // Two predictions at 0.9 confidence, one right, one wrong: |0.9 − 0.5| = 0.4.
        let probs = [0.9, 0.1, 0.9, 0.1];
        assert!((ece(&probs, &[0, 1], 2) - 0.4).abs() < 1e-6);
        let bins = reliability(&probs, &[0, 1], 2, 10);
        assert_eq!(bins[8].count, 2);
        assert!((bins[8].accuracy - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_temperature_is_kept_only_when_its_gain_beats_the_noise() {
        // Overconfident answers, wrong a quarter of the time: cooling them clearly helps.
        let mut probs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..2_000 {
            probs.extend([0.99f32, 0.01]);
            labels.push(u16::from(i % 4 == 0));
        }
        let sure = choose_temperature(&probs, &labels, 2);
        assert!(sure.kept && sure.fitted > 1.5, "{sure:?}");
        assert!(sure.nll_fitted < sure.nll_uncalibrated && sure.temperature() == sure.fitted);
        assert!(
            sure.line().starts_with("temperature ") && sure.line().contains(" kept: validation NLL "),
            "{}",
            sure.line()
        );
        // Already calibrated (0.75 right three times in four) on a few photos: the fitted
        // temperature is near 1 and its gain is noise, so 1 is kept.
        let (few_probs, few_labels): (Vec<f32>, Vec<u16>) =
            ((0..40).flat_map(|_| [0.75f32, 0.25]).collect(), (0..40).map(|i| u16::from(i % 4 == 0)).collect());
        let noisy = choose_temperature(&few_probs, &few_labels, 2);
        assert!(!noisy.kept && noisy.temperature() == 1.0, "{noisy:?}");
        assert!(noisy.line().starts_with("temperature 1 kept: "), "{}", noisy.line());
    }
}
