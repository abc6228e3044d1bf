//! Classification metrics: confusion matrix, accuracy, loss, per-class precision/recall/F1, and
//! their text table.

use crate::nn::loss::argmax;
use serde::Serialize;

/// Counts of (true label, predicted label) pairs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class name.
    pub name: String,
    /// Correct among predicted as this class.
    pub precision: f64,
    /// Correct among truly this class.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Samples truly of this class.
    pub support: usize,
}

/// The result of evaluating a model on a labelled set.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: usize,
    /// Fraction predicted correctly.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Per-class scores.
    pub classes: Vec<ClassScore>,
    /// Confusion matrix.
    pub confusion: Confusion,
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

impl Confusion {
    /// An empty matrix for `classes` classes.
    pub fn new(classes: usize) -> Confusion {
        Confusion { counts: vec![vec![0; classes]; classes] }
    }

    /// Row-normalised percentages (each true class sums to 100).
    pub fn row_percent(&self) -> Vec<Vec<f64>> {
        self.counts.iter().map(|row| row.iter().map(|&c| 100.0 * ratio(c, row.iter().sum())).collect()).collect()
    }
}

impl Evaluation {
    /// Scores class probabilities (rows of `names.len()`) against `labels`.
    pub fn from_probabilities(probs: &[f32], labels: &[u16], names: &[String]) -> Evaluation {
        let k = names.len();
        let mut confusion = Confusion::new(k);
        let mut loss = 0.0;
        for (row, &label) in probs.chunks_exact(k).zip(labels) {
            confusion.counts[label as usize][argmax(row)] += 1;
            loss -= (row[label as usize].max(1e-12) as f64).ln();
        }
        let correct: usize = (0..k).map(|i| confusion.counts[i][i]).sum();
        let classes = (0..k)
            .map(|c| {
                let tp = confusion.counts[c][c];
                let predicted: usize = (0..k).map(|t| confusion.counts[t][c]).sum();
                let support: usize = confusion.counts[c].iter().sum();
                let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
                ClassScore { name: names[c].clone(), precision, recall, f1, support }
            })
            .collect();
        Evaluation {
            samples: labels.len(),
            accuracy: ratio(correct, labels.len()),
            loss: loss / labels.len().max(1) as f64,
            classes,
            confusion,
        }
    }

    /// A readable report: totals, per-class table, and the row-normalised confusion matrix.
    pub fn table(&self) -> String {
        let mut s =
            format!("samples {}  accuracy {:.2}%  loss {:.4}\n\n", self.samples, 100.0 * self.accuracy, self.loss);
        // Names are padded by characters (`{:<w}` counts chars), so UTF-8 names line up.
        let w = self.classes.iter().map(|c| c.name.chars().count()).max().unwrap_or(0).max(12) + 2;
        s.push_str(&format!("{:<w$}{:>10}{:>10}{:>10}{:>9}\n", "class", "precision", "recall", "f1", "support"));
        for c in &self.classes {
            s.push_str(&format!(
                "{:<w$}{:>10.3}{:>10.3}{:>10.3}{:>9}\n",
                c.name, c.precision, c.recall, c.f1, c.support
            ));
        }
        s.push_str("\nconfusion matrix, % of each true class (rows = true, columns = predicted)\n");
        let w = w + 4;
        s.push_str(&format!("{:<w$}", ""));
        for i in 0..self.classes.len() {
            s.push_str(&format!("{i:>6}"));
        }
        s.push('\n');
        for (i, row) in self.confusion.row_percent().iter().enumerate() {
            s.push_str(&format!("{:<w$}", format!("{i:>3} {}", self.classes[i].name)));
            for v in row {
                s.push_str(&format!("{v:>6.1}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scores() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        // truths 0,0,1,1 ; predictions 0,1,1,1
        let probs = [0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.3, 0.7];
        let e = Evaluation::from_probabilities(&probs, &[0, 0, 1, 1], &names);
        assert_eq!(e.accuracy, 0.75);
        assert_eq!(e.confusion.counts, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(e.classes[0].precision, 1.0);
        assert_eq!(e.classes[0].recall, 0.5);
        assert!((e.classes[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.classes[1].f1 - 0.8).abs() < 1e-12);
        let want_loss = -(0.9f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.7f64.ln()) / 4.0;
        assert!((e.loss - want_loss).abs() < 1e-6);
        assert_eq!(e.confusion.row_percent()[0], vec![50.0, 50.0]);
        assert!(e.table().contains("accuracy 75.00%"));
    }
}
