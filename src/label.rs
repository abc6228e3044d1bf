//! Labelling a folder of seller photos: every image file below the folder (recursively) goes
//! through the photo conversion and the model, in parallel batches; one row per photo is
//! appended to the output (CSV or JSON lines) and flushed after every batch, so a crash loses at
//! most the batch in flight. Rerunning with the same output skips photos already labelled. Files
//! that cannot be read or decoded are reported, never fatal. Every row has an empty
//! `reviewed_label` for a reviewer to fill (in a spreadsheet or on `serve --review`'s page);
//! `wardrobe import` then learns from it.

use crate::data::decode;
use crate::data::labels::{CSV_HEADER, csv_record, find_images};
use crate::data::photo;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::nn::infer::Predictor;
use crate::nn::model::Model;
use crate::ood::Ood;
use crate::predict::{Ranked, Thresholds, Verdict, top_k};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Settings of a labelling run.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// Photos below this confidence are flagged for a human.
    pub review_below: f32,
    /// Photos whose out-of-distribution score is above this are `unknown` (default: the
    /// model's own threshold).
    pub unknown_above: Option<f32>,
    /// Photos per batch.
    pub batch: usize,
    /// What decoding one photo may take (pixels, memory budget, deadline).
    pub limits: decode::Limits,
    /// What the photo pipeline makes for the model.
    pub shape: photo::PhotoShape,
    /// Label only this shard of the folder.
    pub shard: Shard,
}

/// One of `count` disjoint parts of a folder (`index` from 0), as a Kubernetes Indexed Job's
/// completion index picks it: a photo belongs to the shard its path below the folder hashes to,
/// so the parts cover the folder whatever machine or mount point labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// The whole folder.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the photo at `relative` (its path below the folder) is this shard's.
    pub fn contains(&self, relative: &Path) -> bool {
        let path = relative.to_string_lossy();
        crate::data::import::content_hash(path.as_bytes()) % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;
    /// `I/N`, with I from 0 to N−1.
    fn from_str(text: &str) -> Result<Shard> {
        let bad = || Error::Invalid(format!("shard '{text}': expected I/N with 0 ≤ I < N"));
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// One labelled photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRow {
    /// The photo's path.
    pub path: String,
    /// Most probable class.
    pub label: String,
    /// Its probability.
    pub confidence: f32,
    /// The three most probable classes.
    pub top: Vec<Ranked>,
    /// The verdict is not `label` (kept for files and clients that read this column).
    pub needs_review: bool,
    /// How unusual the photo is for the model (higher = more unusual), when it has a score.
    #[serde(default)]
    pub ood_score: Option<f32>,
    /// `label`, `review` or `unknown`.
    #[serde(default)]
    pub verdict: Verdict,
    /// The class a human gave it (empty until reviewed).
    #[serde(default)]
    pub reviewed_label: Option<String>,
}

/// A photo that could not be labelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Image files found.
    pub found: usize,
    /// Skipped because the output already had them.
    pub skipped: usize,
    /// Labelled by this run.
    pub labelled: usize,
    /// Of those, ours but unsure which (verdict `review`).
    pub needs_review: usize,
    /// Of those, not one of our categories (verdict `unknown`).
    pub unknown: usize,
    /// Labelled photos per class (this run).
    pub per_label: BTreeMap<String, usize>,
    /// Photos that failed, with reasons.
    pub failed: Vec<Failure>,
}

/// Output format, chosen by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

impl Format {
    fn of(path: &Path) -> Result<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl") => Ok(Format::JsonLines),
            _ => Err(Error::Invalid(format!("{}: output must end in .csv or .jsonl", path.display()))),
        }
    }
}

/// Appends `text` and syncs it; if that fails (a full disk, say), cuts the file back to where it
/// was, so the output never ends in a torn row.
fn append_whole(file: &mut std::fs::File, text: &str, out: &Path) -> Result<()> {
    let before = file.metadata().map_err(|e| Error::io(out, e))?.len();
    file.write_all(text.as_bytes()).and_then(|_| file.sync_data()).map_err(|e| {
        let _ = file.set_len(before);
        Error::io(out, e)
    })
}

impl LabelRow {
    /// The verdict on `path` from its class probabilities: the `k` most probable classes, the
    /// best as the label, flagged for review when its probability is below `review_below`.
    pub fn from_probabilities(
        path: String,
        (probs, ood_score): (&[f32], Option<f32>),
        names: &[String],
        k: usize,
        thresholds: Thresholds,
    ) -> LabelRow {
        let top = top_k(probs, names, k.max(1));
        let (label, confidence) = (top[0].label.clone(), top[0].probability);
        let verdict = thresholds.verdict(confidence, ood_score);
        let needs_review = verdict != Verdict::Label;
        LabelRow { path, label, confidence, needs_review, ood_score, verdict, top, reviewed_label: None }
    }

    fn render(&self, format: Format) -> String {
        match format {
            Format::JsonLines => serde_json::to_string(self).expect("row serialises"),
            Format::Csv => {
                let top: Vec<String> = self.top.iter().map(|r| format!("{}:{:.4}", r.label, r.probability)).collect();
                let (confidence, review) = (format!("{:.4}", self.confidence), self.needs_review.to_string());
                let ood = self.ood_score.map(|s| format!("{s:.4}")).unwrap_or_default();
                let reviewed = self.reviewed_label.as_deref().unwrap_or_default();
                let verdict = self.verdict.as_str();
                csv_record([
                    self.path.as_str(),
                    &self.label,
                    &confidence,
                    &top.join(";"),
                    &review,
                    &ood,
                    verdict,
                    reviewed,
                ])
            }
        }
    }
}

/// Paths already labelled.
type Labelled = HashSet<String>;

/// Opens the output for appending: drops a torn last line left by a crash, writes the CSV header
/// to a new file, and returns the paths already labelled.
fn open_output(out: &Path, format: Format) -> Result<(std::fs::File, Labelled)> {
    let mut file = OpenOptions::new().create(true).read(true).append(true).open(out).map_err(|e| Error::io(out, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(|e| Error::io(out, e))?;
    let (done, complete_len) = match format {
        Format::Csv => labelled_csv(&data),
        Format::JsonLines => labelled_json_lines(&data, out)?,
    };
    file.set_len(complete_len as u64).map_err(|e| Error::io(out, e))?;
    file.seek(SeekFrom::End(0)).map_err(|e| Error::io(out, e))?;
    if complete_len == 0 && format == Format::Csv {
        writeln!(file, "{CSV_HEADER}").map_err(|e| Error::io(out, e))?;
    }
    Ok((file, done))
}

/// The paths of a CSV labels file's complete records (a record ends with its line end, so one
/// torn by a crash is not), and the bytes those records take.
fn labelled_csv(data: &[u8]) -> (Labelled, usize) {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(data);
    let (mut done, mut complete, mut record) = (Labelled::new(), 0, csv::StringRecord::new());
    while let Ok(true) = reader.read_record(&mut record) {
        let end = reader.position().byte() as usize;
        if data.get(end.wrapping_sub(1)) != Some(&b'\n') {
            break;
        }
        complete = end;
        if record.iter().collect::<Vec<_>>().join(",") != CSV_HEADER {
            done.insert(record[0].to_string());
        }
    }
    (done, complete)
}

/// The paths of a JSON-lines labels file's complete lines, and the bytes they take.
fn labelled_json_lines(data: &[u8], out: &Path) -> Result<(Labelled, usize)> {
    let (mut done, mut complete) = (Labelled::new(), 0);
    for line in data.split_inclusive(|&b| b == b'\n').take_while(|l| l.ends_with(b"\n")) {
        let row: LabelRow =
            serde_json::from_slice(line).map_err(|e| Error::format(out, format!("not a labels file: {e}")))?;
        done.insert(row.path);
        complete += line.len();
    }
    Ok((done, complete))
}

/// The errors file written beside the output: `<output>.errors.csv`.
pub fn errors_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".errors.csv");
    out.with_file_name(name)
}

/// Labels every photo below `folder` into `out` with `model` and, when it has one, its
/// out-of-distribution score `ood`; `progress(done, total)` is called after each batch.
#[allow(clippy::too_many_arguments)]
pub fn label_folder(
    model: &Model,
    ood: Option<&Ood>,
    names: &[String],
    folder: &Path,
    out: &Path,
    options: LabelOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Summary> {
    let format = Format::of(out)?;
    // Absolute paths, so that the labels file can be read from anywhere (`wardrobe import`).
    let folder = &std::path::absolute(folder).map_err(|e| Error::io(folder, e))?;
    let mut photos = find_images(folder)?;
    photos.retain(|p| options.shard.contains(p.strip_prefix(folder).unwrap_or(p)));
    let (mut file, done) = open_output(out, format)?;
    let todo: Vec<&PathBuf> = photos.iter().filter(|p| !done.contains(&p.display().to_string())).collect();
    let mut summary = Summary { found: photos.len(), skipped: photos.len() - todo.len(), ..Default::default() };
    let mut predictor = Predictor::new(model, 64);
    let thresholds = Thresholds {
        review_below: options.review_below,
        unknown_above: options.unknown_above.or(ood.map(|o| o.threshold)),
    };
    for (b, batch) in todo.chunks(options.batch.max(1)).enumerate() {
        let converted: Vec<Result<Vec<u8>>> =
            batch.par_iter().map(|p| photo::load_as(p, options.shape, &options.limits)).collect();
        let mut pixels = Vec::with_capacity(batch.len() * options.shape.len());
        let mut ok_paths = Vec::new();
        for (path, result) in batch.iter().zip(converted) {
            match result {
                Ok(p) => {
                    pixels.extend(p);
                    ok_paths.push(path.display().to_string());
                }
                Err(e) => summary.failed.push(Failure { path: path.display().to_string(), reason: e.to_string() }),
            }
        }
        let (probs, features) = predictor.probabilities_and_features(&pixels);
        let scores = ood.map(|o| o.score.scores(&features, &probs, names.len()));
        let mut text = String::new();
        for (i, (path, p)) in ok_paths.into_iter().zip(probs.chunks_exact(names.len())).enumerate() {
            let score = scores.as_ref().map(|s| s[i]);
            let row = LabelRow::from_probabilities(path, (p, score), names, 3, thresholds);
            *summary.per_label.entry(row.label.clone()).or_default() += 1;
            summary.needs_review += usize::from(row.verdict == Verdict::Review);
            summary.unknown += usize::from(row.verdict == Verdict::Unknown);
            summary.labelled += 1;
            text.push_str(&row.render(format));
            text.push('\n');
        }
        append_whole(&mut file, &text, out)?;
        progress((b * options.batch + batch.len()).min(todo.len()), todo.len());
    }
    let failures = &summary.failed;
    fsutil::write_atomic(&errors_path(out), |w| {
        writeln!(w, "path,reason")?;
        failures.iter().try_for_each(|f| writeln!(w, "{}", csv_record([f.path.as_str(), &f.reason])))
    })?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_every_path() {
        let paths: Vec<PathBuf> = (0..3000).map(|i| PathBuf::from(format!("sub{}/item{i:05}.jpg", i % 7))).collect();
        let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        let owners: Vec<usize> = paths.iter().map(|p| shards.iter().filter(|s| s.contains(p)).count()).collect();
        assert!(owners.iter().all(|&n| n == 1), "each path in exactly one shard");
        let sizes: Vec<usize> = shards.iter().map(|s| paths.iter().filter(|p| s.contains(p)).count()).collect();
        assert!(sizes.iter().all(|&n| (900..1100).contains(&n)), "{sizes:?}");
        assert!(Shard::ALL.contains(Path::new("any")));
        for bad in ["3/3", "1", "a/2", "0/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_with_commas_quotes_and_line_breaks_round_trip_and_resume() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("labels.csv");
        let names: Vec<String> = ["Bag", "Coat"].map(String::from).to_vec();
        let paths = ["plain.png", "with,comma.png", "with \"quote\".png", "two\nlines.png", "cr\r\nlf.png"];
        let (mut file, done) = open_output(&out, Format::Csv).unwrap();
        assert!(done.is_empty());
        for p in paths {
            let row = LabelRow::from_probabilities(
                p.to_string(),
                (&[0.3, 0.7], None),
                &names,
                2,
                Thresholds { review_below: 0.6, unknown_above: None },
            );
            writeln!(file, "{}", row.render(Format::Csv)).unwrap();
        }
        drop(file);
        let (_, done) = open_output(&out, Format::Csv).unwrap();
        assert_eq!(done, paths.iter().map(|p| p.to_string()).collect::<Labelled>());
        let mut reader = csv::Reader::from_path(&out).unwrap();
        let labels: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_string()).collect();
        assert_eq!(labels, ["Coat"; 5]);
    }

    #[test]
    fn finds_images_recursively_by_extension() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        for f in ["x.PNG", "a/y.jpg", "a/b/z.webp", "a/notes.txt", "a/b/raw.bin"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let found: Vec<String> = find_images(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["a/b/z.webp", "a/y.jpg", "x.PNG"]);
    }

    #[test]
    fn torn_last_line_is_dropped_and_labelled_paths_are_known() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("labels.csv");
        std::fs::write(&out, format!("{CSV_HEADER}\n\"a,1.png\",Bag,0.9,Bag:0.9,false\nb.png,Ba")).unwrap();
        let (_, done) = open_output(&out, Format::Csv).unwrap();
        assert_eq!(done, HashSet::from(["a,1.png".to_string()]));
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("false\n"));
        // A record torn inside a quoted path that held a line break.
        std::fs::write(&out, format!("{CSV_HEADER}\nb.png,Bag,0.9,Bag:0.9,false\n\"two\nli")).unwrap();
        let (_, done) = open_output(&out, Format::Csv).unwrap();
        assert_eq!(done, HashSet::from(["b.png".to_string()]));
        assert!(std::fs::read_to_string(&out).unwrap().ends_with("b.png,Bag,0.9,Bag:0.9,false\n"));
        assert!(Format::of(Path::new("x.txt")).is_err());
    }
}
