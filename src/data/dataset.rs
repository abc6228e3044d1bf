//! An in-memory labelled image set: u8 images stored contiguously (N × rows × cols × channels,
//! channels innermost), u16 labels and the class names they index. Loaded from IDX or CSV
//! files; a data-set directory made by `wardrobe import` adds `dataset.json` with its class names.

use crate::data::idx;
use crate::error::{Error, Result};
use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Number of classes in Fashion-MNIST.
pub const NUM_CLASSES: usize = 10;

/// The Fashion-MNIST class names, by label index.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Most classes a data set may have.
pub const MAX_CLASSES: usize = 1000;

/// Where the Debian package `dataset-fashion-mnist` installs the data.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// File name of a data-set directory's description.
pub const DATASET_FILE: &str = "dataset.json";
const DATASET_FORMAT: &str = "wardrobe-dataset/1";

/// The Fashion-MNIST class names as owned strings.
pub fn fashion_classes() -> Vec<String> {
    CLASS_NAMES.iter().map(|s| s.to_string()).collect()
}

/// Labelled images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Pixels, image after image, row-major, channels innermost, 0 = black.
    pub images: Vec<u8>,
    /// One label per image, an index into `classes`.
    pub labels: Vec<u16>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Channels per pixel (1 grey, 3 RGB).
    pub channels: usize,
    /// Class names by label.
    pub classes: Vec<String>,
}

/// Which half of a data set to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training images (60,000 in Fashion-MNIST).
    Train,
    /// The test images (10,000 in Fashion-MNIST).
    Test,
}

impl Split {
    /// The IDX file-name prefix of this split.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// `dataset.json`: what a data-set directory made by `wardrobe import` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFile {
    /// Format tag, `wardrobe-dataset/1`.
    pub format: String,
    /// Class names by label.
    pub classes: Vec<String>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel.
    pub channels: usize,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
    /// Photos seen more than once (by content) and kept once.
    #[serde(default)]
    pub duplicates: usize,
    /// Training images whose label is the model's own (`import --accept-confident`), not a
    /// person's; the test split holds none, so that evaluation never grades a model against
    /// its own answers.
    #[serde(default)]
    pub model_labelled: usize,
    /// Where the photos came from.
    #[serde(default)]
    pub sources: Vec<String>,
}

impl DatasetFile {
    /// A description of `classes` at this image shape with these counts.
    pub fn new(classes: Vec<String>, (height, width, channels): (usize, usize, usize), counts: (usize, usize)) -> Self {
        DatasetFile {
            format: DATASET_FORMAT.into(),
            classes,
            height,
            width,
            channels,
            train: counts.0,
            test: counts.1,
            duplicates: 0,
            model_labelled: 0,
            sources: Vec::new(),
        }
    }

    /// Reads `dir/dataset.json`, or `None` when there is none (a plain Fashion-MNIST directory).
    pub fn load(dir: &Path) -> Result<Option<DatasetFile>> {
        let path = dir.join(DATASET_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let text = fsutil::read_at_most(&path, fsutil::MAX_JSON_BYTES)?;
        let file: DatasetFile =
            serde_json::from_slice(&text).map_err(|e| Error::format(&path, format!("invalid JSON: {e}")))?;
        if file.format != DATASET_FORMAT {
            return Err(Error::format(&path, format!("format is '{}', expected '{DATASET_FORMAT}'", file.format)));
        }
        check_classes(&file.classes).map_err(|m| Error::format(&path, m.to_string()))?;
        Ok(Some(file))
    }

    /// Writes `dir/dataset.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("dataset file serialises");
        Ok(fsutil::write_atomic(&dir.join(DATASET_FILE), |out| out.write_all(json.as_bytes()))?)
    }
}

/// Checks a class list: 1 to [`MAX_CLASSES`] distinct, non-empty names.
pub fn check_classes(classes: &[String]) -> Result<()> {
    if classes.is_empty() || classes.len() > MAX_CLASSES {
        return Err(Error::Invalid(format!("{} classes; 1 to {MAX_CLASSES} are supported", classes.len())));
    }
    if let Some(empty) = classes.iter().position(|c| c.trim().is_empty()) {
        return Err(Error::Invalid(format!("class {empty} has an empty name")));
    }
    let mut sorted: Vec<&String> = classes.iter().collect();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Invalid(format!("class '{}' is named twice", w[0])));
    }
    Ok(())
}

impl Dataset {
    /// Builds a dataset, checking that image and label counts agree and labels index `classes`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u16>,
        (rows, cols, channels): (usize, usize, usize),
        classes: Vec<String>,
    ) -> Result<Self> {
        let pixels = rows * cols * channels;
        if pixels == 0 || images.len() != labels.len() * pixels {
            return Err(Error::Invalid(format!(
                "{} labels but {} images of {rows}×{cols}×{channels}",
                labels.len(),
                images.len().checked_div(pixels).unwrap_or(0)
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= classes.len()) {
            return Err(Error::Invalid(format!(
                "label {} at index {i} is not a class 0–{}",
                labels[i],
                classes.len().saturating_sub(1)
            )));
        }
        Ok(Dataset { images, labels, rows, cols, channels, classes })
    }

    /// Grey images labelled with the Fashion-MNIST classes.
    pub fn fashion(images: Vec<u8>, labels: Vec<u16>, rows: usize, cols: usize) -> Result<Self> {
        Dataset::new(images, labels, (rows, cols, 1), fashion_classes())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image (rows × cols × channels).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols * self.channels
    }

    /// The image shape as (rows, cols, channels).
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.rows, self.cols, self.channels)
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * self.pixels()..(i + 1) * self.pixels()]
    }

    /// The images `range` as a new dataset.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        let p = self.pixels();
        Dataset {
            images: self.images[range.start * p..range.end * p].to_vec(),
            labels: self.labels[range].to_vec(),
            classes: self.classes.clone(),
            ..*self
        }
    }

    /// Loads a pair of IDX files (images, grey N×H×W or colour N×H×W×C, and labels), gzipped or
    /// raw, labelled with `classes`.
    pub fn from_idx(images_path: &Path, labels_path: &Path, classes: Vec<String>) -> Result<Dataset> {
        let (_, images) = idx::read_any(images_path, &[idx::IMAGES_MAGIC, idx::COLOUR_IMAGES_MAGIC])?;
        let labels = idx::read_labels(labels_path)?;
        if images.dims[0] != labels.len() {
            return Err(Error::format(
                labels_path,
                format!("{} labels but {} has {} images", labels.len(), images_path.display(), images.dims[0]),
            ));
        }
        let channels = images.dims.get(3).copied().unwrap_or(1);
        Dataset::new(images.data, labels, (images.dims[1], images.dims[2], channels), classes)
            .map_err(|m| Error::format(labels_path, m.to_string()))
    }

    /// Loads a split from a directory of IDX files (`.gz` or uncompressed): Fashion-MNIST's, or
    /// a data set made by `wardrobe import` (its `dataset.json` names the classes).
    pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
        let description = DatasetFile::load(dir)?;
        let classes = description.as_ref().map_or_else(fashion_classes, |d| d.classes.clone());
        let images = find_idx(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find_idx(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        let data = Dataset::from_idx(&images, &labels, classes)?;
        if let Some(d) = description
            && (d.height, d.width, d.channels) != data.shape()
        {
            return Err(Error::format(
                &images,
                format!(
                    "images are {}×{}×{}, dataset.json says {}×{}×{}",
                    data.rows, data.cols, data.channels, d.height, d.width, d.channels
                ),
            ));
        }
        Ok(data)
    }

    /// Writes the images and labels as a pair of IDX files.
    pub fn write_idx(&self, images_path: &Path, labels_path: &Path) -> Result<()> {
        let mut dims = vec![self.len(), self.rows, self.cols];
        if self.channels != 1 {
            dims.push(self.channels);
        }
        idx::write(images_path, &idx::IdxArray { dims, data: self.images.clone() })?;
        idx::write_labels(labels_path, &self.labels)
    }
}

/// Finds `stem.gz` or `stem` in `dir`, with an error that says what `dir` is instead: missing
/// (the data package, or a typo), a folder of photos (import it first), a model directory.
fn find_idx(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let shown = dir.display();
    let fix = if dir == Path::new(DEFAULT_DATA_DIR) && !dir.exists() {
        "not found (install the Debian package dataset-fashion-mnist or pass --data DIR)".to_string()
    } else if !dir.exists() {
        format!(
            "not found: {shown} does not exist (--data takes Fashion-MNIST's directory, from the Debian package dataset-fashion-mnist, or one made by `wardrobe import`)"
        )
    } else if !dir.is_dir() {
        format!(
            "not found: {shown} is not a directory (--data takes a data directory: Fashion-MNIST's IDX files or one made by `wardrobe import`)"
        )
    } else if dir.join("model.json").exists() {
        format!("not found: {shown} is a model directory; pass it as --model, and the data as --data")
    } else if crate::data::labels::find_images(dir).is_ok_and(|found| !found.is_empty()) {
        format!(
            "not found: {shown} holds photos; import them first: wardrobe import {shown} --out DATA, then --data DATA"
        )
    } else {
        format!(
            "not found in {shown} (--data takes Fashion-MNIST's IDX files or a directory made by `wardrobe import`)"
        )
    };
    Err(Error::io(&candidates[0], std::io::Error::new(std::io::ErrorKind::NotFound, fix)))
}

/// The labels file that goes with an IDX images file: `…-images-idx3-ubyte…` → `…-labels-idx1-ubyte…`.
pub fn labels_path_for(images_path: &Path) -> Option<PathBuf> {
    let name = images_path.file_name()?.to_str()?;
    name.contains("images-idx3").then(|| images_path.with_file_name(name.replace("images-idx3", "labels-idx1")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_agree() {
        let err = Dataset::fashion(vec![0; 8], vec![1, 2, 3], 2, 2).unwrap_err();
        assert_eq!(err.to_string(), "3 labels but 2 images of 2×2×1");
    }

    #[test]
    fn labels_above_nine_are_rejected() {
        let err = Dataset::fashion(vec![0; 8], vec![1, 12], 2, 2).unwrap_err();
        assert!(err.to_string().contains("label 12 at index 1"), "{err}");
    }

    #[test]
    fn labels_path_is_derived_from_images_path() {
        let p = labels_path_for(Path::new("/d/t10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!(p, Path::new("/d/t10k-labels-idx1-ubyte.gz"));
        assert!(labels_path_for(Path::new("/d/foo.gz")).is_none());
    }

    #[test]
    fn missing_directory_names_the_package() {
        let err = Dataset::load_split(Path::new("/nonexistent"), Split::Test).unwrap_err().to_string();
        assert!(err.contains("dataset-fashion-mnist"), "{err}");
    }

    #[test]
    fn mismatched_idx_counts_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lab) = (dir.path().join("i"), dir.path().join("l"));
        idx::write(&img, &idx::IdxArray { dims: vec![2, 1, 1], data: vec![0, 1] }).unwrap();
        idx::write(&lab, &idx::IdxArray { dims: vec![3], data: vec![0, 1, 2] }).unwrap();
        let err = Dataset::from_idx(&img, &lab, fashion_classes()).unwrap_err().to_string();
        assert!(err.contains("3 labels but") && err.contains("2 images"), "{err}");
    }

    #[test]
    fn an_imported_directory_brings_its_classes_and_colour() {
        let dir = tempfile::tempdir().unwrap();
        let classes: Vec<String> = (0..300).map(|i| format!("Kategorie {i} – ü")).collect();
        let data = Dataset::new((0..2 * 12).map(|v| v as u8).collect(), vec![299, 4], (2, 2, 3), classes).unwrap();
        data.write_idx(&dir.path().join("t10k-images-idx3-ubyte"), &dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        DatasetFile::new(data.classes.clone(), (2, 2, 3), (0, 2)).save(dir.path()).unwrap();
        assert_eq!(Dataset::load_split(dir.path(), Split::Test).unwrap(), data);
        DatasetFile::new(data.classes.clone(), (2, 2, 1), (0, 2)).save(dir.path()).unwrap();
        let err = Dataset::load_split(dir.path(), Split::Test).unwrap_err().to_string();
        assert!(err.contains("dataset.json says 2×2×1"), "{err}");
    }

    #[test]
    fn class_lists_must_be_distinct_and_named() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_classes(&names(&["a", "b"])).is_ok());
        assert!(check_classes(&names(&["a", "a"])).unwrap_err().to_string().contains("'a' is named twice"));
        assert!(check_classes(&names(&["a", " "])).is_err());
        assert!(check_classes(&[]).is_err());
    }
}
