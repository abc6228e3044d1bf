//! The Kaggle CSV form of Fashion-MNIST: a header `label,pixel1,…,pixel784`, then one image per
//! row: its label followed by its pixels (0–255) in row-major order.

use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::fsutil;
use std::path::Path;

/// The header line for images of `pixels` pixels.
fn header(pixels: usize) -> String {
    (0..=pixels).map(column_name).collect::<Vec<_>>().join(",")
}

/// The header's name of column `index` (0 is the label).
fn column_name(index: usize) -> String {
    if index == 0 { "label".to_string() } else { format!("pixel{index}") }
}

/// Parses field `column` as an integer in `0..=max`, naming line and column on failure (the name
/// is only formatted then: this runs for every pixel of every row).
fn parse_field(text: &str, max: u8, column: usize, line: usize, path: &Path) -> Result<u8> {
    let at = || format!("line {line}, column {}", column_name(column));
    let value: u32 =
        text.trim().parse().map_err(|_| Error::format(path, format!("{}: '{text}' is not a whole number", at())))?;
    if value > u32::from(max) {
        return Err(Error::format(path, format!("{}: {value} is out of range 0–{max}", at())));
    }
    Ok(value as u8)
}

/// Parses CSV text into a dataset of square images.
pub fn parse(text: &str, path: &Path) -> Result<Dataset> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, head) = lines.next().ok_or_else(|| Error::format(path, "empty file, expected a header line"))?;
    let columns = head.trim_end_matches('\r').split(',').count();
    let pixels = columns.saturating_sub(1);
    let side = (pixels as f64).sqrt().round() as usize;
    if side == 0 || side * side != pixels || head.trim_end_matches('\r') != header(pixels) {
        return Err(Error::format(path, "line 1: header must be label,pixel1,…,pixelN with N a square number"));
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (index, line) in lines {
        let line_no = index + 1;
        let fields: Vec<&str> = line.trim_end_matches('\r').split(',').collect();
        if fields.len() != columns {
            return Err(Error::format(path, format!("line {line_no}: {} columns, expected {columns}", fields.len())));
        }
        labels.push(u16::from(parse_field(fields[0], 9, 0, line_no, path)?));
        for (column, f) in fields.iter().enumerate().skip(1) {
            images.push(parse_field(f, 255, column, line_no, path)?);
        }
    }
    Dataset::fashion(images, labels, side, side).map_err(|m| Error::format(path, m.to_string()))
}

/// Reads a CSV file (optionally gzipped).
pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = crate::data::idx::read_maybe_gzip(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?;
    parse(text, path)
}

/// Writes a dataset as CSV, atomically.
pub fn write(path: &Path, data: &Dataset) -> Result<()> {
    fsutil::write_atomic(path, |out| {
        writeln!(out, "{}", header(data.pixels()))?;
        let mut line = String::with_capacity(4 * data.pixels() + 2);
        for i in 0..data.len() {
            line.clear();
            line.push_str(&data.labels[i].to_string());
            for &p in data.image(i) {
                line.push(',');
                line.push_str(&p.to_string());
            }
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("data.csv")
    }

    fn tiny_csv(rows: &[&str]) -> String {
        let mut s = header(4);
        for r in rows {
            s.push('\n');
            s.push_str(r);
        }
        s
    }

    #[test]
    fn parses_rows_of_2x2_images() {
        let d = parse(&tiny_csv(&["3,0,1,2,255", "9,4,5,6,7"]), p()).unwrap();
        assert_eq!((d.len(), d.rows, d.cols), (2, 2, 2));
        assert_eq!(d.labels, vec![3, 9]);
        assert_eq!(d.image(1), &[4, 5, 6, 7]);
    }

    #[test]
    fn tolerates_crlf_and_trailing_newline() {
        let text = tiny_csv(&["1,0,0,0,0\r", ""]).replace('\n', "\r\n");
        assert_eq!(parse(&text, p()).unwrap().len(), 1);
    }

    #[test]
    fn missing_column_names_the_line() {
        let err = parse(&tiny_csv(&["1,0,0,0,0", "1,0,0,0"]), p()).unwrap_err().to_string();
        assert_eq!(err, "data.csv: line 3: 4 columns, expected 5");
    }

    #[test]
    fn non_number_and_out_of_range_name_the_column() {
        let err = parse(&tiny_csv(&["1,0,x,0,0"]), p()).unwrap_err().to_string();
        assert_eq!(err, "data.csv: line 2, column pixel2: 'x' is not a whole number");
        let err = parse(&tiny_csv(&["1,0,0,256,0"]), p()).unwrap_err().to_string();
        assert_eq!(err, "data.csv: line 2, column pixel3: 256 is out of range 0–255");
        let err = parse(&tiny_csv(&["10,0,0,0,0"]), p()).unwrap_err().to_string();
        assert_eq!(err, "data.csv: line 2, column label: 10 is out of range 0–9");
        assert!(parse(&tiny_csv(&["-1,0,0,0,0"]), p()).is_err());
    }

    #[test]
    fn bad_header_or_empty_file_is_rejected() {
        assert!(parse("", p()).unwrap_err().to_string().contains("empty file"));
        assert!(parse("label,pixel1,pixel2", p()).unwrap_err().to_string().contains("header"));
        assert!(parse("lbl,pixel1,pixel2,pixel3,pixel4", p()).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        let d = Dataset::fashion(vec![0, 255, 17, 3, 9, 8, 7, 6], vec![0, 9], 2, 2).unwrap();
        write(&path, &d).unwrap();
        assert_eq!(read(&path).unwrap(), d);
    }
}
