//! A grid of misclassified images, each with its true and predicted label and the model's
//! confidence, most confident mistakes first.

use super::canvas::{Canvas, DrawResult, Figure, render_png, text};
use crate::data::dataset::Dataset;
use crate::error::Result;
use crate::nn::loss::argmax;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

const SCALE: i32 = 4;
const COLUMNS: usize = 8;
const TILE_W: i32 = 150;
const TILE_H: i32 = 28 * SCALE + 44;

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
            })
        })
        .collect();
    found.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.index.cmp(&b.index)));
    found
}

/// The first `mistakes` drawn from `data` as a grid, as a PNG figure.
pub fn mistakes_png(mistakes: &[Mistake], data: &Dataset) -> Result<Figure> {
    let rows = mistakes.len().div_ceil(COLUMNS).max(1) as i32;
    let (width, height) = (COLUMNS as i32 * TILE_W + 20, rows * TILE_H + 60);
    render_png("misclassified images", width as u32, height as u32, |canvas| {
        let title = text(20, BLACK).pos(Pos::new(HPos::Center, VPos::Center));
        canvas.draw(&Text::new("misclassified test images (most confident first)", (width / 2, 24), title))?;
        for (k, m) in mistakes.iter().enumerate() {
            let (x, y) = (10 + (k % COLUMNS) as i32 * TILE_W, 50 + (k / COLUMNS) as i32 * TILE_H);
            tile(canvas, m, data, (x, y))?;
        }
        Ok(())
    })
}

/// One mistake: its image drawn 28·SCALE pixels across whatever its size, and its labels.
fn tile(canvas: &Canvas, m: &Mistake, data: &Dataset, (x, y): (i32, i32)) -> DrawResult {
    let left = x + (TILE_W - 28 * SCALE) / 2;
    let (cols, channels) = (data.cols, data.channels);
    let step = 28.0 * SCALE as f64 / data.rows.max(cols) as f64;
    let at = |i: usize| (i as f64 * step).round() as i32;
    for (i, p) in data.image(m.index).chunks_exact(channels).enumerate() {
        let colour = if channels >= 3 { RGBColor(p[0], p[1], p[2]) } else { RGBColor(p[0], p[0], p[0]) };
        let (px, py) = (left + at(i % cols), y + at(i / cols));
        let (qx, qy) = (left + at(i % cols + 1), y + at(i / cols + 1));
        canvas.draw(&Rectangle::new([(px, py), (qx, qy)], colour.filled()))?;
    }
    let centre = Pos::new(HPos::Center, VPos::Top);
    let below = y + 28 * SCALE + 4;
    canvas.draw(&Text::new(format!("true: {}", m.truth), (x + TILE_W / 2, below), text(13, BLACK).pos(centre)))?;
    let predicted = format!("pred: {} {:.0}%", m.predicted, 100.0 * m.confidence);
    canvas.draw(&Text::new(predicted, (x + TILE_W / 2, below + 17), text(13, RGBColor(180, 0, 30)).pos(centre)))?;
    Ok(())
}
