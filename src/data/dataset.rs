//! An in-memory labelled image set: u8 images stored contiguously (N × rows × cols) and u8
//! labels, loaded from IDX or CSV files.

use crate::data::idx;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Number of classes in Fashion-MNIST.
pub const NUM_CLASSES: usize = 10;

/// The Fashion-MNIST class names, by label index.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// Where the Debian package `dataset-fashion-mnist` installs the data.
pub const DEFAULT_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Labelled grayscale images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Pixels, image after image, row-major, 0 = black.
    pub images: Vec<u8>,
    /// One label per image, `0..NUM_CLASSES`.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

/// Which half of Fashion-MNIST to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The 60,000 training images.
    Train,
    /// The 10,000 test images.
    Test,
}

impl Split {
    /// The IDX file-name prefix of this split.
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

impl Dataset {
    /// Builds a dataset, checking that image and label counts agree and labels are valid.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> crate::Result<Self> {
        let pixels = rows * cols;
        if pixels == 0 || images.len() != labels.len() * pixels {
            return Err(crate::Error::Invalid(format!(
                "{} labels but {} images of {rows}×{cols}",
                labels.len(),
                images.len().checked_div(pixels).unwrap_or(0)
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
            return Err(crate::Error::Invalid(format!(
                "label {} at index {i} is not a class 0–{}",
                labels[i],
                NUM_CLASSES - 1
            )));
        }
        Ok(Dataset { images, labels, rows, cols })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
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
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Loads a pair of IDX files (images and labels), gzipped or raw.
    pub fn from_idx(images_path: &Path, labels_path: &Path) -> Result<Dataset> {
        let images = idx::read(images_path, idx::IMAGES_MAGIC)?;
        let labels = idx::read(labels_path, idx::LABELS_MAGIC)?;
        if images.dims[0] != labels.dims[0] {
            return Err(Error::format(
                labels_path,
                format!("{} labels but {} has {} images", labels.dims[0], images_path.display(), images.dims[0]),
            ));
        }
        Dataset::new(images.data, labels.data, images.dims[1], images.dims[2])
            .map_err(|m| Error::format(labels_path, m.to_string()))
    }

    /// Loads a split of Fashion-MNIST from a directory of IDX files (`.gz` or uncompressed).
    pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
        let images = find_idx(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find_idx(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        Dataset::from_idx(&images, &labels)
    }

    /// Writes the images and labels as a pair of IDX files.
    pub fn write_idx(&self, images_path: &Path, labels_path: &Path) -> Result<()> {
        idx::write(
            images_path,
            &idx::IdxArray { dims: vec![self.len(), self.rows, self.cols], data: self.images.clone() },
        )?;
        idx::write(labels_path, &idx::IdxArray { dims: vec![self.len()], data: self.labels.clone() })
    }
}

/// Finds `stem.gz` or `stem` in `dir`, with an error naming the data package when neither exists.
fn find_idx(dir: &Path, stem: &str) -> Result<PathBuf> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::io(
            &candidates[0],
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "not found (install the Debian package dataset-fashion-mnist or pass --data DIR)",
            ),
        )
    })
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
        let err = Dataset::new(vec![0; 8], vec![1, 2, 3], 2, 2).unwrap_err();
        assert_eq!(err.to_string(), "3 labels but 2 images of 2×2");
    }

    #[test]
    fn labels_above_nine_are_rejected() {
        let err = Dataset::new(vec![0; 8], vec![1, 12], 2, 2).unwrap_err();
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
        let err = Dataset::from_idx(&img, &lab).unwrap_err().to_string();
        assert!(err.contains("3 labels but") && err.contains("2 images"), "{err}");
    }
}
