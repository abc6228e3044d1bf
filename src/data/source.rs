//! Where the training and test sets come from: the IDX directory (the Debian package's by
//! default) or Kaggle CSV files given per split.

use crate::data::dataset::{DEFAULT_DATA_DIR, Dataset, Split};
use crate::error::{Error, Result};
use std::path::PathBuf;

/// The data locations chosen on the command line.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// Directory of IDX files.
    pub dir: PathBuf,
    /// CSV file replacing the training IDX files.
    pub train_csv: Option<PathBuf>,
    /// CSV file replacing the test IDX files.
    pub test_csv: Option<PathBuf>,
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource { dir: PathBuf::from(DEFAULT_DATA_DIR), train_csv: None, test_csv: None }
    }
}

impl DataSource {
    /// Loads one split.
    pub fn load(&self, split: Split) -> Result<Dataset> {
        let csv = match split {
            Split::Train => &self.train_csv,
            Split::Test => &self.test_csv,
        };
        match csv {
            Some(path) => crate::data::csv::read(path),
            None => Dataset::load_split(&self.dir, split),
        }
    }
}

/// Splits off the last `fraction` of `data` as a validation set (as Keras' `validation_split`),
/// reusing the training part's storage.
pub fn split_validation(mut data: Dataset, fraction: f64) -> Result<(Dataset, Dataset)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::flag("--val-split", fraction, "must be in [0, 1)"));
    }
    let train_len = data.len() - (data.len() as f64 * fraction).round() as usize;
    if train_len == 0 {
        return Err(Error::Invalid("the validation split leaves no training images".into()));
    }
    let val = Dataset {
        images: data.images.split_off(train_len * data.pixels()),
        labels: data.labels.split_off(train_len),
        classes: data.classes.clone(),
        ..data
    };
    Ok((data, val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_the_tail() {
        let d = Dataset::fashion((0..10).collect(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 1, 1).unwrap();
        let (t, v) = split_validation(d.clone(), 0.2).unwrap();
        assert_eq!((t.len(), v.labels.clone(), v.images.clone()), (8, vec![8, 9], vec![8, 9]));
        assert!(split_validation(d.clone(), 1.0).is_err());
        assert_eq!(split_validation(d, 0.0).unwrap().1.len(), 0);
    }
}
