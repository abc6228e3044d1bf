//! Out-of-distribution scores: how unlike the training data a photo's features are (the model's
//! last-layer input and the channel means of its poolings), by the Mahalanobis distance to the
//! nearest class (Lee et al. 2018, "A simple unified framework
//! for detecting out-of-distribution samples and adversarial attacks"). Fitted on the training
//! split: one mean per class and one covariance shared by all classes, shrunk towards its average
//! variance so that it inverts even when features are fewer than dimensions. With `Σ = L·Lᵀ`
//! (Cholesky) and `W = L⁻¹`, the squared distance to class `k` is `‖W·f − W·μ_k‖²`; the score is
//! its minimum over the classes, divided by the feature count (higher = more unusual). A photo
//! scoring above the threshold, chosen on the validation split so that a stated share of
//! in-distribution photos stays below it, is `unknown`.

use crate::error::{Error, Result};
use crate::predict::Verdict;
use serde::{Deserialize, Serialize};

/// Fraction of the shrinkage target (the mean variance on the diagonal) mixed into the covariance.
const SHRINKAGE: f64 = 0.01;

/// Share of in-distribution validation photos kept below the unknown threshold by default.
pub const DEFAULT_KEPT: f64 = 0.95;

/// A fitted score: the whitening and the whitened class means.
#[derive(Debug, Clone, PartialEq)]
pub struct Mahalanobis {
    dim: usize,
    /// `W = L⁻¹`, lower triangular, `dim × dim` row-major.
    whitening: Vec<f32>,
    /// `W·μ_k` for each class, `classes × dim`.
    centres: Vec<f32>,
}

/// A model's out-of-distribution score and its unknown threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Ood {
    /// The fitted score.
    pub score: Mahalanobis,
    /// Scores above it are `unknown`.
    pub threshold: f32,
    /// The share of validation photos the threshold keeps below it.
    pub kept: f64,
}

/// What `model.json` records of the score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodSettings {
    /// `mahalanobis`.
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

    /// The score of each row of `features`.
    pub fn scores(&self, features: &[f32]) -> Vec<f32> {
        let mut z = vec![0.0f32; self.dim];
        features.chunks_exact(self.dim).map(|f| self.score_into(f, &mut z)).collect()
    }

    fn score_into(&self, f: &[f32], z: &mut [f32]) -> f32 {
        for (i, zi) in z.iter_mut().enumerate() {
            *zi = self.whitening[i * self.dim..][..=i].iter().zip(f).map(|(w, v)| w * v).sum();
        }
        let nearest = self
            .centres
            .chunks_exact(self.dim)
            .map(|c| c.iter().zip(z.iter()).map(|(c, z)| (z - c) * (z - c)).sum::<f32>())
            .fold(f32::INFINITY, f32::min);
        nearest / self.dim as f32
    }
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
        // (x − μ)²/σ² summed over the axes, divided by the 2 features.
        let s = m.scores(&[3.0, 0.0, 7.0, 0.0, 3.0, 2.0, 0.0, 0.0]);
        let expected = [0.0, 16.0 / 4.0 / 2.0, 4.0 / 2.0, 9.0 / 4.0 / 2.0];
        for (got, want) in s.iter().zip(expected) {
            assert!((got - want).abs() < 0.06, "{s:?} against {expected:?}");
        }
        let kept = threshold(&m.scores(&features), 0.95);
        let below = m.scores(&features).iter().filter(|&&x| x <= kept).count();
        assert_eq!(below, 19_000);
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
