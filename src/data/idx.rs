//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a dtype byte,
//! a dimension count, then each dimension as u32) followed by the payload. Files may be gzipped;
//! compression is detected by the gzip magic bytes, not by the file name.

use crate::error::{Error, Result};
use crate::fsutil;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;

/// Magic number of an IDX file of u8 images (N × rows × cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 labels (N).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
const UBYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values in row-major order.
    pub data: Vec<u8>,
}

/// Largest decompressed IDX file accepted (the Fashion-MNIST training images are 47 MB).
pub const MAX_DECOMPRESSED: u64 = 1 << 31;

/// Reads a file, transparently decompressing it when it starts with the gzip magic.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    gunzip_if_gzipped(fsutil::read(path)?, path)
}

/// The bytes themselves, or their decompression when they start with the gzip magic (at most
/// [`MAX_DECOMPRESSED`] bytes, so a small malicious file cannot exhaust memory).
pub fn gunzip_if_gzipped(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(&raw[..])
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("corrupt gzip stream: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(Error::format(path, format!("decompresses to more than {MAX_DECOMPRESSED} bytes")));
    }
    Ok(out)
}

/// Parses IDX bytes, checking the magic, dtype, dimension count and that the payload length
/// equals the product of the dimensions.
pub fn parse(mut bytes: Vec<u8>, expected_magic: u32, path: &Path) -> Result<IdxArray> {
    if bytes.len() < 4 {
        return Err(Error::format(path, format!("{} bytes is too short for an IDX header", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(Error::format(
            path,
            format!("magic number is {magic} (0x{magic:08x}), expected {expected_magic} (0x{expected_magic:08x})"),
        ));
    }
    let ndims = bytes[3] as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(Error::format(path, format!("header truncated: {ndims} dimensions need {header_len} bytes")));
    }
    let dims: Vec<usize> =
        bytes[4..header_len].chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
    let payload_len = bytes.len() - header_len;
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("dimensions {dims:?} multiply to more than any file can hold")))?;
    if payload_len != expected {
        return Err(Error::format(
            path,
            format!("dimensions {dims:?} need {expected} payload bytes but the file has {payload_len}"),
        ));
    }
    bytes.drain(..header_len);
    Ok(IdxArray { dims, data: bytes })
}

/// Reads and parses an IDX file (gzipped or raw).
pub fn read(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    parse(read_maybe_gzip(path)?, expected_magic, path)
}

/// Encodes an array as IDX bytes of u8 values.
pub fn encode(array: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * array.dims.len() + array.data.len());
    out.extend_from_slice(&[0, 0, UBYTE, array.dims.len() as u8]);
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.data);
    out
}

/// Writes an array as IDX, gzipped when `path` ends in `.gz`, atomically.
pub fn write(path: &Path, array: &IdxArray) -> Result<()> {
    let bytes = encode(array);
    let gzip = path.extension().is_some_and(|e| e == "gz");
    fsutil::write_atomic(path, |out| {
        if gzip {
            let mut enc = GzEncoder::new(out, flate2::Compression::default());
            enc.write_all(&bytes)?;
            enc.finish().map(|_| ())
        } else {
            out.write_all(&bytes)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.idx")
    }

    fn labels(values: &[u8]) -> IdxArray {
        IdxArray { dims: vec![values.len()], data: values.to_vec() }
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let a = IdxArray { dims: vec![2, 2, 3], data: (0..12).collect() };
        assert_eq!(parse(encode(&a), IMAGES_MAGIC, p()).unwrap(), a);
    }

    #[test]
    fn header_is_big_endian_with_magic() {
        let bytes = encode(&labels(&[7, 9]));
        assert_eq!(&bytes[..8], &[0, 0, 8, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn wrong_magic_is_rejected_with_both_numbers() {
        let err = parse(encode(&labels(&[1])), IMAGES_MAGIC, p()).unwrap_err().to_string();
        assert!(err.contains("2049") && err.contains("2051"), "{err}");
    }

    #[test]
    fn payload_length_mismatch_is_rejected() {
        let mut bytes = encode(&labels(&[1, 2, 3]));
        bytes.pop();
        let err = parse(bytes.clone(), LABELS_MAGIC, p()).unwrap_err().to_string();
        assert!(err.contains("need 3 payload bytes but the file has 2"), "{err}");
        bytes.extend_from_slice(&[1, 2]);
        assert!(parse(bytes, LABELS_MAGIC, p()).is_err());
    }

    #[test]
    fn overflowing_dimensions_are_rejected() {
        let mut bytes = vec![0, 0, 8, 3];
        bytes.extend_from_slice(&[0xff; 12]);
        let err = parse(bytes, IMAGES_MAGIC, p()).unwrap_err().to_string();
        assert!(err.contains("multiply to more than any file can hold"), "{err}");
    }

    #[test]
    fn short_or_truncated_headers_are_rejected() {
        assert!(parse(vec![0, 0], LABELS_MAGIC, p()).unwrap_err().to_string().contains("too short"));
        let err = parse(vec![0, 0, 8, 3, 0, 0], IMAGES_MAGIC, p()).unwrap_err().to_string();
        assert!(err.contains("header truncated"), "{err}");
    }

    #[test]
    fn gzip_is_detected_by_content_and_truncation_reported() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("labels.gz");
        write(&gz, &labels(&[1, 2, 3])).unwrap();
        let plain = dir.path().join("labels-no-extension");
        std::fs::copy(&gz, &plain).unwrap();
        assert_eq!(read(&plain, LABELS_MAGIC).unwrap().data, vec![1, 2, 3]);
        let bytes = std::fs::read(&gz).unwrap();
        std::fs::write(&plain, &bytes[..bytes.len() - 6]).unwrap();
        let err = read(&plain, LABELS_MAGIC).unwrap_err().to_string();
        assert!(err.contains("corrupt gzip stream") && err.contains("labels-no-extension"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read(Path::new("/nonexistent/t10k.gz"), LABELS_MAGIC).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/t10k.gz:"), "{err}");
    }
}
