//! The Fashion-MNIST photo conversion (Xiao et al. 2017, arXiv 1708.07747, §2), so that ordinary
//! product photos look like the training data: (1) decode, honouring EXIF orientation, with
//! transparent pixels as background; (2) trim edges within 5% of the maximum RGB distance of the
//! corners' colour; (3) subsample the longest edge to 28; (4) sharpen with a Gaussian of radius
//! and sigma 1.0; (5) extend the shorter edge to 28, centred; (6) negate; (7) convert to grey.
//! Two additions for photos not taken on pure white: the levels are stretched so that the
//! background colour becomes exactly black (a light-grey table gives 0, not 25), and a photo on a
//! dark background is not negated (its product is already the brighter part). The result is a
//! bright product on black, 28×28 bytes. Models of other input shapes get the same steps at
//! their side, and RGB models skip the grey conversion (each channel is stretched against its
//! background level).

use crate::data::budget::{Budget, Reservation};
use crate::error::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Rgb, RgbImage};
use std::io::{BufRead, Cursor, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Output side of Fashion-MNIST.
pub const SIDE: usize = 28;

/// What the pipeline makes: `side × side` images of `channels` (1 grey, 3 RGB) bytes per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoShape {
    /// Width and height.
    pub side: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
}

impl PhotoShape {
    /// Fashion-MNIST's 28×28 grey.
    pub const FASHION: PhotoShape = PhotoShape { side: SIDE, channels: 1 };

    /// Bytes per image.
    pub fn len(&self) -> usize {
        self.side * self.side * self.channels
    }

    /// True for a zero-sized shape.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a shape given on the command line: a side of 8 to 256, 1 or 3 channels.
    pub fn checked(side: usize, channels: usize) -> Result<PhotoShape> {
        if !(8..=256).contains(&side) || !(channels == 1 || channels == 3) {
            return Err(Error::Invalid(format!(
                "photo shape {side}×{side}×{channels}: the side must be 8–256 and channels 1 or 3"
            )));
        }
        Ok(PhotoShape { side, channels })
    }
}
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
fn check_deadline(deadline: Option<Instant>, limit: Option<Duration>, name: &Path) -> Result<()> {
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
fn decode_oriented(
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
fn flatten_on_white(img: DynamicImage) -> RgbImage {
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

/// The background colour: per channel, the median of the four corner pixels.
pub fn corner_colour(img: &RgbImage) -> [u8; 3] {
    let (w, h) = (img.width() - 1, img.height() - 1);
    let corners = [img.get_pixel(0, 0), img.get_pixel(w, 0), img.get_pixel(0, h), img.get_pixel(w, h)];
    [0, 1, 2].map(|c| {
        let mut v: Vec<u8> = corners.iter().map(|p| p.0[c]).collect();
        v.sort_unstable();
        ((u16::from(v[1]) + u16::from(v[2])) / 2) as u8
    })
}

/// Whether a pixel is farther than 5% of the largest RGB distance (255·√3) from `bg`.
fn is_foreground(p: &Rgb<u8>, bg: [u8; 3]) -> bool {
    let d2: f32 = (0..3).map(|c| (f32::from(p.0[c]) - f32::from(bg[c])).powi(2)).sum();
    d2 > (0.05 * 255.0 * 3f32.sqrt()).powi(2)
}

/// Crops away the border rows and columns close to the background; `None` when nothing differs.
pub fn trim(img: &RgbImage, bg: [u8; 3]) -> Option<RgbImage> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        if is_foreground(p, bg) {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    (x0 <= x1).then(|| image::imageops::crop_imm(img, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image())
}

/// Resizes so the longest edge is `side`, by picking rows and columns (no averaging).
pub fn subsample(img: &RgbImage, side: usize) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let scale = side as f64 / w.max(h) as f64;
    let (ow, oh) =
        (((w as f64 * scale).round() as usize).clamp(1, side), ((h as f64 * scale).round() as usize).clamp(1, side));
    let pick =
        |o: usize, out: usize, inp: usize| (((o as f64 + 0.5) * inp as f64 / out as f64) as usize).min(inp - 1) as u32;
    RgbImage::from_fn(ow as u32, oh as u32, |x, y| *img.get_pixel(pick(x as usize, ow, w), pick(y as usize, oh, h)))
}

/// Sharpens with a Gaussian of radius 1 and sigma 1: `out = in + (in − blur(in))`, edges clamped.
pub fn sharpen(img: &RgbImage) -> RgbImage {
    let g = [(-1.0f32 / 2.0).exp(), 1.0, (-1.0f32 / 2.0).exp()];
    let norm: f32 = g.iter().sum::<f32>().powi(2);
    let (w, h) = (img.width() as i64, img.height() as i64);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let mut blur = [0.0f32; 3];
        for (dy, gy) in (-1i64..=1).zip(g) {
            for (dx, gx) in (-1i64..=1).zip(g) {
                let sx = (i64::from(x) + dx).clamp(0, w - 1) as u32;
                let sy = (i64::from(y) + dy).clamp(0, h - 1) as u32;
                let p = img.get_pixel(sx, sy).0;
                (0..3).for_each(|c| blur[c] += gx * gy * f32::from(p[c]) / norm);
            }
        }
        let p = img.get_pixel(x, y).0;
        Rgb([0, 1, 2].map(|c| (2.0 * f32::from(p[c]) - blur[c]).round().clamp(0.0, 255.0) as u8))
    })
}

/// Pads to `side × side` with `bg`, centring the image.
pub fn extend(img: &RgbImage, side: usize, bg: [u8; 3]) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(side as u32, side as u32, Rgb(bg));
    let (left, top) = ((side as u32 - img.width()) / 2, (side as u32 - img.height()) / 2);
    image::imageops::replace(&mut canvas, img, i64::from(left), i64::from(top));
    canvas
}

/// Negates every channel.
pub fn negate(img: &mut RgbImage) {
    img.pixels_mut().for_each(|p| p.0 = p.0.map(|v| 255 - v));
}

/// Rec. 601 luma of a colour.
fn luma(p: [u8; 3]) -> u8 {
    (0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])).round() as u8
}

/// 8-bit grey (Rec. 601 luma), row-major.
pub fn to_grey(img: &RgbImage) -> Vec<u8> {
    img.pixels().map(|p| luma(p.0)).collect()
}

/// Maps `background` to 0 and stretches the rest linearly so 255 stays 255.
pub fn stretch_levels(grey: &mut [u8], background: u8) {
    if background == 0 || background == 255 {
        return;
    }
    let (bg, range) = (f32::from(background), 255.0 - f32::from(background));
    grey.iter_mut().for_each(|v| *v = ((f32::from(*v) - bg).max(0.0) * 255.0 / range).round() as u8);
}

/// The whole conversion of a decoded photo to 28×28 grey bytes.
pub fn to_fashion_mnist(img: &RgbImage, name: &Path) -> Result<Vec<u8>> {
    convert(img, PhotoShape::FASHION, name)
}

/// The whole conversion of a decoded photo to `shape`.
pub fn convert(img: &RgbImage, shape: PhotoShape, name: &Path) -> Result<Vec<u8>> {
    let bg = corner_colour(img);
    let trimmed = trim(img, bg).ok_or_else(|| Error::format(name, "nothing but background to classify"))?;
    let mut square = extend(&sharpen(&subsample(&trimmed, shape.side)), shape.side, bg);
    let light_background = luma(bg) >= 128;
    if light_background {
        negate(&mut square);
    }
    let level = |v: u8| if light_background { 255 - v } else { v };
    if shape.channels == 1 {
        let mut grey = to_grey(&square);
        stretch_levels(&mut grey, level(luma(bg)));
        return Ok(grey);
    }
    let mut planes: [Vec<u8>; 3] = [0, 1, 2].map(|c| square.pixels().map(|p| p.0[c]).collect());
    planes.iter_mut().zip(bg).for_each(|(plane, b)| stretch_levels(plane, level(b)));
    Ok((0..shape.side * shape.side).flat_map(|i| [planes[0][i], planes[1][i], planes[2][i]]).collect())
}

/// Reads a file and converts it to Fashion-MNIST's 28×28 grey (see [`from_bytes`]).
pub fn load(path: &Path, max_pixels: u64) -> Result<Vec<u8>> {
    load_as(path, PhotoShape::FASHION, &Limits::pixels(max_pixels))
}

/// Reads a file and converts it to `shape` (see [`from_bytes_as`]).
pub fn load_as(path: &Path, shape: PhotoShape, limits: &Limits) -> Result<Vec<u8>> {
    let bytes = read_file(path)?;
    from_bytes_as(&bytes, path, shape, limits)
}

/// [`from_bytes_as`] for Fashion-MNIST's 28×28 grey, with only a pixel limit.
pub fn from_bytes(bytes: &[u8], name: &Path, max_pixels: u64) -> Result<Vec<u8>> {
    from_bytes_as(bytes, name, PhotoShape::FASHION, &Limits::pixels(max_pixels))
}

/// Decodes and converts image bytes within `limits`: an image that already has the output shape
/// (a data-set item) is taken as it is; anything else goes through the photo conversion.
pub fn from_bytes_as(bytes: &[u8], name: &Path, shape: PhotoShape, limits: &Limits) -> Result<Vec<u8>> {
    let side = shape.side as u32;
    let deadline = limits.deadline.map(|d| Instant::now() + d);
    let (img, _reservation) = decode_oriented(bytes, name, limits, deadline)?;
    match img {
        DynamicImage::ImageLuma8(grey) if grey.dimensions() == (side, side) && shape.channels == 1 => {
            Ok(grey.into_raw())
        }
        DynamicImage::ImageRgb8(rgb) if rgb.dimensions() == (side, side) && shape.channels == 3 => Ok(rgb.into_raw()),
        img => {
            let rgb = flatten_on_white(img);
            check_deadline(deadline, limits.deadline, name)?;
            convert(&rgb, shape, name)
        }
    }
}

/// Encodes pixels of `shape` (what the model sees) as PNG bytes.
pub fn to_png(pixels: &[u8], shape: PhotoShape) -> Result<Vec<u8>> {
    let (side, mut png) = (shape.side as u32, Vec::new());
    let wrong = || Error::Invalid(format!("expected {} bytes, got {}", shape.len(), pixels.len()));
    let img = match shape.channels {
        1 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(side, side, pixels.to_vec()).ok_or_else(wrong)?),
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(side, side, pixels.to_vec()).ok_or_else(wrong)?),
    };
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::System(format!("cannot encode PNG: {e}")))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> &'static Path {
        Path::new("photo.png")
    }

    /// A dark 20×10 rectangle at (30, 5) on a light-grey 80×40 canvas.
    fn product_photo() -> RgbImage {
        RgbImage::from_fn(80, 40, |x, y| {
            if (30..50).contains(&x) && (5..15).contains(&y) { Rgb([40, 30, 20]) } else { Rgb([230, 230, 230]) }
        })
    }

    #[test]
    fn corner_colour_and_trim_find_the_product() {
        let img = product_photo();
        assert_eq!(corner_colour(&img), [230, 230, 230]);
        let t = trim(&img, [230, 230, 230]).unwrap();
        assert_eq!(t.dimensions(), (20, 10));
        assert!(trim(&RgbImage::from_pixel(5, 5, Rgb([9, 9, 9])), [9, 9, 9]).is_none());
        let near = RgbImage::from_fn(10, 10, |x, _| if x == 5 { Rgb([240, 240, 240]) } else { Rgb([230, 230, 230]) });
        assert!(trim(&near, [230, 230, 230]).is_none(), "a 10/255 difference is within 5%");
    }

    #[test]
    fn subsample_picks_pixels_and_keeps_aspect() {
        let img = RgbImage::from_fn(56, 14, |x, _| Rgb([x as u8, 0, 0]));
        let s = subsample(&img, 28);
        assert_eq!(s.dimensions(), (28, 7));
        assert_eq!(s.get_pixel(0, 0).0[0], 1);
        assert_eq!(s.get_pixel(27, 0).0[0], 55, "picked, not averaged");
    }

    #[test]
    fn sharpen_keeps_flat_areas_and_boosts_edges() {
        let flat = RgbImage::from_pixel(5, 5, Rgb([100, 100, 100]));
        assert_eq!(sharpen(&flat), flat);
        let edge = RgbImage::from_fn(6, 1, |x, _| if x < 3 { Rgb([50; 3]) } else { Rgb([200; 3]) });
        let s = sharpen(&edge);
        assert!(s.get_pixel(2, 0).0[0] < 50 && s.get_pixel(3, 0).0[0] > 200);
    }

    #[test]
    fn extend_centres_and_negate_and_grey() {
        let img = RgbImage::from_pixel(28, 10, Rgb([0, 0, 0]));
        let mut e = extend(&img, 28, [255, 255, 255]);
        assert_eq!((e.get_pixel(0, 8).0, e.get_pixel(0, 9).0), ([255; 3], [0; 3]));
        assert_eq!(e.get_pixel(0, 18).0, [0; 3]);
        assert_eq!(e.get_pixel(0, 19).0, [255; 3]);
        negate(&mut e);
        let g = to_grey(&e);
        assert_eq!((g[9 * 28], g[0]), (255, 0));
    }

    #[test]
    fn stretch_maps_background_to_black_and_keeps_white() {
        let mut g = vec![25, 140, 255, 10];
        stretch_levels(&mut g, 25);
        assert_eq!(g, vec![0, 128, 255, 0]);
    }

    #[test]
    fn whole_pipeline_gives_a_bright_product_on_black() {
        let out = to_fashion_mnist(&product_photo(), name()).unwrap();
        assert_eq!(out.len(), 784);
        assert_eq!(out[0], 0, "background becomes black");
        assert!(out[14 * 28 + 14] > 180, "product becomes bright: {}", out[14 * 28 + 14]);
        let on_black = RgbImage::from_fn(40, 40, |x, y| {
            if (10..30).contains(&x) && (5..35).contains(&y) { Rgb([200; 3]) } else { Rgb([10; 3]) }
        });
        let out = to_fashion_mnist(&on_black, name()).unwrap();
        assert_eq!(out[0], 0);
        assert!(out[14 * 28 + 14] > 180, "a photo on black is not negated");
        let err = to_fashion_mnist(&RgbImage::from_pixel(9, 9, Rgb([1, 2, 3])), name()).unwrap_err();
        assert!(err.to_string().contains("nothing but background"));
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

    #[test]
    fn colour_keeps_the_product_colour_at_any_side() {
        let shape = PhotoShape::checked(32, 3).unwrap();
        let out = convert(&product_photo(), shape, name()).unwrap();
        assert_eq!(out.len(), 32 * 32 * 3);
        assert_eq!(&out[..3], &[0, 0, 0], "background becomes black in every channel");
        let centre = &out[(16 * 32 + 16) * 3..][..3];
        // The product (40, 30, 20) on (230, 230, 230) is negated and stretched per channel.
        assert!(centre[0] < centre[1] && centre[1] < centre[2] && centre[2] > 180, "{centre:?}");
        assert!(PhotoShape::checked(4, 3).is_err() && PhotoShape::checked(32, 2).is_err());
        assert_eq!(to_png(&out, shape).unwrap()[..4], [0x89, b'P', b'N', b'G']);
    }

    #[test]
    fn dataset_items_pass_through_unchanged() {
        let grey = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x + y) as u8]));
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(grey.clone()).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(from_bytes(&png, name(), DEFAULT_MAX_PIXELS).unwrap(), grey.into_raw());
    }
}
