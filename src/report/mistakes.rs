//! A grid of misclassified images, each with its true and predicted label and the model's
//! confidence, most confident mistakes first; for a catalogue, the original photo beside the
//! model's input and its file name. Every label is shortened to fit its tile.

use super::canvas::{Canvas, DrawResult, Figure, render_png, text};
use crate::data::dataset::Dataset;
use crate::data::decode;
use crate::error::Result;
use crate::nn::loss::argmax;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

const SCALE: i32 = 4;
/// The side of a drawn image.
const SIDE: i32 = 28 * SCALE;
const COLUMNS: usize = 8;
/// Lines of text below an image.
const TEXT_H: i32 = 62;
/// Largest original photo decoded for the figure, in pixels.
const MAX_PHOTO_PIXELS: u64 = 40_000_000;

/// A misclassified sample.
#[derive(Debug, Clone, Serialize)]
pub struct Mistake {
    /// Index in the evaluated set.
    pub index: usize,
    /// True class name.
    pub truth: String,
    /// Predicted class name.
    pub predicted: String,
    /// Probability of the predicted class.
    pub confidence: f32,
    /// The original photo, for a catalogue whose manifest lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

/// The misclassified samples of `probs` (rows of `names.len()`), most confident first.
pub fn mistakes(probs: &[f32], labels: &[u16], names: &[String]) -> Vec<Mistake> {
    let mut found: Vec<Mistake> = probs
        .chunks_exact(names.len())
        .zip(labels)
        .enumerate()
        .filter_map(|(index, (row, &label))| {
            let p = argmax(row);
            (p != label as usize).then(|| Mistake {
                index,
                truth: names[label as usize].clone(),
                predicted: names[p].clone(),
                confidence: row[p],
                photo: None,
            })
        })
        .collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    found
}

/// The first `mistakes` drawn from `data` as a grid, as a PNG figure; with the original photos
/// beside the inputs when any mistake names one.
pub fn mistakes_png(mistakes: &[Mistake], data: &Dataset) -> Result<Figure> {
    let with_photos = mistakes.iter().any(|m| m.photo.is_some());
    let columns = if with_photos { COLUMNS / 2 } else { COLUMNS };
    let tile_w = if with_photos { 2 * SIDE + 36 } else { SIDE + 38 };
    let rows = mistakes.len().div_ceil(columns).max(1) as i32;
    let (width, height) = (columns as i32 * tile_w + 20, rows * (SIDE + TEXT_H) + 60);
    render_png("misclassified images", width as u32, height as u32, |canvas| {
        let title = text(20, BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        let heading = if with_photos {
            "misclassified test images (most confident first): original photo, model input"
        } else {
            "misclassified test images (most confident first)"
        };
        canvas.draw(&Text::new(heading, (width / 2, 24), title))?;
        for (k, m) in mistakes.iter().enumerate() {
            let (x, y) = (10 + (k % columns) as i32 * tile_w, 50 + (k / columns) as i32 * (SIDE + TEXT_H));
            tile(canvas, m, data, (x, y), tile_w, with_photos)?;
        }
        Ok(())
    })
}

/// Draws `pixels` (rows × cols × channels) SIDE pixels across its longer side, at `(left, top)`.
fn draw_image(
    canvas: &Canvas,
    pixels: &[u8],
    (rows, cols, channels): (usize, usize, usize),
    (left, top): (i32, i32),
) -> DrawResult {
    let step = SIDE as f64 / rows.max(cols) as f64;
    let at = |i: usize| (i as f64 * step).round() as i32;
    for (i, p) in pixels.chunks_exact(channels).enumerate() {
        let colour = if channels >= 3 { RGBColor(p[0], p[1], p[2]) } else { RGBColor(p[0], p[0], p[0]) };
        let (px, py) = (left + at(i % cols), top + at(i / cols));
        let (qx, qy) = (left + at(i % cols + 1), top + at(i / cols + 1));
        canvas.draw(&Rectangle::new([(px, py), (qx, qy)], colour.filled()))?;
    }
    Ok(())
}

/// The photo at `path` shrunk to at most SIDE pixels across, or why it cannot be shown.
fn original(path: &str) -> std::result::Result<image::RgbImage, &'static str> {
    let bytes = std::fs::read(path).map_err(|_| "photo not found")?;
    let photo = decode::decode(&bytes, std::path::Path::new(path), MAX_PHOTO_PIXELS).map_err(|_| "unreadable photo")?;
    let side = SIDE as u32;
    Ok(if photo.width().max(photo.height()) > side {
        image::imageops::thumbnail(&photo, side.min(photo.width()), side.min(photo.height()))
    } else {
        photo
    })
}

/// `line` shortened with an ellipsis (keeping its start, or its end for a file name) until it
/// fits `width` pixels in `style`.
fn fitted(canvas: &Canvas, line: &str, style: &TextStyle, width: i32, keep_end: bool) -> String {
    let fits = |s: &str| canvas.estimate_text_size(s, style).is_ok_and(|(w, _)| w as i32 <= width);
    let chars: Vec<char> = line.chars().collect();
    let mut candidate = line.to_string();
    let mut keep = chars.len();
    while !fits(&candidate) && keep > 0 {
        keep -= 1;
        candidate = if keep_end {
            format!("…{}", chars[chars.len() - keep..].iter().collect::<String>())
        } else {
            format!("{}…", chars[..keep].iter().collect::<String>())
        };
    }
    candidate
}

/// One mistake: the original photo (when shown) and the model's input, each SIDE pixels
/// across, and its labels below.
fn tile(canvas: &Canvas, m: &Mistake, data: &Dataset, (x, y): (i32, i32), tile_w: i32, photos: bool) -> DrawResult {
    let input_left = if photos { x + tile_w - SIDE - 14 } else { x + (tile_w - SIDE) / 2 };
    draw_image(canvas, data.image(m.index), (data.rows, data.cols, data.channels), (input_left, y))?;
    if photos {
        match m.photo.as_deref().map(original) {
            Some(Ok(img)) => {
                let (w, h) = (img.width() as usize, img.height() as usize);
                let (dx, dy) = ((SIDE - (w as f64 * SIDE as f64 / w.max(h) as f64) as i32) / 2, 0);
                draw_image(canvas, img.as_raw(), (h, w, 3), (x + 14 + dx, y + dy))?;
            }
            Some(Err(why)) => {
                let style = text(12, RGBColor(120, 120, 120)).pos(Pos::new(HPos::Center, VPos::Center));
                canvas.draw(&Text::new(why, (x + 14 + SIDE / 2, y + SIDE / 2), style))?;
            }
            None => {}
        }
    }
    let centre = Pos::new(HPos::Center, VPos::Top);
    let below = y + SIDE + 4;
    let width = tile_w - 8;
    let lines = [
        (format!("true: {}", m.truth), BLACK, false),
        (format!("pred: {} {:.0}%", m.predicted, 100.0 * m.confidence), RGBColor(180, 0, 30), false),
        (m.photo.as_deref().map(file_name).unwrap_or_default(), RGBColor(90, 90, 90), true),
    ];
    for (i, (line, colour, keep_end)) in lines.into_iter().enumerate() {
        let style = text(13, colour);
        let line = fitted(canvas, &line, &style, width, keep_end);
        canvas.draw(&Text::new(line, (x + tile_w / 2, below + 17 * i as i32), style.pos(centre)))?;
    }
    Ok(())
}

/// The last component of a path.
fn file_name(path: &str) -> String {
    std::path::Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_are_shortened_to_fit_their_tile() {
        render_png("test", 300, 100, |canvas| {
            let style = text(13, BLACK);
            let long = "true: a very long category name that no tile could hold in one line";
            let short = fitted(canvas, long, &style, 140, false);
            assert!(short.ends_with('…') && long.starts_with(short.trim_end_matches('…')), "{short}");
            assert!(canvas.estimate_text_size(&short, &style)?.0 <= 140);
            let name = fitted(canvas, "photos/dresses/an-extremely-long-upload-name-0001.jpg", &style, 140, true);
            assert!(name.starts_with('…') && name.ends_with("0001.jpg"), "{name}");
            assert_eq!(fitted(canvas, "pred: Bag 97%", &style, 140, false), "pred: Bag 97%");
            Ok(())
        })
        .unwrap();
    }
}
