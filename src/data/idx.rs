//! The IDX format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a dtype byte,
//! a dimension count, then each dimension as u32) followed by the payload. Files may be gzipped;
//! compression is detected by the gzip magic bytes, not by the file name.

use crate::error::{Error, Result};
use crate::fsutil;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// Magic number of an IDX file of u8 images (N × rows × cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 colour images (N × rows × cols × channels).
pub const COLOUR_IMAGES_MAGIC: u32 = 0x0000_0804;
/// Magic number of an IDX file of u8 labels (N).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Magic number of an IDX file of big-endian 16-bit labels (N), for more than 256 classes.
pub const WIDE_LABELS_MAGIC: u32 = 0x0000_0b01;
const UBYTE: u8 = 0x08;
const SHORT: u8 = 0x0b;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values in row-major order (for 16-bit files, two big-endian bytes per value).
    pub data: Vec<u8>,
}

/// Bytes per value of an IDX file with this magic number.
fn value_bytes(magic: u32) -> usize {
    if (magic >> 8) as u8 == SHORT { 2 } else { 1 }
}

/// Largest decompressed IDX file accepted (the Fashion-MNIST training images are 47 MB).
pub const MAX_DECOMPRESSED: u64 = 1 << 31;

/// Most bytes a gzip stream may expand to per compressed byte (Fashion-MNIST's IDX files expand
/// under 2×, its CSV files about 4×): a small file cannot claim gigabytes.
pub const MAX_COMPRESSION_RATIO: u64 = 128;

/// What any gzip stream may expand to, however well it compresses.
const SMALL_FILE_ALLOWANCE: u64 = 64 << 20;

/// A stream of a file's bytes, decompressed when they start with the gzip magic, and the most
/// bytes it may yield: the file's length, or for gzip [`MAX_COMPRESSION_RATIO`] times it (at
/// least [`SMALL_FILE_ALLOWANCE`], at most [`MAX_DECOMPRESSED`]).
struct Source<'a> {
    reader: Box<dyn Read + 'a>,
    limit: u64,
    gzip: bool,
}

impl<'a> Source<'a> {
    fn new<R: BufRead + 'a>(mut raw: R, len: u64) -> std::io::Result<Source<'a>> {
        let gzip = raw.fill_buf()?.starts_with(&GZIP_MAGIC);
        Ok(if gzip {
            let limit = len.saturating_mul(MAX_COMPRESSION_RATIO).clamp(SMALL_FILE_ALLOWANCE, MAX_DECOMPRESSED);
            Source { reader: Box::new(GzDecoder::new(raw)), limit, gzip }
        } else {
            Source { reader: Box::new(raw), limit: len, gzip }
        })
    }

    fn open(path: &Path) -> Result<Source<'static>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Source::new(std::io::BufReader::new(file), len).map_err(|e| Error::io(path, e))
    }

    /// Reads until `buf` is full or the stream ends; the bytes read.
    fn fill(&mut self, buf: &mut [u8], path: &Path) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.reader.read(&mut buf[done..]) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.error(e, path)),
            }
        }
        Ok(done)
    }

    /// Everything that is left, at most `limit` bytes in all (an error past that).
    fn read_rest(&mut self, limit: u64, path: &Path) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.reader).take(limit + 1).read_to_end(&mut out).map_err(|e| self.error(e, path))?;
        if out.len() as u64 > limit {
            return Err(Error::format(path, format!("decompresses to more than {limit} bytes")));
        }
        Ok(out)
    }

    fn error(&self, e: std::io::Error, path: &Path) -> Error {
        if self.gzip { Error::format(path, format!("corrupt gzip stream: {e}")) } else { Error::io(path, e) }
    }

    /// Reads an IDX array: the header first, then exactly the payload it declares (never more
    /// than the source may hold).
    fn idx(mut self, accepted: &[u32], path: &Path) -> Result<(u32, IdxArray)> {
        let mut head = [0u8; 4];
        let got = self.fill(&mut head, path)?;
        if got < 4 {
            return Err(Error::format(path, format!("{got} bytes is too short for an IDX header")));
        }
        let magic = u32::from_be_bytes(head);
        if !accepted.contains(&magic) {
            let expected: Vec<String> = accepted.iter().map(|m| format!("{m} (0x{m:08x})")).collect();
            return Err(Error::format(
                path,
                format!("magic number is {magic} (0x{magic:08x}), expected {}", expected.join(" or ")),
            ));
        }
        let ndims = head[3] as usize;
        let header_len = 4 + 4 * ndims;
        let mut dim_bytes = vec![0u8; 4 * ndims];
        if self.fill(&mut dim_bytes, path)? < dim_bytes.len() {
            return Err(Error::format(path, format!("header truncated: {ndims} dimensions need {header_len} bytes")));
        }
        let dims: Vec<usize> =
            dim_bytes.chunks_exact(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize).collect();
        let expected = dims.iter().try_fold(value_bytes(magic), |n, &d| n.checked_mul(d)).ok_or_else(|| {
            Error::format(path, format!("dimensions {dims:?} multiply to more than any file can hold"))
        })?;
        let room = self.limit.saturating_sub(header_len as u64);
        if expected as u64 > room {
            let what = if self.gzip { "this gzip file may expand to at most" } else { "the file has" };
            return Err(Error::format(
                path,
                format!("dimensions {dims:?} need {expected} payload bytes but {what} {room}"),
            ));
        }
        let mut data = Vec::with_capacity(expected);
        (&mut self.reader).take(expected as u64 + 1).read_to_end(&mut data).map_err(|e| self.error(e, path))?;
        if data.len() != expected {
            let has = if data.len() > expected { "more".to_string() } else { data.len().to_string() };
            return Err(Error::format(
                path,
                format!("dimensions {dims:?} need {expected} payload bytes but the file has {has}"),
            ));
        }
        Ok((magic, IdxArray { dims, data }))
    }
}

/// Reads a file, transparently decompressing it when it starts with the gzip magic (bounded as
/// [`Source`] says).
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let mut source = Source::open(path)?;
    let limit = source.limit;
    source.read_rest(limit, path)
}

/// The bytes themselves, or their decompression when they start with the gzip magic (bounded as
/// a file of these bytes would be).
pub fn gunzip_if_gzipped(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    let mut source = Source::new(&raw[..], raw.len() as u64).map_err(|e| Error::io(path, e))?;
    let limit = source.limit;
    source.read_rest(limit, path)
}

/// Parses IDX bytes, checking the magic, dtype, dimension count and that the payload length
/// equals the product of the dimensions.
pub fn parse(bytes: Vec<u8>, expected_magic: u32, path: &Path) -> Result<IdxArray> {
    let source = Source { reader: Box::new(&bytes[..]), limit: bytes.len() as u64, gzip: false };
    Ok(source.idx(&[expected_magic], path)?.1)
}

/// Reads and parses an IDX file (gzipped or raw), reading no more than its header declares.
pub fn read(path: &Path, expected_magic: u32) -> Result<IdxArray> {
    Ok(read_any(path, &[expected_magic])?.1)
}

/// [`read`] for a file that may have any of the `accepted` magic numbers; the one it has.
pub fn read_any(path: &Path, accepted: &[u32]) -> Result<(u32, IdxArray)> {
    Source::open(path)?.idx(accepted, path)
}

/// Encodes an array as IDX bytes of u8 values.
pub fn encode(array: &IdxArray) -> Vec<u8> {
    encode_as(UBYTE, &array.dims, &array.data)
}

/// IDX bytes of values of type `dtype` given as their big-endian bytes.
fn encode_as(dtype: u8, dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, dtype, dims.len() as u8]);
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Writes an array as IDX, gzipped when `path` ends in `.gz`, atomically.
pub fn write(path: &Path, array: &IdxArray) -> Result<()> {
    write_bytes(path, encode(array))
}

/// Writes labels as IDX: bytes when every label fits one, else 16-bit big-endian values.
pub fn write_labels(path: &Path, labels: &[u16]) -> Result<()> {
    if labels.iter().all(|&l| l <= 255) {
        write(path, &IdxArray { dims: vec![labels.len()], data: labels.iter().map(|&l| l as u8).collect() })
    } else {
        write_bytes(
            path,
            encode_as(SHORT, &[labels.len()], &labels.iter().flat_map(|l| l.to_be_bytes()).collect::<Vec<u8>>()),
        )
    }
}

/// Labels from an IDX file of either label type.
pub fn read_labels(path: &Path) -> Result<Vec<u16>> {
    let (magic, array) = read_any(path, &[LABELS_MAGIC, WIDE_LABELS_MAGIC])?;
    Ok(if magic == WIDE_LABELS_MAGIC {
        array.data.chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect()
    } else {
        array.data.into_iter().map(u16::from).collect()
    })
}

/// Writes IDX bytes, gzipped when `path` ends in `.gz`, atomically.
fn write_bytes(path: &Path, bytes: Vec<u8>) -> Result<()> {
    let gzip = path.extension().is_some_and(|e| e == "gz");
    fsutil::write_atomic(path, |out| {
        if gzip {
            let mut enc = GzEncoder::new(out, flate2::Compression::default());
            enc.write_all(&bytes)?;
            enc.finish().map(|_| ())
        } else {
            out.write_all(&bytes)
        }
    })?;
    Ok(())
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

    /// A gzip file of `header` followed by `zeros` zero bytes, written in 1 MiB pieces.
    fn zeros_gzip(path: &Path, header: &[u8], zeros: u64) {
        let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::best());
        gz.write_all(header).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..zeros >> 20 {
            gz.write_all(&block).unwrap();
        }
        gz.finish().unwrap();
    }

    #[test]
    fn gzip_bombs_are_refused_by_what_their_header_and_size_allow() {
        let dir = tempfile::tempdir().unwrap();
        let header = |n: u32| {
            [&IMAGES_MAGIC.to_be_bytes()[..], &n.to_be_bytes(), &28u32.to_be_bytes(), &28u32.to_be_bytes()].concat()
        };
        // An honest header over far more data than it declares: reading stops after the payload.
        let long = dir.path().join("long.gz");
        zeros_gzip(&long, &header(100), 256 << 20);
        let err = read(&long, IMAGES_MAGIC).unwrap_err().to_string();
        assert!(err.contains("need 78400 payload bytes but the file has more"), "{err}");
        // A header declaring a gigabyte from a file of a few hundred kilobytes.
        let claims = dir.path().join("claims.gz");
        zeros_gzip(&claims, &header(1_300_000), 0);
        let err = read(&claims, IMAGES_MAGIC).unwrap_err().to_string();
        assert!(
            err.contains("need 1019200000 payload bytes but this gzip file may expand to at most 67108848"),
            "{err}"
        );
        // Without a header to go by (CSV), the stream stops at 64 MiB.
        let err = read_maybe_gzip(&long).unwrap_err().to_string();
        assert!(err.contains("decompresses to more than 67108864 bytes"), "{err}");
    }

    #[test]
    fn wide_labels_round_trip_and_narrow_ones_stay_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        write_labels(&path, &[3, 999, 0]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..4], &[0, 0, 0x0b, 1]);
        assert_eq!(read_labels(&path).unwrap(), vec![3, 999, 0]);
        write_labels(&path, &[3, 255]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 8 + 2);
        assert_eq!(read_labels(&path).unwrap(), vec![3, 255]);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = read(Path::new("/nonexistent/t10k.gz"), LABELS_MAGIC).unwrap_err().to_string();
        assert!(err.starts_with("/nonexistent/t10k.gz:"), "{err}");
    }
}
