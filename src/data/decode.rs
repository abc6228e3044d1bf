//! Decoding photos nobody vouches for: bounded by file size, by the pixels a header declares (a
//! decompression-bomb guard scaled to the file's size), by a shared memory budget and by a
//! deadline; EXIF orientation honoured, transparent pixels laid on white, a truncated JPEG refused.
//! What the pixels become is `photo`'s business.

use crate::data::budget::{Budget, Reservation};
use crate::error::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Rgb, RgbImage};
use std::io::{BufRead, Cursor, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest accepted width × height (decompression-bomb guard).
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;

/// Most pixels a photo may declare per byte of its file, past [`SMALL_IMAGE_PIXELS`]: deflate
/// cannot beat about 1,000 bytes per byte, and real photos, even of a product on a plain
/// background, stay far below 200.
pub const MAX_PIXELS_PER_BYTE: u64 = 200;

/// Largest photo file read.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Reads a photo file of at most [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    Ok(crate::fsutil::read_at_most(path, MAX_FILE_BYTES)?)
}

/// Images up to this many pixels are decoded whatever their compression.
const SMALL_IMAGE_PIXELS: u64 = 4_000_000;

/// What decoding one photo may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Memory to reserve the decoded size from before decoding, if any.
    pub budget: Option<Arc<Budget>>,
    /// Longest decoding and conversion may take, if limited.
    pub deadline: Option<Duration>,
}

impl Limits {
    /// Only the pixel limit.
    pub fn pixels(max_pixels: u64) -> Limits {
        Limits { max_pixels, budget: None, deadline: None }
    }
}

/// The input of a decoder, checking a deadline on every read and handing out at most 64 KiB at
/// a time, so that decoding stops soon after the deadline.
struct DeadlineCursor<'a> {
    inner: Cursor<&'a [u8]>,
    deadline: Option<Instant>,
}

impl DeadlineCursor<'_> {
    fn check(&self) -> std::io::Result<()> {
        match self.deadline {
            Some(d) if Instant::now() > d => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "decoding deadline"))
            }
            _ => Ok(()),
        }
    }
}

impl Read for DeadlineCursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.check()?;
        let n = buf.len().min(64 << 10);
        self.inner.read(&mut buf[..n])
    }
}

impl BufRead for DeadlineCursor<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.check()?;
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(64 << 10)])
    }
    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

impl Seek for DeadlineCursor<'_> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Fails with a message naming `limit` once `deadline` has passed.
pub fn check_deadline(deadline: Option<Instant>, limit: Option<Duration>, name: &Path) -> Result<()> {
    match (deadline, limit) {
        (Some(d), Some(limit)) if Instant::now() > d => {
            Err(Error::format(name, format!("decoding took longer than the limit of {} s", limit.as_secs_f64())))
        }
        _ => Ok(()),
    }
}

/// Decodes image bytes (PNG, JPEG, WebP, BMP, GIF first frame), applies EXIF orientation and
/// composites transparency onto white. `name` is used in error messages.
pub fn decode(bytes: &[u8], name: &Path, max_pixels: u64) -> Result<RgbImage> {
    Ok(flatten_on_white(decode_oriented(bytes, name, &Limits::pixels(max_pixels), None)?.0))
}

/// Decodes with the limits checked from the header before any pixel is decoded (the pixel
/// count, a plausible compression, the memory reserved from the budget), the deadline on every
/// read, and applies EXIF orientation. The reservation is held for as long as the caller keeps it.
pub fn decode_oriented(
    bytes: &[u8],
    name: &Path,
    limits: &Limits,
    deadline: Option<Instant>,
) -> Result<(DynamicImage, Option<Reservation>)> {
    let fail = |what: String| Error::format(name, what);
    if bytes.is_empty() {
        return Err(fail("empty file".into()));
    }
    let cursor = DeadlineCursor { inner: Cursor::new(bytes), deadline };
    let reader = ImageReader::new(cursor).with_guessed_format().map_err(|e| Error::io(name, e))?;
    match reader.format() {
        None => return Err(fail("not an image (unknown format)".into())),
        Some(image::ImageFormat::Jpeg) if !ends_with_jpeg_eoi(bytes) => {
            return Err(fail("truncated JPEG (no end-of-image marker)".into()));
        }
        Some(_) => {}
    }
    let mut decoder = reader.into_decoder().map_err(|e| fail(format!("cannot decode image: {e}")))?;
    let (w, h) = decoder.dimensions();
    let (pixels, max_pixels) = (u64::from(w) * u64::from(h), limits.max_pixels);
    if pixels > max_pixels {
        return Err(fail(format!("image is {w}×{h}, more than the limit of {max_pixels} pixels")));
    }
    if pixels > SMALL_IMAGE_PIXELS && pixels > MAX_PIXELS_PER_BYTE * bytes.len() as u64 {
        return Err(fail(format!(
            "image declares {w}×{h} pixels in {} bytes, more than {MAX_PIXELS_PER_BYTE} pixels per byte: \
             implausible compression",
            bytes.len()
        )));
    }
    // The decoded image, its RGB copy and orientation's copy at most.
    let bytes_per_pixel = u64::from(decoder.color_type().bytes_per_pixel());
    let reservation = match &limits.budget {
        Some(budget) => Some(budget.reserve(pixels * (2 * bytes_per_pixel + 3), name)?),
        None => None,
    };
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(max_pixels.saturating_mul(8));
    decoder.set_limits(decoder_limits).map_err(|e| fail(format!("cannot decode image: {e}")))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| {
        check_deadline(deadline, limits.deadline, name)
            .err()
            .unwrap_or_else(|| fail(format!("cannot decode image: {e}")))
    })?;
    img.apply_orientation(orientation);
    Ok((img, reservation))
}

/// Whether JPEG data ends with its end-of-image marker (FF D9), ignoring trailing padding. The
/// decoder itself fills a truncated scan with grey instead of failing.
fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|&b| b != 0 && !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    bytes[..end].ends_with(&[0xff, 0xd9])
}

/// RGB with transparent pixels blended onto white (so they count as background).
pub fn flatten_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = f32::from(p[3]) / 255.0;
        Rgb([0, 1, 2].map(|c| (f32::from(p[c]) * a + 255.0 * (1.0 - a)).round() as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> &'static Path {
        Path::new("photo.png")
    }

    #[test]
    fn transparency_is_background_and_bad_bytes_are_named() {
        let mut rgba = image::RgbaImage::from_pixel(10, 10, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(5, 5, image::Rgba([0, 0, 0, 255]));
        let mut png = Vec::new();
        DynamicImage::ImageRgba8(rgba).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let img = decode(&png, name(), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!((img.get_pixel(0, 0).0, img.get_pixel(5, 5).0), ([255; 3], [0; 3]));
        assert!(decode(&[], name(), 100).unwrap_err().to_string().contains("empty file"));
        assert!(decode(b"hello world", name(), 100).unwrap_err().to_string().contains("not an image"));
        assert!(decode(&png[..png.len() / 2], name(), 100).unwrap_err().to_string().contains("cannot decode"));
        assert!(decode(&png, name(), 50).unwrap_err().to_string().contains("more than the limit"));
    }

    #[test]
    fn exif_orientation_is_honoured() {
        use image::ImageEncoder;
        // A minimal little-endian TIFF/Exif block: one IFD entry, Orientation (0x0112) = 6
        // ("rotate 90° clockwise to display").
        let exif = vec![b'I', b'I', 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        let wide = RgbImage::from_fn(20, 10, |x, _| if x < 2 { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) });
        let mut png = Vec::new();
        let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
        encoder.set_exif_metadata(exif).unwrap();
        encoder.write_image(wide.as_raw(), 20, 10, image::ExtendedColorType::Rgb8).unwrap();
        let shown = decode(&png, name(), DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(shown.dimensions(), (10, 20), "rotated to portrait");
        assert_eq!(shown.get_pixel(5, 0).0, [0, 0, 0], "the left edge is now the top edge");
        assert_eq!(shown.get_pixel(5, 19).0, [255, 255, 255]);
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let mut jpg = Vec::new();
        DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, Rgb([200, 10, 10])))
            .write_to(&mut Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
            .unwrap();
        assert!(decode(&jpg, name(), DEFAULT_MAX_PIXELS).is_ok());
        let err = decode(&jpg[..jpg.len() / 2], name(), DEFAULT_MAX_PIXELS).unwrap_err().to_string();
        assert!(err.contains("truncated JPEG"), "{err}");
    }
}
