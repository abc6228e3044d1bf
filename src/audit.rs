//! `wardrobe audit`: what in a data set's labels a person should look at, without grading a
//! model against its own answers.
//!
//! - **Label issues** by confident learning (Northcutt et al. 2021, as cleanlab's
//!   `find_label_issues` with `filter_by="confident_learning"`): every image gets class
//!   probabilities from a model that did not train on it (K folds by index, each model trained on
//!   the other folds with the run's recipe); class j's threshold is the mean probability of j
//!   over the images labelled j; an image is confidently of class k when p_k reaches k's
//!   threshold (the most probable such k), and an issue when that k is not its label. Issues are
//!   ranked by the probability of the given label, lowest first.
//! - **Near-duplicates**: images whose 8×8 mean-threshold hash agrees and whose pixels differ by at
//!   most [`NEAR_DUPLICATE_MEAN_DIFFERENCE`] on average; listed when their labels differ.
//! - **Outliers**: images whose out-of-fold out-of-distribution score is above the fold model's
//!   threshold (photos that are perhaps not ours at all).
//!
//! The findings are written as a labels file (`label` is the out-of-fold model's class, the
//! given label and the issue in columns of their own), so `serve --review` shows them and
//! `import` takes the reviewers' answers.

use crate::data::dataset::Dataset;
use crate::data::labels::csv_record;
use crate::error::Result;
use crate::fsutil;
use crate::model_dir;
use crate::nn::infer::{INFERENCE_BATCH, Predictor};
use crate::nn::model::Model;
use crate::predict::top_k;
use crate::train::run_spec::RunSpec;
use crate::train::session;
use crate::train::state::TrainObserver;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Largest mean absolute pixel difference (0–255) of two images called near-duplicates.
pub const NEAR_DUPLICATE_MEAN_DIFFERENCE: f64 = 3.0;

/// Largest group of same-hash images compared pair by pair (larger groups are mostly blank
/// images; their first this many are compared).
const MAX_GROUP: usize = 256;

/// What is wrong with an image's label, perhaps.
#[derive(Debug, Clone, PartialEq)]
pub enum Issue {
    /// Confident learning says it is of another class: `suggested`.
    Label {
        /// The class it is confidently of.
        suggested: usize,
    },
    /// Nearly the same image as image `of`, which is labelled differently.
    NearDuplicate {
        /// The other image's index.
        of: usize,
    },
    /// Nearly the same image as test image `test`: the evaluation sees it in training.
    InTestSet {
        /// The test image's index.
        test: usize,
    },
    /// Its out-of-distribution score is above the threshold.
    Outlier,
}

impl Issue {
    /// Its name in the audit file.
    pub fn name(&self) -> &'static str {
        match self {
            Issue::Label { .. } => "label",
            Issue::NearDuplicate { .. } => "near-duplicate",
            Issue::InTestSet { .. } => "in-test-set",
            Issue::Outlier => "outlier",
        }
    }
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The image's index in the data set.
    pub index: usize,
    /// The issue.
    pub issue: Issue,
}

/// The out-of-fold view of a data set.
pub struct Audit {
    /// Class probabilities of every image from the model that did not train on it.
    pub probabilities: Vec<f32>,
    /// Out-of-distribution score of every image, from the same model.
    pub ood_scores: Vec<f32>,
    /// Each image's fold model's threshold.
    pub thresholds: Vec<f32>,
    /// The findings: label issues (ranked), then near-duplicates, then outliers.
    pub findings: Vec<Finding>,
}

/// Trains `folds` models on `data` (each on the images whose index modulo `folds` is not its
/// fold, in a run directory under `work`), and audits every image with the one that did not see it;
/// with a `test` set, also lists training images nearly the same as a test image.
pub fn audit(
    data: &Dataset,
    test: Option<&Dataset>,
    run: &RunSpec,
    folds: usize,
    work: &Path,
    observer: &mut dyn TrainObserver,
    interrupt: &AtomicBool,
) -> Result<Audit> {
    if folds < 2 || folds > data.len() {
        return Err(crate::Error::flag("--folds", folds, format!("must be 2 to the {} images", data.len())));
    }
    let k = data.classes.len();
    let (mut probabilities, mut ood_scores, mut thresholds) =
        (vec![0.0; data.len() * k], vec![0.0; data.len()], vec![0.0; data.len()]);
    for fold in 0..folds {
        let (held, kept): (Vec<usize>, Vec<usize>) = (0..data.len()).partition(|i| i % folds == fold);
        let train = subset(data, &kept)?;
        let (train, val) = crate::data::source::split_validation(train, run.val_split)?;
        let mut model = Model::initialised(run.model.clone(), k, run.training.seed)?;
        let dir = work.join(format!("fold{}", fold + 1));
        let end = session::run(
            &mut model,
            Default::default(),
            run.training.clone(),
            None,
            (&train, &val),
            &dir,
            observer,
            interrupt,
        )?;
        if end == crate::train::state::FitEnd::Interrupted {
            return Err(crate::Error::Interrupted);
        }
        let loaded = model_dir::load(&dir)?;
        let ood = loaded.ood.as_ref().expect("a trained model carries its score");
        let pixels = subset(data, &held)?.images;
        let (probs, features) = Predictor::new(&loaded.model, INFERENCE_BATCH).probabilities_and_features(&pixels);
        let scores = ood.score.scores(&features, &probs, k);
        for (j, &i) in held.iter().enumerate() {
            probabilities[i * k..(i + 1) * k].copy_from_slice(&probs[j * k..(j + 1) * k]);
            (ood_scores[i], thresholds[i]) = (scores[j], ood.threshold);
        }
    }
    let mut findings: Vec<Finding> = label_issues(&probabilities, &data.labels, k)
        .into_iter()
        .map(|(index, suggested)| Finding { index, issue: Issue::Label { suggested } })
        .collect();
    findings.extend(
        near_duplicates(data).into_iter().map(|(index, of)| Finding { index, issue: Issue::NearDuplicate { of } }),
    );
    if let Some(test) = test {
        let across = in_test_set(data, test).into_iter();
        findings.extend(across.map(|(index, test)| Finding { index, issue: Issue::InTestSet { test } }));
    }
    findings.extend(
        (0..data.len())
            .filter(|&i| ood_scores[i] > thresholds[i])
            .map(|index| Finding { index, issue: Issue::Outlier }),
    );
    Ok(Audit { probabilities, ood_scores, thresholds, findings })
}

/// The images `indices` of `data`.
fn subset(data: &Dataset, indices: &[usize]) -> Result<Dataset> {
    let images = indices.iter().flat_map(|&i| data.image(i).iter().copied()).collect();
    let labels = indices.iter().map(|&i| data.labels[i]).collect();
    Dataset::new(images, labels, data.shape(), data.classes.clone())
}

/// Confident learning's label issues among out-of-fold `probs` (rows of `k`) against `labels`:
/// rows confidently of another class (its probability at least the mean over that class's
/// rows), and rows likelier of another class whose given label is below its class's mean; as
/// many as the first kind counts, ranked by the probability of the given label, lowest first,
/// each with the class suggested.
pub fn label_issues(probs: &[f32], labels: &[u16], k: usize) -> Vec<(usize, usize)> {
    let (mut sums, mut counts) = (vec![0.0f64; k], vec![0usize; k]);
    for (row, &l) in probs.chunks_exact(k).zip(labels) {
        sums[l as usize] += f64::from(row[l as usize]);
        counts[l as usize] += 1;
    }
    let thresholds: Vec<f64> = sums.iter().zip(&counts).map(|(s, &c)| if c > 0 { s / c as f64 } else { 1.0 }).collect();
    let mut issues: Vec<(usize, usize, bool)> = probs
        .chunks_exact(k)
        .zip(labels)
        .enumerate()
        .filter_map(|(i, (row, &l))| {
            let most = |classes: &mut dyn Iterator<Item = usize>| {
                classes.max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            };
            let confident = most(&mut (0..k).filter(|&j| f64::from(row[j]) >= thresholds[j]));
            let likeliest = most(&mut (0..k)).expect("k > 0");
            // Confidently another class; or, where the likeliest class's threshold is high (an
            // easy class, its own images near certain), likelier another class while the given
            // one is below its own images' mean.
            let doubted = f64::from(row[l as usize]) < thresholds[l as usize];
            match confident {
                Some(best) if best != l as usize => Some((i, best, true)),
                _ if likeliest != l as usize && doubted => Some((i, likeliest, false)),
                _ => None,
            }
        })
        .collect();
    // As many issues as confident learning counts (its estimate of the wrong labels), the
    // least likely given labels first.
    let count = issues.iter().filter(|(_, _, confident)| *confident).count();
    issues.sort_by(|&(a, _, _), &(b, _, _)| {
        let given = |i: usize| probs[i * k + labels[i] as usize];
        given(a).total_cmp(&given(b)).then(a.cmp(&b))
    });
    issues.into_iter().take(count).map(|(i, suggested, _)| (i, suggested)).collect()
}

/// Pairs (later, earlier) of nearly identical images with different labels.
pub fn near_duplicates(data: &Dataset) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for members in hash_groups(data).values() {
        let members = &members[..members.len().min(MAX_GROUP)];
        for (n, &b) in members.iter().enumerate() {
            let twin = members[..n].iter().find(|&&a| {
                data.labels[a] != data.labels[b]
                    && mean_difference(data.image(a), data.image(b)) <= NEAR_DUPLICATE_MEAN_DIFFERENCE
            });
            if let Some(&a) = twin {
                pairs.push((b, a));
            }
        }
    }
    pairs.sort_unstable();
    pairs
}

/// Pairs (training image, test image) of nearly identical images across the split.
pub fn in_test_set(train: &Dataset, test: &Dataset) -> Vec<(usize, usize)> {
    let groups = hash_groups(test);
    (0..train.len())
        .filter_map(|i| {
            let members = groups.get(&mean_hash(train.image(i), train.shape()))?;
            let close = |&&j: &&usize| mean_difference(train.image(i), test.image(j)) <= NEAR_DUPLICATE_MEAN_DIFFERENCE;
            members.iter().take(MAX_GROUP).find(close).map(|&j| (i, j))
        })
        .collect()
}

/// The images of `data` grouped by their [`mean_hash`], each group in index order.
fn hash_groups(data: &Dataset) -> HashMap<u64, Vec<usize>> {
    let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
    for i in 0..data.len() {
        groups.entry(mean_hash(data.image(i), data.shape())).or_default().push(i);
    }
    groups
}

/// The 8×8 mean-threshold hash of an image (its grey levels averaged over an 8×8 grid; a bit per
/// cell above the mean).
fn mean_hash(pixels: &[u8], (rows, cols, channels): (usize, usize, usize)) -> u64 {
    let mut cells = [0.0f64; 64];
    for (i, p) in pixels.chunks_exact(channels).enumerate() {
        let (r, c) = (i / cols, i % cols);
        cells[(r * 8 / rows) * 8 + c * 8 / cols] += p.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    let mean = cells.iter().sum::<f64>() / 64.0;
    cells.iter().enumerate().fold(0, |h, (i, &v)| h | (u64::from(v > mean) << i))
}

/// The mean absolute difference of two images' values.
fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len().max(1) as f64
}

/// Writes the findings as a labels file at `out` (atomically): `path` (the original photo where
/// `photos` lists one, else `train:INDEX`), `label` (the out-of-fold model's class), `confidence`,
/// `top3`, `needs_review`, `ood_score`, `verdict` (`unknown` for outliers, else `review`), an empty
/// `reviewed_label`, then `given_label`, `issue` and `detail`.
pub fn write(out: &Path, data: &Dataset, audit: &Audit, photos: Option<&[Option<PathBuf>]>) -> Result<()> {
    let k = data.classes.len();
    let name = |i: usize| match photos.and_then(|p| p.get(i)?.as_ref()) {
        Some(p) => p.display().to_string(),
        None => format!("train:{i}"),
    };
    fsutil::write_atomic(out, |w| {
        writeln!(
            w,
            "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label,given_label,issue,detail"
        )?;
        for f in &audit.findings {
            let i = f.index;
            let row = &audit.probabilities[i * k..(i + 1) * k];
            let top = top_k(row, &data.classes, 3);
            let top3: Vec<String> = top.iter().map(|r| format!("{}:{:.4}", r.label, r.probability)).collect();
            // A label issue suggests the class it is confidently of; the others, the most probable.
            let suggested = match f.issue {
                Issue::Label { suggested } => suggested,
                _ => top[0].index,
            };
            let given = &data.classes[data.labels[i] as usize];
            let detail = match &f.issue {
                Issue::Label { .. } => {
                    format!("given {given} has probability {:.4}", audit.probabilities[i * k + data.labels[i] as usize])
                }
                Issue::NearDuplicate { of } => {
                    format!(
                        "nearly the same image as {} labelled {}",
                        name(*of),
                        data.classes[data.labels[*of] as usize]
                    )
                }
                Issue::InTestSet { test } => {
                    format!("nearly the same image as test:{test}: the evaluation sees it in training")
                }
                Issue::Outlier => format!("score {:.3} above {:.3}", audit.ood_scores[i], audit.thresholds[i]),
            };
            let verdict = if f.issue == Issue::Outlier { "unknown" } else { "review" };
            let (confidence, score) = (format!("{:.4}", row[suggested]), format!("{:.4}", audit.ood_scores[i]));
            let path = name(i);
            let fields = [
                path.as_str(),
                &data.classes[suggested],
                &confidence,
                &top3.join(";"),
                "true",
                &score,
                verdict,
                "",
                given,
                f.issue.name(),
                &detail,
            ];
            writeln!(w, "{}", csv_record(fields))?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confident_learning_flags_the_confidently_other_and_ranks_by_the_given_probability() {
        // Two classes; thresholds: class 0 mean of p0 over label-0 rows, class 1 likewise.
        let probs = [0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.1, 0.9, 0.95, 0.05, 0.6, 0.4];
        let labels = [0, 0, 0, 1, 1, 1];
        // Class 0 threshold (0.9 + 0.8 + 0.3) / 3 = 0.667; class 1 (0.9 + 0.05 + 0.4) / 3 = 0.45.
        // Row 2 (label 0): p1 0.7 ≥ 0.45, p0 0.3 < 0.667 → issue; row 4 (label 1): p0 0.95 → issue;
        // row 5 (label 1): p0 0.6 < 0.667, p1 0.4 < 0.45 → no confident class, not an issue.
        assert_eq!(label_issues(&probs, &labels, 2), vec![(4, 0), (2, 1)], "row 4's given label is the less probable");

        // An easy class 0 (its images near certain): row 2, an image of it labelled 1, is not
        // confidently 0 (0.90 < 0.97) but its given label is doubted (0.05 < 0.425), so it is a
        // candidate; row 4 is confidently 1 (0.6 ≥ 0.425). Confident learning counts one wrong
        // label, so one issue is kept: the row whose given label is least likely.
        let probs = [0.98, 0.01, 0.01, 0.96, 0.02, 0.02, 0.90, 0.05, 0.05, 0.1, 0.8, 0.1, 0.1, 0.6, 0.3, 0.0, 0.1, 0.9];
        let labels = [0, 0, 1, 1, 2, 2];
        assert_eq!(label_issues(&probs, &labels, 3), vec![(2, 0)]);
    }

    #[test]
    fn near_duplicates_are_listed_only_across_labels() {
        let base: Vec<u8> = (0..784).map(|i| if (i % 28) < 14 { 200 } else { 10 }).collect();
        let mut close = base.clone();
        close[0] = 190;
        let other: Vec<u8> = (0..784).map(|i| if (i / 28) < 14 { 200 } else { 10 }).collect();
        let images = [base.clone(), close.clone(), other.clone(), close].concat();
        let data = Dataset::new(images, vec![0, 1, 1, 0], (28, 28, 1), vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(near_duplicates(&data), vec![(1, 0), (3, 1)]);
        let test = Dataset::new([other, base].concat(), vec![0, 0], (28, 28, 1), vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(
            in_test_set(&data, &test),
            vec![(0, 1), (1, 1), (2, 0), (3, 1)],
            "labels do not matter across the split"
        );
    }
}
