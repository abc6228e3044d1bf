//! Out-of-distribution scores: how unlike the training data a photo is, as seen by every
//! stage of the model. For each part of the features (the last layer's input, and the channel
//! means and deviations of each pooling's output) the Mahalanobis distance to the nearest class
//! (Lee et al. 2018, "A simple unified framework for detecting out-of-distribution samples and
//! adversarial attacks"), fitted on the training split: one mean per class and one covariance
//! shared by all classes, shrunk towards its average variance so that it inverts even when
//! samples are few. With `Σ = L·Lᵀ` (Cholesky) and `W = L⁻¹`, the squared distance to class `k`
//! is `‖W·f − W·μ_k‖²`. The score adds each part's distance and the negative log of the top
//! class's probability, each divided by its spread (standard deviation) over the validation
//! split so that no part drowns the others, and averages them (higher = more unusual; about 1
//! for a typical photo of ours). Early layers see texture and ink that no garment has, the last
//! layer sees shapes between the classes, the probability sees doubt: together they tell more
//! than any one (measured in docs/PERFORMANCE.md). A photo scoring above the threshold, chosen
//! on the validation split so that a stated share of in-distribution photos stays below it, is
//! `unknown`.

use crate::error::{Error, Result};
use crate::predict::Verdict;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Fraction of the shrinkage target (the mean variance on the diagonal) mixed into the covariance.
const SHRINKAGE: f64 = 0.01;

/// Share of in-distribution validation photos kept below the unknown threshold by default.
pub const DEFAULT_KEPT: f64 = 0.95;

/// The name `model.json` gives the method.
pub const METHOD: &str = "layer-mahalanobis+confidence";

/// A fitted distance over one part of the features: the whitening and the whitened class means.
#[derive(Debug, Clone, PartialEq)]
pub struct Mahalanobis {
    dim: usize,
    /// `W = L⁻¹`, lower triangular, `dim × dim` row-major.
    whitening: Vec<f32>,
    /// `W·μ_k` for each class, `classes × dim`.
    centres: Vec<f32>,
}

/// The fitted score: a distance per part of the features, and the spreads that weigh them.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// Where each part lies in a feature row.
    groups: Vec<Range<usize>>,
    /// The distance fitted to each part.
    distances: Vec<Mahalanobis>,
    /// The spread of each part's distance, then of the confidence term, on validation data.
    scales: Vec<f32>,
}

/// A model's out-of-distribution score and its unknown threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Ood {
    /// The fitted score.
    pub score: Score,
    /// Scores above it are `unknown`.
    pub threshold: f32,
    /// The share of validation photos the threshold keeps below it.
    pub kept: f64,
}

/// What `model.json` records of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodSettings {
    /// [`METHOD`].
    pub method: String,
    /// Scores above it are `unknown`.
    pub threshold: f32,
    /// The share of validation photos the threshold keeps below it.
    pub kept: f64,
}

impl Mahalanobis {
    /// Fits class means and the shared covariance to `features` (rows of `dim`) labelled `labels`
    /// among `classes`.
    pub fn fit(features: &[f32], labels: &[u16], classes: usize, dim: usize) -> Result<Mahalanobis> {
        let n = labels.len();
        if n == 0 || dim == 0 || features.len() != n * dim {
            return Err(Error::Invalid(format!("cannot fit an out-of-distribution score to {n} samples of {dim}")));
        }
        let mut means = vec![0.0f64; classes * dim];
        let mut counts = vec![0usize; classes];
        for (f, &y) in features.chunks_exact(dim).zip(labels) {
            counts[y as usize] += 1;
            means[y as usize * dim..][..dim].iter_mut().zip(f).for_each(|(m, &v)| *m += f64::from(v));
        }
        for (mean, &count) in means.chunks_exact_mut(dim).zip(&counts) {
            mean.iter_mut().for_each(|m| *m /= count.max(1) as f64);
        }
        // Shared covariance of the centred features, accumulated in f64 in sample order.
        let mut cov = vec![0.0f64; dim * dim];
        let mut centred = vec![0.0f64; dim];
        for (f, &y) in features.chunks_exact(dim).zip(labels) {
            let mean = &means[y as usize * dim..][..dim];
            centred.iter_mut().zip(f).zip(mean).for_each(|((c, &v), m)| *c = f64::from(v) - m);
            for i in 0..dim {
                let ci = centred[i];
                if ci != 0.0 {
                    cov[i * dim..][..=i].iter_mut().zip(&centred[..=i]).for_each(|(s, &cj)| *s += ci * cj);
                }
            }
        }
        let average = (0..dim).map(|i| cov[i * dim + i]).sum::<f64>() / (n * dim) as f64;
        let floor = if average > 0.0 { average } else { 1.0 };
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] = cov[i * dim + j] / n as f64 * (1.0 - SHRINKAGE);
            }
            cov[i * dim + i] += SHRINKAGE * floor + 1e-9;
        }
        let whitening = inverse_cholesky(&cov, dim);
        let mut centres = vec![0.0f32; classes * dim];
        for (centre, mean) in centres.chunks_exact_mut(dim).zip(means.chunks_exact(dim)) {
            for (i, c) in centre.iter_mut().enumerate() {
                *c = (0..=i).map(|j| whitening[i * dim + j] * mean[j]).sum::<f64>() as f32;
            }
        }
        let whitening = whitening.iter().map(|&w| w as f32).collect();
        Ok(Mahalanobis { dim, whitening, centres })
    }

    /// Builds a score from stored tensors, checking their sizes and values.
    pub fn from_parts(dim: usize, classes: usize, whitening: Vec<f32>, centres: Vec<f32>) -> Result<Mahalanobis> {
        if whitening.len() != dim * dim || centres.len() != classes * dim {
            return Err(Error::Invalid(format!(
                "out-of-distribution tensors of {} and {} values; the model needs {dim}×{dim} and {classes}×{dim}",
                whitening.len(),
                centres.len()
            )));
        }
        if let Some(v) = whitening.iter().chain(&centres).find(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!("out-of-distribution tensors hold {v}")));
        }
        Ok(Mahalanobis { dim, whitening, centres })
    }

    /// The features per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The whitening `W` (`dim × dim`) and the whitened class means (`classes × dim`).
    pub fn parts(&self) -> (&[f32], &[f32]) {
        (&self.whitening, &self.centres)
    }

    /// The squared distance of `f` to the nearest class, divided by the feature count; `z` is
    /// scratch space of [`Mahalanobis::dim`] values.
    pub fn distance(&self, f: &[f32], z: &mut [f32]) -> f32 {
        for (i, zi) in z.iter_mut().enumerate() {
            *zi = lanes(&self.whitening[i * self.dim..][..=i], &f[..=i], |w, v| w * v);
        }
        let nearest = self
            .centres
            .chunks_exact(self.dim)
            .map(|c| lanes(c, z, |c, z| (z - c) * (z - c)))
            .fold(f32::INFINITY, f32::min);
        nearest / self.dim as f32
    }
}

/// `Σ term(a_i, b_i)` in eight interleaved partial sums added in a fixed order: a loop the
/// compiler vectorises, with the same bits on every machine.
fn lanes(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| term(x, y)).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += term(x[k], y[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl Score {
    /// Fits a distance to each of `groups` of the `features` (rows of `width`) of training images
    /// labelled `labels` among `classes`, and weighs them by their spread over `held_out`: the
    /// features and probabilities of validation images.
    pub fn fit(
        (features, labels): (&[f32], &[u16]),
        groups: Vec<Range<usize>>,
        classes: usize,
        held_out: (&[f32], &[f32]),
    ) -> Result<Score> {
        let width = groups.last().map_or(0, |g| g.end);
        let mut distances = Vec::with_capacity(groups.len());
        for g in &groups {
            let part: Vec<f32> = features.chunks_exact(width.max(1)).flat_map(|f| &f[g.clone()]).copied().collect();
            distances.push(Mahalanobis::fit(&part, labels, classes, g.len())?);
        }
        let unscaled = Score { scales: vec![1.0; groups.len() + 1], groups, distances };
        let terms = unscaled.terms(held_out.0, held_out.1, classes);
        let count = terms.len() / unscaled.scales.len().max(1);
        let scales = (0..unscaled.scales.len())
            .map(|t| {
                let column = terms.iter().skip(t).step_by(unscaled.scales.len()).map(|&v| f64::from(v));
                let mean = column.clone().sum::<f64>() / count.max(1) as f64;
                let var = column.map(|v| (v - mean) * (v - mean)).sum::<f64>() / count.max(1) as f64;
                if var.sqrt() > 1e-12 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        Ok(Score { scales, ..unscaled })
    }

    /// Builds a score from stored parts, checking that they fit a model with feature `groups`
    /// and `classes` classes.
    pub fn from_parts(groups: Vec<Range<usize>>, distances: Vec<Mahalanobis>, scales: Vec<f32>) -> Result<Score> {
        if distances.len() != groups.len() || scales.len() != groups.len() + 1 {
            return Err(Error::Invalid(format!(
                "{} distances and {} scales for a model with {} feature parts (needs {} and {})",
                distances.len(),
                scales.len(),
                groups.len(),
                groups.len(),
                groups.len() + 1
            )));
        }
        if let Some((g, d)) = groups.iter().zip(&distances).find(|(g, d)| g.len() != d.dim) {
            return Err(Error::Invalid(format!("a distance over {} features for a part of {}", d.dim, g.len())));
        }
        if let Some(v) = scales.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(Error::Invalid(format!("a scale of {v}; scales must be positive")));
        }
        Ok(Score { groups, distances, scales })
    }

    /// The distances, one per feature part.
    pub fn distances(&self) -> &[Mahalanobis] {
        &self.distances
    }

    /// The spreads the terms are divided by: one per part, then the confidence term's.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Each image's unscaled terms: its distance per part, then `−ln` of its top probability.
    fn terms(&self, features: &[f32], probabilities: &[f32], classes: usize) -> Vec<f32> {
        let width = self.groups.last().map_or(0, |g| g.end);
        let mut scratch: Vec<Vec<f32>> = self.distances.iter().map(|d| vec![0.0; d.dim]).collect();
        let mut terms = Vec::with_capacity(self.scales.len() * probabilities.len() / classes.max(1));
        for (f, p) in features.chunks_exact(width.max(1)).zip(probabilities.chunks_exact(classes.max(1))) {
            for ((g, d), z) in self.groups.iter().zip(&self.distances).zip(&mut scratch) {
                terms.push(d.distance(&f[g.clone()], z));
            }
            let top = p.iter().copied().fold(0.0f32, f32::max);
            terms.push(-top.max(1e-30).ln());
        }
        terms
    }

    /// The score of each image, from its features (rows of the model's feature width) and its
    /// probabilities (rows of `classes`).
    pub fn scores(&self, features: &[f32], probabilities: &[f32], classes: usize) -> Vec<f32> {
        let n = self.scales.len();
        self.terms(features, probabilities, classes)
            .chunks_exact(n)
            .map(|t| t.iter().zip(&self.scales).map(|(v, s)| v / s).sum::<f32>() / n as f32)
            .collect()
    }
}

/// The unknown threshold for held-out `scores` such that new photos of ours stay below it at
/// least `kept` of the time: the score below which a share `kept + 1.96·√(kept·(1−kept)/n)` of
/// the `n` scores lie (the upper end of the 95% interval of the share a quantile keeps), so a
/// small validation split errs towards calling fewer photos unknown.
pub fn unknown_threshold(scores: &[f32], kept: f64) -> f32 {
    let margin = 1.96 * (kept * (1.0 - kept) / scores.len().max(1) as f64).sqrt();
    threshold(scores, (kept + margin).min(1.0))
}

/// The threshold below which `kept` of `scores` lie.
pub fn threshold(scores: &[f32], kept: f64) -> f32 {
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let index = ((sorted.len() as f64 * kept).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(index).copied().unwrap_or(f32::INFINITY)
}

/// How well the score tells photos that are not ours (a folder) from the test set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Separation {
    /// The folder.
    pub folder: String,
    /// Photos scored.
    pub count: usize,
    /// Photos that could not be read.
    pub failed: usize,
    /// Area under the ROC curve of the score, test set against the folder (1 = always told apart).
    pub auroc: f64,
    /// Share of the folder scoring below the score that keeps 95% of the test set (the false
    /// positive rate at 95% true positive rate; lower is better).
    pub fpr_at_95_tpr: f64,
    /// Share of the folder with verdict `label` (given a confident clothing label).
    pub labelled_fraction: f64,
    /// Share of the folder with verdict `unknown`.
    pub unknown_fraction: f64,
}

/// Measures `folder`'s photos against the test set's scores `inside`: `scored` holds the
/// folder's scores and verdicts.
pub fn separation(folder: String, inside: &[f32], scored: &[(f32, Verdict)], failed: usize) -> Separation {
    let outside: Vec<f32> = scored.iter().map(|s| s.0).collect();
    let kept = threshold(inside, 0.95);
    let share = |hits: usize| if scored.is_empty() { 0.0 } else { hits as f64 / scored.len() as f64 };
    Separation {
        folder,
        count: scored.len(),
        failed,
        auroc: auroc(inside, &outside),
        fpr_at_95_tpr: share(outside.iter().filter(|&&s| s <= kept).count()),
        labelled_fraction: share(scored.iter().filter(|s| s.1 == Verdict::Label).count()),
        unknown_fraction: share(scored.iter().filter(|s| s.1 == Verdict::Unknown).count()),
    }
}

/// `L⁻¹` of the Cholesky factor of the symmetric positive-definite `a` (lower triangle used).
fn inverse_cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            l[i * n + j] =
                if i == j { (a[i * n + i] - s).max(1e-12).sqrt() } else { (a[i * n + j] - s) / l[j * n + j] };
        }
    }
    // Forward substitution of L·X = I, column by column.
    let mut inv = vec![0.0f64; n * n];
    for c in 0..n {
        for i in c..n {
            let s: f64 = (c..i).map(|k| l[i * n + k] * inv[k * n + c]).sum();
            inv[i * n + c] = ((if i == c { 1.0 } else { 0.0 }) - s) / l[i * n + i];
        }
    }
    inv
}

/// The area under the ROC curve of telling `outside` from `inside` by score (higher = outside),
/// ties counted half.
pub fn auroc(inside: &[f32], outside: &[f32]) -> f64 {
    let mut all: Vec<(f32, bool)> =
        inside.iter().map(|&s| (s, false)).chain(outside.iter().map(|&s| (s, true))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0.0f64, 0);
    while i < all.len() {
        let j = (i..all.len()).find(|&j| all[j].0 != all[i].0).unwrap_or(all.len());
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += all[i..j].iter().filter(|x| x.1).count() as f64 * mid;
        i = j;
    }
    let (m, n) = (outside.len() as f64, inside.len() as f64);
    (rank_sum - m * (m + 1.0) / 2.0) / (m * n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_score_is_the_squared_mahalanobis_distance_to_the_nearest_class() {
        // Two classes at ±3 on the first axis, variance 4 on it and 1 on the second, correlated 0.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for i in 0..20_000 {
            let y = (i % 2) as u16;
            let normal = |rng: &mut ChaCha8Rng| {
                let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            };
            let centre = if y == 0 { -3.0 } else { 3.0 };
            features.extend([(centre + 2.0 * normal(&mut rng)) as f32, normal(&mut rng) as f32]);
            labels.push(y);
        }
        let m = Mahalanobis::fit(&features, &labels, 2, 2).unwrap();
        let scores = |rows: &[f32]| rows.chunks_exact(2).map(|f| m.distance(f, &mut [0.0; 2])).collect::<Vec<f32>>();
        // (x − μ)²/σ² summed over the axes, divided by the 2 features.
        let s = scores(&[3.0, 0.0, 7.0, 0.0, 3.0, 2.0, 0.0, 0.0]);
        let expected = [0.0, 16.0 / 4.0 / 2.0, 4.0 / 2.0, 9.0 / 4.0 / 2.0];
        for (got, want) in s.iter().zip(expected) {
            assert!((got - want).abs() < 0.06, "{s:?} against {expected:?}");
        }
        let kept = threshold(&scores(&features), 0.95);
        let below = scores(&features).iter().filter(|&&x| x <= kept).count();
        assert_eq!(below, 19_000);
        // With 20,000 held-out scores the margin is 1.96·√(0.95·0.05/20,000) ≈ 0.3%.
        let safe = unknown_threshold(&scores(&features), 0.95);
        let below = scores(&features).iter().filter(|&&x| x <= safe).count();
        assert_eq!(below, 19_061);
    }

    #[test]
    fn the_score_averages_each_part_and_the_doubt_over_their_spreads() {
        // Two parts of one feature each, classes at 0 and 10 with unit variance in both.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for i in 0..4_000 {
            let y = (i % 2) as u16;
            let centre = 10.0 * f32::from(y);
            features.extend([centre + rng.random_range(-1.7f32..1.7), centre + rng.random_range(-1.7f32..1.7)]);
            labels.push(y);
        }
        let probs: Vec<f32> = labels.iter().flat_map(|&y| if y == 0 { [0.9, 0.1] } else { [0.2, 0.8] }).collect();
        let score = Score::fit((&features, &labels), vec![0..1, 1..2], 2, (&features, &probs)).unwrap();
        assert_eq!(score.scales().len(), 3);
        // The doubt term: −ln 0.9 and −ln 0.8 half each, so its spread is half their difference.
        let doubt = (0.9f32.ln() - 0.8f32.ln()) / 2.0;
        assert!((score.scales()[2] - doubt).abs() < 1e-4, "{:?}", score.scales());
        // A photo far from both classes in the first part only scores its distance there over
        // that part's spread, averaged with the other two terms.
        let at = |f: [f32; 2], p: [f32; 2]| score.scores(&f, &p, 2)[0];
        let (typical, odd) = (at([0.0, 0.0], [0.9, 0.1]), at([5.0, 0.0], [0.9, 0.1]));
        let d0 = score.distances()[0].distance(&[5.0], &mut [0.0]);
        assert!(((odd - typical) - d0 / score.scales()[0] / 3.0).abs() < 1e-3, "{typical} {odd} {d0}");
        // Less confidence, a higher score.
        assert!(at([0.0, 0.0], [0.5, 0.5]) > typical);
        let (g, d, sc) = (vec![0..1, 1..2], score.distances().to_vec(), score.scales().to_vec());
        assert_eq!(Score::from_parts(g.clone(), d.clone(), sc.clone()).unwrap(), score);
        assert!(Score::from_parts(g.clone(), d.clone(), sc[..2].to_vec()).is_err());
        assert!(Score::from_parts(vec![0..2, 2..3], d.clone(), sc.clone()).is_err());
        assert!(Score::from_parts(g, d, vec![1.0, f32::NAN, 1.0]).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn auroc_counts_pairs_in_order_and_ties_half() {
        assert_eq!(auroc(&[0.0, 1.0], &[2.0, 3.0]), 1.0);
        assert_eq!(auroc(&[2.0, 3.0], &[0.0, 1.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0]), 0.5);
        assert_eq!(auroc(&[0.0, 2.0], &[1.0]), 0.5);
    }

    #[test]
    fn stored_parts_are_checked() {
        assert!(Mahalanobis::from_parts(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0; 4]).is_ok());
        assert!(Mahalanobis::from_parts(2, 2, vec![1.0; 3], vec![0.0; 4]).is_err());
        let err = Mahalanobis::from_parts(2, 2, vec![1.0, 0.0, f32::NAN, 1.0], vec![0.0; 4]).unwrap_err();
        assert!(err.to_string().contains("NaN"), "{err}");
    }
}
