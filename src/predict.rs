//! Ranking a model's class probabilities for display.

use serde::{Deserialize, Serialize};

/// One class with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranked {
    /// Class index.
    pub index: usize,
    /// Class name.
    pub label: String,
    /// Probability.
    pub probability: f32,
}

/// The `k` most probable classes, best first (ties by lower index).
pub fn top_k(probs: &[f32], names: &[String], k: usize) -> Vec<Ranked> {
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|i| Ranked { index: i, label: names[i].clone(), probability: probs[i] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_best_first() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let r = top_k(&[0.2, 0.7, 0.1], &names, 2);
        assert_eq!(r.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(top_k(&[0.5, 0.5], &names, 5).len(), 2);
    }
}
