//! `wardrobe import`: a marketplace's own labelled photos become a data-set directory that
//! `train`, `evaluate`, `predict` and `tune` read with `--data DIR`.
//!
//! Sources are folders with one sub-folder per category (the sub-folder's name is the class name;
//! photos anywhere below it belong to it) and labels CSV files as `wardrobe label` writes them
//! (the reviewer's `reviewed_label` where set; with `accept_confident`, the model's `label` for
//! rows that did not need review; other rows are skipped, and so are rows a reviewer marked not
//! ours and rows whose verdict is `unknown` that no reviewer labelled). Several sources merge; the classes are
//! the sorted union of their names.
//!
//! Every photo goes through the photo pipeline at the chosen shape. A photo's split is decided by
//! a hash of its bytes, so importing again with more photos never moves an old photo between the
//! training and test sets, and each split is ordered by that hash (a fixed shuffle, so the
//! validation tail `train` takes is a random sample). Photos with the same bytes are kept once
//! (the first source's label wins) and counted; unreadable files are listed, never fatal.
//!
//! The directory holds `train-images-idx3-ubyte` / `train-labels-idx1-ubyte` and the `t10k-`
//! pair (IDX: images N×H×W for grey, N×H×W×C for colour; labels u8, or 16-bit for more than 256
//! classes), `dataset.json` (classes, shape, counts, sources), `manifest.csv` (every photo kept:
//! path, class, split, hash, labelled by a person or the model) and `unreadable.csv`. Photos
//! labelled by the model (`accept_confident`) go to the training split only: the test split is
//! human truth, so evaluating never grades a model against its own answers.

use crate::data::dataset::{Dataset, DatasetFile, MAX_CLASSES, Split, check_classes};
use crate::data::decode;
use crate::data::labels::{LabelsFile, NOT_OURS, csv_record, find_images};
use crate::data::photo::{self, PhotoShape};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::seed::mix_seed;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Fewest classes a catalogue may have.
pub const MIN_CLASSES: usize = 2;

/// Photos converted between two progress reports.
const CHUNK: usize = 256;

/// Settings of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// What the photo pipeline makes.
    pub shape: PhotoShape,
    /// Fraction of photos (by content hash) that go to the test set.
    pub test_split: f64,
    /// Take the model's label for CSV rows that did not need review and have no reviewed label.
    pub accept_confident: bool,
    /// Largest accepted photo, in pixels.
    pub max_pixels: u64,
    /// The catalogue's classes, when given as a list (`--classes FILE`), beside those its
    /// folders name.
    pub classes: Option<Vec<String>>,
    /// Classes a labels file may bring that the catalogue does not have yet (`--new-class`).
    pub new_classes: Vec<String>,
}

/// A photo to import and the class it is labelled with.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    path: PathBuf,
    class: String,
    /// Where a labels-file row came from (`labels.csv row 5`), for messages.
    row: Option<String>,
    /// The class is the model's answer (a confident row taken unreviewed), not a person's.
    by_model: bool,
}

/// A file that could not be imported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    /// Photos found in the sources (labelled CSV rows included).
    pub found: usize,
    /// CSV rows skipped: no reviewed label (and not taken as confident).
    pub unreviewed: usize,
    /// Photos whose bytes were already imported from another path.
    pub duplicates: usize,
    /// Of those, how many carried a different label than the copy kept.
    pub conflicting: usize,
    /// Training images written.
    pub train: usize,
    /// Test images written.
    pub test: usize,
    /// Training images labelled by the model (`accept_confident`), never in the test split.
    pub model_labelled: usize,
    /// Hidden folders and files (names starting with `.`) in the source folders, not imported.
    pub hidden: Vec<String>,
    /// Images per class (both splits).
    pub per_class: BTreeMap<String, usize>,
    /// Files that could not be read or decoded.
    pub unreadable: Vec<Unreadable>,
}

/// The 64-bit content hash that decides a photo's split and identifies duplicates: FNV-1a over
/// the file's bytes, finished with SplitMix64's mixer so every bit depends on every byte.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let fnv = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    mix_seed(fnv, 0)
}

/// Whether a photo of this hash belongs to the test set when `fraction` of them do.
fn is_test(hash: u64, fraction: f64) -> bool {
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < fraction
}

/// Whether a converted photo goes to the test set: by its hash, unless its label is the model's
/// own (those train only; the test split is human truth).
fn in_test(c: &Converted, fraction: f64) -> bool {
    !c.item.by_model && is_test(c.hash, fraction)
}

/// The photos of a source folder: one sub-folder per class; hidden folders (names starting with
/// `.`, such as a viewer's `.thumbs`) are not classes and go to `hidden`.
fn folder_items(dir: &Path, hidden: &mut Vec<String>) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    let is_hidden = |p: &PathBuf| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    hidden.extend(entries.iter().filter(|p| is_hidden(p)).map(|p| p.display().to_string()));
    for sub in entries.into_iter().filter(|p| p.is_dir() && !is_hidden(p)) {
        let class = sub
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::format(&sub, "a category folder's name must be UTF-8"))?
            .to_string();
        items.extend(find_images(&sub)?.into_iter().map(|path| Item {
            path,
            class: class.clone(),
            row: None,
            by_model: false,
        }));
    }
    if items.is_empty() {
        return Err(Error::format(dir, "no photos in category sub-folders (expected DIR/<category>/<photo>)"));
    }
    Ok(items)
}

/// Every reviewed label must be a class the catalogue has: its folders', its `--classes` list's,
/// the model's (the labels files' `label` column) or one allowed by `--new-class`. A typo is an
/// error naming the row and the closest class, never a new class of one photo.
fn check_vocabulary(items: &[Item], vocabulary: &BTreeSet<String>) -> Result<()> {
    for item in items {
        if let Some(row) = &item.row
            && !vocabulary.contains(&item.class)
        {
            let closest = vocabulary.iter().min_by_key(|c| edit_distance(c, &item.class)).cloned().unwrap_or_default();
            return Err(Error::Invalid(format!(
                "{row}: '{}' is not a class of this catalogue (closest: '{closest}'); correct the row, or add the class with --new-class '{}'",
                item.class, item.class
            )));
        }
    }
    Ok(())
}

/// The Levenshtein distance between `a` and `b`, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The labelled rows of a labels CSV (as `wardrobe label` writes it), how many were skipped,
/// and the model's classes its `label` column names.
fn csv_items(path: &Path, accept_confident: bool) -> Result<(Vec<Item>, usize, BTreeSet<String>)> {
    let file = LabelsFile::read(path)?;
    let column = |name: &str| file.column(name, path);
    let (path_col, label_col, review_col, reviewed_col) =
        (column("path")?, column("label")?, column("needs_review")?, column("reviewed_label")?);
    let verdict_col = file.find_column("verdict");
    let model_classes: BTreeSet<String> =
        file.records.iter().filter_map(|r| r.get(label_col)).filter(|l| !l.is_empty()).map(String::from).collect();
    let base = path.parent().unwrap_or(Path::new(""));
    let (mut items, mut skipped) = (Vec::new(), 0);
    for (i, record) in file.records.iter().enumerate() {
        let field = |c: usize| record.get(c).unwrap_or("").trim();
        let unknown = verdict_col.is_some_and(|c| field(c) == "unknown");
        let mut by_model = false;
        let class = match field(reviewed_col) {
            "" if accept_confident && field(review_col) == "false" && !unknown => {
                by_model = true;
                field(label_col)
            }
            "" | NOT_OURS => {
                skipped += 1;
                continue;
            }
            reviewed => reviewed,
        };
        if class.is_empty() {
            return Err(Error::format(path, format!("row {}: empty label", i + 2)));
        }
        items.push(Item {
            path: base.join(field(path_col)),
            class: class.to_string(),
            row: Some(format!("{} row {}", path.display(), i + 2)),
            by_model,
        });
    }
    Ok((items, skipped, model_classes))
}

/// A converted photo.
struct Converted {
    item: Item,
    hash: u64,
    pixels: Vec<u8>,
}

/// Imports `sources` into the data-set directory `out`; `progress(done, total)` is called as
/// photos are converted.
pub fn import(
    sources: &[PathBuf],
    out: &Path,
    options: ImportOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportSummary> {
    if !(0.0..1.0).contains(&options.test_split) {
        return Err(Error::flag("--test-split", options.test_split, "must be in [0, 1)"));
    }
    let mut summary = ImportSummary::default();
    let mut items = Vec::new();
    let mut vocabulary: BTreeSet<String> = options.classes.iter().flatten().cloned().collect();
    for source in sources {
        if source.is_dir() {
            let found = folder_items(source, &mut summary.hidden)?;
            vocabulary.extend(found.iter().map(|i| i.class.clone()));
            items.extend(found);
        } else {
            let (rows, skipped, model_classes) = csv_items(source, options.accept_confident)?;
            vocabulary.extend(model_classes);
            items.extend(rows);
            summary.unreviewed += skipped;
        }
    }
    vocabulary.extend(options.new_classes.iter().cloned());
    check_vocabulary(&items, &vocabulary)?;
    summary.found = items.len();
    let classes: Vec<String> = items.iter().map(|i| i.class.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    if !(MIN_CLASSES..=MAX_CLASSES).contains(&classes.len()) {
        return Err(Error::Invalid(format!(
            "the sources name {} classes; a catalogue has {MIN_CLASSES} to {MAX_CLASSES}",
            classes.len()
        )));
    }
    check_classes(&classes)?;
    let converted = convert_all(items, &options, &mut summary, progress);
    let kept = deduplicate(converted, &mut summary);
    let index: HashMap<&str, u16> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u16)).collect();
    let (mut train, mut test): (Vec<&Converted>, Vec<&Converted>) =
        kept.iter().partition(|c| !in_test(c, options.test_split));
    train.sort_by_key(|c| c.hash);
    test.sort_by_key(|c| c.hash);
    fsutil::create_dir_all(out)?;
    let shape = (options.shape.side, options.shape.side, options.shape.channels);
    for (split, part) in [(Split::Train, &train), (Split::Test, &test)] {
        let images = part.iter().flat_map(|c| c.pixels.iter().copied()).collect();
        let labels = part.iter().map(|c| index[c.item.class.as_str()]).collect();
        let data = Dataset::new(images, labels, shape, classes.clone())?;
        let stem = |kind: &str| out.join(format!("{}-{kind}", split.prefix()));
        data.write_idx(&stem("images-idx3-ubyte"), &stem("labels-idx1-ubyte"))?;
    }
    for c in &kept {
        *summary.per_class.entry(c.item.class.clone()).or_default() += 1;
    }
    (summary.train, summary.test) = (train.len(), test.len());
    summary.model_labelled = train.iter().filter(|c| c.item.by_model).count();
    let mut description = DatasetFile::new(classes, shape, (train.len(), test.len()));
    description.duplicates = summary.duplicates;
    description.model_labelled = summary.model_labelled;
    description.sources = sources.iter().map(|s| s.display().to_string()).collect();
    description.save(out)?;
    write_lists(out, [&train, &test], &summary.unreadable)?;
    Ok(summary)
}

/// Reads and converts every item in parallel, in order; failures go to `summary`.
fn convert_all(
    items: Vec<Item>,
    options: &ImportOptions,
    summary: &mut ImportSummary,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Converted> {
    let total = items.len();
    let mut out = Vec::with_capacity(total);
    for (k, chunk) in items.chunks(CHUNK).enumerate() {
        let results: Vec<Result<Converted>> = chunk
            .par_iter()
            .map(|item| {
                let bytes = decode::read_file(&item.path)?;
                let limits = decode::Limits::pixels(options.max_pixels);
                let pixels = photo::from_bytes_as(&bytes, &item.path, options.shape, &limits)?;
                Ok(Converted { item: item.clone(), hash: content_hash(&bytes), pixels })
            })
            .collect();
        for (item, result) in chunk.iter().zip(results) {
            match result {
                Ok(c) => out.push(c),
                Err(e) => {
                    summary.unreadable.push(Unreadable { path: item.path.display().to_string(), reason: e.to_string() })
                }
            }
        }
        progress((k * CHUNK + chunk.len()).min(total), total);
    }
    out
}

/// The first photo of each content hash; the others are counted as duplicates.
fn deduplicate(converted: Vec<Converted>, summary: &mut ImportSummary) -> Vec<Converted> {
    let mut first: HashMap<u64, String> = HashMap::new();
    let mut kept = Vec::with_capacity(converted.len());
    for c in converted {
        match first.get(&c.hash) {
            Some(class) => {
                summary.duplicates += 1;
                summary.conflicting += usize::from(*class != c.item.class);
            }
            None => {
                first.insert(c.hash, c.item.class.clone());
                kept.push(c);
            }
        }
    }
    kept
}

/// `manifest.csv` (every photo kept: path, class, split, its index in the split's IDX files,
/// hash, labelled by a person or the model) and `unreadable.csv`.
fn write_lists(out: &Path, [train, test]: [&[&Converted]; 2], unreadable: &[Unreadable]) -> Result<()> {
    fsutil::write_atomic(&out.join(MANIFEST), |w| {
        writeln!(w, "path,class,split,index,hash,labelled_by")?;
        let rows = train.iter().enumerate().map(|r| ("train", r)).chain(test.iter().enumerate().map(|r| ("test", r)));
        rows.into_iter().try_for_each(|(split, (index, c))| {
            let (path, hash) = (c.item.path.display().to_string(), format!("{:016x}", c.hash));
            let by = if c.item.by_model { "model" } else { "person" };
            writeln!(w, "{}", csv_record([path.as_str(), &c.item.class, split, &index.to_string(), &hash, by]))
        })
    })?;
    fsutil::write_atomic(&out.join("unreadable.csv"), |w| {
        writeln!(w, "path,reason")?;
        unreadable.iter().try_for_each(|u| writeln!(w, "{}", csv_record([u.path.as_str(), &u.reason])))
    })?;
    Ok(())
}

/// The catalogue's list of imported photos.
const MANIFEST: &str = "manifest.csv";

/// The original photo of each of the `count` images of `split` in the catalogue `dir`, as its
/// `manifest.csv` lists them (`None` where it lists none); `None` when `dir` has no manifest
/// (Fashion-MNIST's files, or a catalogue imported before the manifest had an index column).
pub fn photo_paths(dir: &Path, split: Split, count: usize) -> Result<Option<Vec<Option<PathBuf>>>> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Ok(None);
    }
    let file = LabelsFile::read(&path)?;
    let Some(index) = file.find_column("index") else { return Ok(None) };
    let (column, split_column) = (file.column("path", &path)?, file.column("split", &path)?);
    let name = match split {
        Split::Train => "train",
        Split::Test => "test",
    };
    let mut paths = vec![None; count];
    for (row, record) in file.records.iter().enumerate().filter(|(_, r)| r.get(split_column) == Some(name)) {
        let at = record.get(index).and_then(|i| i.parse::<usize>().ok()).filter(|&i| i < count);
        let at = at.ok_or_else(|| Error::format(&path, format!("row {}: index is not below {count}", row + 2)))?;
        paths[at] = record.get(column).map(PathBuf::from);
    }
    Ok(Some(paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A photo of a dark rectangle `w × h` on white, saved as PNG at `path`.
    fn photo(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let img = RgbImage::from_fn(60, 60, |x, y| if x < w && y < h { Rgb([20, 20, 20]) } else { Rgb([255; 3]) });
        img.save(path).unwrap();
    }

    fn options() -> ImportOptions {
        ImportOptions {
            shape: PhotoShape::FASHION,
            test_split: 0.3,
            accept_confident: false,
            max_pixels: 1 << 20,
            classes: None,
            new_classes: Vec::new(),
        }
    }

    #[test]
    fn folders_become_classes_and_splits_do_not_move_when_photos_are_added() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("catalogue");
        for i in 0..20 {
            photo(&src.join("Röcke").join(format!("{i}.png")), 10 + i, 50);
            photo(&src.join("Hüte").join(format!("{i}.png")), 50, 10 + i);
        }
        photo(&src.join("Hüte/copy.png"), 50, 10);
        std::fs::write(src.join("Hüte/broken.png"), b"not a png").unwrap();
        let out = dir.path().join("data");
        let summary = import(std::slice::from_ref(&src), &out, options(), &mut |_, _| {}).unwrap();
        assert_eq!((summary.found, summary.duplicates, summary.unreadable.len()), (42, 1, 1));
        assert_eq!(summary.train + summary.test, 40);
        assert!(summary.test > 0 && summary.train > summary.test);
        let train = Dataset::load_split(&out, Split::Train).unwrap();
        assert_eq!(train.classes, ["Hüte", "Röcke"]);
        // Each row without its index column (positions in a split shift as photos are added).
        let manifest = |out: &Path| {
            let text = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
            let row = |l: &str| {
                l.split(',').enumerate().filter(|&(i, _)| i != 3).map(|(_, f)| f).collect::<Vec<_>>().join(",")
            };
            text.lines().skip(1).map(row).collect::<BTreeSet<_>>()
        };
        let before = manifest(&out);
        for i in 20..40 {
            photo(&src.join("Röcke").join(format!("{i}.png")), 30, 10 + i);
        }
        import(&[src], &out, options(), &mut |_, _| {}).unwrap();
        let after = manifest(&out);
        assert!(before.is_subset(&after), "old photos keep their split");
        assert_eq!(after.len(), before.len() + 20);
    }

    #[test]
    fn reviewed_csv_rows_are_taken_and_unreviewed_ones_skipped() {
        let dir = tempfile::tempdir().unwrap();
        for (name, w) in [("a", 20), ("b", 30), ("c", 40)] {
            photo(&dir.path().join("up").join(format!("{name}.png")), w, 40);
        }
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "path,label,confidence,top3,needs_review,reviewed_label\n\
             up/a.png,Hats,0.4,,true,Skirts\n\
             up/b.png,Hats,0.9,,false,\n\
             up/c.png,Skirts,0.3,,true,\n",
        )
        .unwrap();
        let out = dir.path().join("data");
        let err = import(std::slice::from_ref(&csv), &out, options(), &mut |_, _| {}).unwrap_err().to_string();
        assert!(err.contains("1 classes"), "{err}");
        let confident = ImportOptions { accept_confident: true, ..options() };
        let summary = import(&[csv], &out, confident, &mut |_, _| {}).unwrap();
        assert_eq!((summary.found, summary.unreviewed), (2, 1));
        assert_eq!(summary.per_class, BTreeMap::from([("Hats".into(), 1), ("Skirts".into(), 1)]));
    }

    #[test]
    fn unknown_rows_and_rows_marked_not_ours_are_never_taken_unreviewed() {
        let dir = tempfile::tempdir().unwrap();
        for (name, w) in [("a", 20), ("b", 30), ("c", 40), ("d", 10)] {
            photo(&dir.path().join("up").join(format!("{name}.png")), w, 40);
        }
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label\n\
             up/a.png,Hats,0.9,,false,9.0,unknown,\n\
             up/b.png,Hats,0.9,,true,9.0,unknown,Skirts\n\
             up/c.png,Hats,0.9,,false,0.5,label,\n\
             up/d.png,Skirts,0.9,,true,9.0,unknown,(not ours)\n",
        )
        .unwrap();
        let confident = ImportOptions { accept_confident: true, ..options() };
        let summary = import(&[csv], &dir.path().join("data"), confident, &mut |_, _| {}).unwrap();
        assert_eq!((summary.found, summary.unreviewed), (2, 2));
        assert_eq!(summary.per_class, BTreeMap::from([("Hats".into(), 1), ("Skirts".into(), 1)]));
    }

    #[test]
    fn rows_labelled_by_the_model_train_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = String::from("path,label,confidence,top3,needs_review,reviewed_label\n");
        for i in 0..40 {
            photo(&dir.path().join("up").join(format!("{i}.png")), 10 + i, 40);
            // Half reviewed by a person, half taken as the model said.
            let reviewed = if i % 2 == 0 { "Skirts" } else { "" };
            rows.push_str(&format!("up/{i}.png,Hats,0.9,,false,{reviewed}\n"));
        }
        let csv = dir.path().join("labels.csv");
        std::fs::write(&csv, rows).unwrap();
        let out = dir.path().join("data");
        let new_classes = vec!["Skirts".to_string()];
        let options = ImportOptions { accept_confident: true, test_split: 0.5, new_classes, ..options() };
        let summary = import(&[csv], &out, options, &mut |_, _| {}).unwrap();
        assert_eq!((summary.found, summary.model_labelled), (40, 20));
        let test = Dataset::load_split(&out, Split::Test).unwrap();
        assert!(
            !test.is_empty() && test.labels.iter().all(|&l| test.classes[l as usize] == "Skirts"),
            "{:?}",
            test.labels
        );
        assert_eq!(DatasetFile::load(&out).unwrap().unwrap().model_labelled, 20);
        let manifest = std::fs::read_to_string(out.join("manifest.csv")).unwrap();
        assert!(!manifest.lines().any(|l| l.contains(",test,") && l.ends_with(",model")), "{manifest}");
        assert_eq!(manifest.lines().filter(|l| l.ends_with(",model")).count(), 20);
    }

    #[test]
    fn a_reviewed_label_outside_the_catalogue_names_the_row_and_the_closest_class() {
        let dir = tempfile::tempdir().unwrap();
        let shop = dir.path().join("shop");
        for (class, w) in [("Kleider", 20), ("Hosen", 30), (".thumbs", 12)] {
            photo(&shop.join(class).join("p.png"), w, 40);
        }
        photo(&dir.path().join("up").join("new.png"), 25, 40);
        let csv = dir.path().join("labels.csv");
        std::fs::write(
            &csv,
            "path,label,confidence,top3,needs_review,reviewed_label\nup/new.png,Hosen,0.4,,true,Kleid\n",
        )
        .unwrap();
        let sources = [shop.clone(), csv.clone()];
        let out = dir.path().join("data");
        let err = import(&sources, &out, options(), &mut |_, _| {}).unwrap_err().to_string();
        assert!(
            err.contains("labels.csv row 2: 'Kleid' is not a class of this catalogue (closest: 'Kleider')"),
            "{err}"
        );
        assert!(err.contains("--new-class 'Kleid'"), "{err}");
        assert!(!out.exists(), "nothing written");
        let allowed = ImportOptions { new_classes: vec!["Kleid".into()], ..options() };
        let summary = import(&sources, &out, allowed, &mut |_, _| {}).unwrap();
        assert_eq!(summary.per_class.keys().collect::<Vec<_>>(), ["Hosen", "Kleid", "Kleider"]);
        assert_eq!(summary.hidden, [shop.join(".thumbs").display().to_string()]);
        assert_eq!(
            (edit_distance("Kleid", "Kleider"), edit_distance("", "ab"), edit_distance("kitten", "sitting")),
            (2, 2, 3)
        );
    }

    #[test]
    fn hashes_are_stable_and_spread() {
        // Pinned: the test split of an imported catalogue depends on it.
        assert_eq!(content_hash(b"wardrobe"), 13_076_040_027_245_767_264);
        let tests = (0..10_000u32).filter(|i| is_test(content_hash(&i.to_le_bytes()), 0.1)).count();
        assert!((900..1100).contains(&tests), "{tests}");
    }
}
