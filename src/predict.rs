//! Ranking a model's class probabilities for display, and the verdict on a photo: the one place
//! that decides between `label`, `review` and `unknown`.

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

/// The default review threshold: a label less probable than this goes to a reviewer.
pub const DEFAULT_REVIEW_BELOW: f32 = 0.6;

/// What wardrobe concludes about one photo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// One of our categories, and confident which.
    #[default]
    Label,
    /// One of our categories, unsure which: a reviewer decides.
    Review,
    /// Not one of our categories (its out-of-distribution score is above the threshold).
    Unknown,
}

impl Verdict {
    /// Its name in files and answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Label => "label",
            Verdict::Review => "review",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The thresholds a verdict is taken with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Confidence below which a photo goes to review.
    pub review_below: f32,
    /// Out-of-distribution score above which a photo is unknown (none: never).
    pub unknown_above: Option<f32>,
}

impl Thresholds {
    /// The verdict on a photo whose best class has probability `confidence` and whose
    /// out-of-distribution score (when the model has one) is `ood_score`.
    pub fn verdict(&self, confidence: f32, ood_score: Option<f32>) -> Verdict {
        match (ood_score, self.unknown_above) {
            (Some(score), Some(above)) if score > above => Verdict::Unknown,
            _ if confidence < self.review_below => Verdict::Review,
            _ => Verdict::Label,
        }
    }
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

    #[test]
    fn unknown_comes_before_review_and_needs_a_score() {
        let t = Thresholds { review_below: 0.6, unknown_above: Some(2.0) };
        assert_eq!(t.verdict(0.99, Some(2.5)), Verdict::Unknown);
        assert_eq!(t.verdict(0.3, Some(2.5)), Verdict::Unknown);
        assert_eq!(t.verdict(0.3, Some(1.0)), Verdict::Review);
        assert_eq!(t.verdict(0.99, Some(2.0)), Verdict::Label, "at the threshold is still ours");
        assert_eq!(t.verdict(0.99, None), Verdict::Label);
        let no_score = Thresholds { unknown_above: None, ..t };
        assert_eq!(no_score.verdict(0.99, Some(9.0)), Verdict::Label);
    }
}
