//! Conversion between the IDX pair (images + labels) and the Kaggle CSV file, either way. A path
//! ending in `.csv` (or `.csv.gz`) is CSV; anything else is an IDX images file whose labels file
//! is found by name (`…-images-idx3-ubyte…` → `…-labels-idx1-ubyte…`) unless given.

use crate::data::dataset::{Dataset, labels_path_for};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

fn is_csv(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".csv") || name.ends_with(".csv.gz")
}

/// The labels file for IDX images `images`: `given` or derived from the name.
fn labels_for(images: &Path, given: Option<&Path>) -> Result<PathBuf> {
    given.map(Path::to_path_buf).or_else(|| labels_path_for(images)).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: cannot tell its labels file; name it like *-images-idx3-ubyte[.gz] or pass the labels path",
            images.display()
        ))
    })
}

/// Reads `path` as CSV or as an IDX pair.
pub fn read_any(path: &Path, labels: Option<&Path>) -> Result<Dataset> {
    if is_csv(path) {
        crate::data::csv::read(path)
    } else {
        Dataset::from_idx(path, &labels_for(path, labels)?, crate::data::dataset::fashion_classes())
    }
}

/// Converts `input` to `output`, returning the number of images written.
pub fn convert(input: &Path, output: &Path, in_labels: Option<&Path>, out_labels: Option<&Path>) -> Result<usize> {
    let data = read_any(input, in_labels)?;
    if is_csv(output) {
        crate::data::csv::write(output, &data)?;
    } else {
        data.write_idx(output, &labels_for(output, out_labels)?)?;
    }
    Ok(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_to_csv_to_idx_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dataset::fashion((0..=255).chain(0..=255).collect(), vec![0, 1, 2, 3, 4, 5, 6, 7], 8, 8).unwrap();
        let images = dir.path().join("a-images-idx3-ubyte");
        d.write_idx(&images, &labels_path_for(&images).unwrap()).unwrap();
        let csv = dir.path().join("a.csv");
        assert_eq!(convert(&images, &csv, None, None).unwrap(), 8);
        let back = dir.path().join("b-images-idx3-ubyte");
        convert(&csv, &back, None, None).unwrap();
        assert_eq!(std::fs::read(&images).unwrap(), std::fs::read(&back).unwrap());
        let labels_back = dir.path().join("b-labels-idx1-ubyte");
        assert_eq!(std::fs::read(labels_path_for(&images).unwrap()).unwrap(), std::fs::read(labels_back).unwrap());
    }

    #[test]
    fn unknown_labels_file_is_explained() {
        let err = convert(Path::new("x.csv"), Path::new("out.idx"), None, None).unwrap_err().to_string();
        assert!(err.contains("x.csv"), "{err}");
        let err = read_any(Path::new("images.bin"), None).unwrap_err().to_string();
        assert!(err.contains("cannot tell its labels file"), "{err}");
    }
}
