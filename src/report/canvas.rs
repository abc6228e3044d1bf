//! Drawing PNG figures: an RGB canvas drawn with plotters, text in a TrueType font found on the
//! system (Debian's fonts-dejavu-core or fonts-liberation), PNG-encoded in memory.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::io::Cursor;
use std::sync::OnceLock;

/// The font family figures use.
pub const FONT: &str = "sans-serif";

/// TrueType fonts tried in order.
const FONT_FILES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// A drawing surface of a figure.
pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// What a drawing step returns.
pub type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Registers the first available system font once.
fn ensure_font() -> Result<()> {
    // The reason the font could not be registered, if it could not.
    static FAILURE: OnceLock<Option<String>> = OnceLock::new();
    let failure = FAILURE.get_or_init(|| {
        let Some(bytes) = FONT_FILES.iter().find_map(|path| std::fs::read(path).ok()) else {
            return Some(format!(
                "figures need a TrueType font; none of {} exists (apt-get install fonts-dejavu-core)",
                FONT_FILES.join(", ")
            ));
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let registered = plotters::style::register_font(FONT, FontStyle::Normal, bytes);
        registered.err().map(|_| "the system font is not a valid TrueType font".to_string())
    });
    failure.clone().map_or(Ok(()), |m| Err(Error::Invalid(m)))
}

/// A drawn figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// PNG bytes.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Draws a `width × height` figure on white; `what` names it in errors.
pub fn render_png(what: &str, width: u32, height: u32, draw: impl FnOnce(&Canvas) -> DrawResult) -> Result<Figure> {
    ensure_font()?;
    let fail = |e: &dyn std::fmt::Display| Error::System(format!("cannot draw the {what}: {e}"));
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    let img = image::RgbImage::from_raw(width, height, rgb).expect("buffer matches the size");
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).map_err(|e| fail(&e))?;
    Ok(Figure { png, width, height })
}

/// A text style of `size` pixels in `colour`.
pub fn text(size: u32, colour: RGBColor) -> TextStyle<'static> {
    (FONT, size).into_font().color(&colour)
}
