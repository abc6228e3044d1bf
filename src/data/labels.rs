//! The labels file that `label` writes, reviewers edit and `import` reads: its columns, how a
//! record is quoted, and reading it back whole; and which files below a folder are photos.

use crate::error::{Error, Result};
use crate::fsutil;
use std::path::{Path, PathBuf};

/// File extensions treated as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "webp", "bmp", "gif"];

/// The columns of a CSV labels file.
pub const CSV_HEADER: &str = "path,label,confidence,top3,needs_review,ood_score,verdict,reviewed_label";

/// What a reviewer writes in `reviewed_label` to confirm that a photo is not one of the
/// categories; `import` skips such rows.
pub const NOT_OURS: &str = "(not ours)";

/// Image files below `folder`, recursively, in sorted order.
pub fn find_images(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = entry.map_err(|e| Error::io(&dir, e))?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_lowercase().as_str()))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// One CSV record (quoted by the `csv` crate where a field needs it), without its line end.
pub fn csv_record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(fields).expect("writing to memory cannot fail");
    let mut bytes = w.into_inner().expect("writing to memory cannot fail");
    bytes.pop();
    String::from_utf8(bytes).expect("fields are UTF-8")
}

/// A labels CSV read back whole (for `import` and the review page): its header and rows.
pub struct LabelsFile {
    /// The header.
    pub header: csv::StringRecord,
    /// The rows.
    pub records: Vec<csv::StringRecord>,
}

impl LabelsFile {
    /// Reads a labels CSV (at most 1 GiB).
    pub fn read(path: &Path) -> Result<LabelsFile> {
        let text = fsutil::read_at_most(path, 1 << 30)?;
        let mut reader = csv::ReaderBuilder::new().from_reader(&text[..]);
        let header = reader.headers().map_err(|e| Error::format(path, format!("cannot read the header: {e}")))?.clone();
        let records = reader
            .records()
            .enumerate()
            .map(|(i, r)| r.map_err(|e| Error::format(path, format!("row {}: {e}", i + 2))))
            .collect::<Result<Vec<_>>>()?;
        Ok(LabelsFile { header, records })
    }

    /// The position of column `name`, if the file has it.
    pub fn find_column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The position of column `name`, or an error naming the file (`path`).
    pub fn column(&self, name: &str, path: &Path) -> Result<usize> {
        self.find_column(name).ok_or_else(|| {
            Error::format(path, format!("no '{name}' column (expected a labels file written by `wardrobe label`)"))
        })
    }
}
