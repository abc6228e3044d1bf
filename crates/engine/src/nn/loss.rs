//! Softmax cross-entropy fused on logits: the loss uses log-sum-exp for stability and the
//! gradient is `(softmax − target) · scale` (scale = 1/batch size for a mean loss). With label
//! smoothing ε the target is `(1 − ε)·one_hot + ε/K` over K classes (Szegedy et al. 2016), so
//! the loss is `lse − (1 − ε)·logit[label] − ε/K · Σ logits`.

/// Softmax of one row of logits divided by `temperature` into `probs`.
pub fn softmax_at(logits: &[f32], temperature: f32, probs: &mut [f32]) {
    if temperature == 1.0 {
        softmax(logits, probs);
        return;
    }
    let (inv, max) = (1.0 / temperature, logits.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = ((l - max) * inv).exp();
        sum += *p;
    }
    probs.iter_mut().for_each(|p| *p /= sum);
}

/// Softmax of one row of logits into `probs`, returning log Σ exp(logits).
pub fn softmax(logits: &[f32], probs: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = (l - max).exp();
        sum += *p;
    }
    probs.iter_mut().for_each(|p| *p /= sum);
    max + sum.ln()
}

/// Loss total and correct predictions of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchScore {
    /// Sum of per-sample cross-entropies.
    pub loss_sum: f64,
    /// Samples whose arg-max logit is the label.
    pub correct: usize,
}

impl std::ops::AddAssign for BatchScore {
    fn add_assign(&mut self, other: BatchScore) {
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
    }
}

impl std::iter::Sum for BatchScore {
    fn sum<I: Iterator<Item = BatchScore>>(scores: I) -> BatchScore {
        scores.fold(BatchScore::default(), |mut total, s| {
            total += s;
            total
        })
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Scores `logits` (`labels.len()` rows of `classes`) against the labels smoothed by
/// `smoothing` and writes the gradient of `scale · Σ loss` w.r.t. the logits into `dlogits`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u16],
    classes: usize,
    smoothing: f32,
    scale: f32,
    dlogits: &mut [f32],
) -> BatchScore {
    let mut score = BatchScore::default();
    let spread = smoothing / classes as f32;
    for (i, &label) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let grad = &mut dlogits[i * classes..(i + 1) * classes];
        let lse = softmax(row, grad);
        let mut loss = lse - (1.0 - smoothing) * row[label as usize];
        if smoothing > 0.0 {
            loss -= spread * row.iter().sum::<f32>();
            grad.iter_mut().for_each(|g| *g -= spread);
        }
        score.loss_sum += loss as f64;
        score.correct += usize::from(argmax(row) == label as usize);
        grad[label as usize] -= 1.0 - smoothing;
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_cost_ln_classes() {
        let mut d = vec![0.0; 4];
        let s = softmax_cross_entropy(&[0.0; 4], &[2], 4, 0.0, 1.0, &mut d);
        assert!((s.loss_sum - 4f64.ln()).abs() < 1e-6);
        assert_eq!(d, vec![0.25, 0.25, -0.75, 0.25]);
    }

    #[test]
    fn huge_logits_stay_finite() {
        let mut d = vec![0.0; 2];
        let s = softmax_cross_entropy(&[1000.0, -1000.0], &[1], 2, 0.0, 1.0, &mut d);
        assert!((s.loss_sum - 2000.0).abs() < 1e-3 && s.correct == 0);
        assert!(d.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn probabilities_sum_to_one() {
        let mut p = vec![0.0; 5];
        softmax(&[1.0, 2.0, -3.0, 0.5, 7.0], &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 4);
    }

    #[test]
    fn gradient_matches_finite_differences_with_and_without_smoothing() {
        let logits = [0.3f32, -1.2, 2.0, 0.7, 0.0, -0.4];
        let labels = [2u16, 0];
        for smoothing in [0.0, 0.1, 0.3] {
            let mut d = vec![0.0; 6];
            softmax_cross_entropy(&logits, &labels, 3, smoothing, 0.5, &mut d);
            let loss = |l: &[f32]| softmax_cross_entropy(l, &labels, 3, smoothing, 0.5, &mut [0.0; 6]).loss_sum * 0.5;
            for i in 0..6 {
                let (mut up, mut down) = (logits, logits);
                up[i] += 1e-3;
                down[i] -= 1e-3;
                let numeric = (loss(&up) - loss(&down)) / 2e-3;
                assert!((numeric - d[i] as f64).abs() < 1e-3, "ε {smoothing}, {i}: {numeric} vs {}", d[i]);
            }
        }
    }

    #[test]
    fn smoothing_makes_the_loss_the_cross_entropy_with_the_smoothed_target() {
        let (logits, mut p) = ([1.0f32, -0.5, 2.5, 0.0], [0.0f32; 4]);
        softmax(&logits, &mut p);
        let target = [0.05f32, 0.05, 0.85, 0.05];
        let want: f32 = -target.iter().zip(&p).map(|(t, p)| t * p.ln()).sum::<f32>();
        let mut d = [0.0; 4];
        let got = softmax_cross_entropy(&logits, &[2], 4, 0.2, 1.0, &mut d);
        assert!((got.loss_sum as f32 - want).abs() < 1e-5, "{} vs {want}", got.loss_sum);
        assert!(d.iter().zip(&p).zip(&target).all(|((g, p), t)| (g - (p - t)).abs() < 1e-6));
    }
}
