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

use crate::data::decode::{Limits, check_deadline, decode_oriented, flatten_on_white, read_file};
use crate::error::{Error, Result};
use image::{DynamicImage, Rgb, RgbImage};
use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

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
        assert_eq!(from_bytes(&png, name(), crate::data::decode::DEFAULT_MAX_PIXELS).unwrap(), grey.into_raw());
    }
}
