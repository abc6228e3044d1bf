//! The row-normalised confusion matrix as a heat-map: true classes down, predicted classes
//! across, each cell shaded by and labelled with its percentage of the true class.

use super::canvas::{Canvas, DrawResult, Figure, render_png, text};
use crate::error::Result;
use crate::train::metrics::Confusion;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const TOP: i32 = 56;
/// Room under the class names for the caption.
const CAPTION: i32 = 34;

/// Where things go: cell size, the margins the class names need, the figure's width.
#[derive(Clone, Copy)]
struct Layout {
    cell: i32,
    font: i32,
    left: i32,
    bottom: i32,
    width: i32,
}

impl Layout {
    /// Cells of 58 pixels up to twelve classes, then smaller (the matrix stays about 700 pixels
    /// across); margins as wide as the longest name.
    fn of(names: &[String]) -> Layout {
        let n = names.len().max(1) as i32;
        let cell = if n <= 12 { 58 } else { (700 / n).max(4) };
        let font = cell.clamp(4, 16) - 2;
        let longest = names.iter().map(|s| s.chars().count()).max().unwrap_or(0) as i32;
        let names_px = 16 + longest * font * 6 / 10;
        let width = (names_px + n * cell + 24).max(600);
        Layout { cell, font, left: names_px, bottom: names_px + CAPTION, width }
    }
}

/// The heat-map of `confusion` with class `names`, as a PNG figure.
pub fn confusion_png(confusion: &Confusion, names: &[String], title: &str) -> Result<Figure> {
    let layout = Layout::of(names);
    let height = TOP + names.len() as i32 * layout.cell + layout.bottom;
    render_png("confusion matrix", layout.width as u32, height as u32, |canvas| {
        draw(canvas, &confusion.row_percent(), names, title, layout)
    })
}

/// White → deep blue by percentage.
fn shade(percent: f64) -> RGBColor {
    let t = (percent / 100.0).clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * t.powf(0.6)) as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

fn draw(canvas: &Canvas, percent: &[Vec<f64>], names: &[String], title: &str, layout: Layout) -> DrawResult {
    let (n, Layout { cell, font, left, bottom, width }) = (names.len() as i32, layout);
    let centred = |size, colour| text(size, colour).pos(Pos::new(HPos::Center, VPos::Center));
    canvas.draw(&Text::new(title.to_string(), (width / 2, TOP / 2 - 4), centred(20, BLACK)))?;
    for (i, row) in percent.iter().enumerate() {
        let y = TOP + i as i32 * cell;
        for (j, &p) in row.iter().enumerate() {
            let x = left + j as i32 * cell;
            canvas.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], shade(p).filled()))?;
            if cell >= 40 {
                canvas.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], RGBColor(200, 200, 200)))?;
                let ink = if p > 45.0 { WHITE } else { BLACK };
                let label = if p == 0.0 { "0".to_string() } else { format!("{p:.1}") };
                canvas.draw(&Text::new(label, (x + cell / 2, y + cell / 2), centred(14, ink)))?;
            }
        }
        let right = text(font as u32, BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        canvas.draw(&Text::new(names[i].clone(), (left - 8, y + cell / 2), right))?;
    }
    let below = TOP + n * cell + 8;
    for (j, name) in names.iter().enumerate() {
        let style = text(font as u32, BLACK).transform(FontTransform::Rotate90).pos(Pos::new(HPos::Left, VPos::Center));
        canvas.draw(&Text::new(name.clone(), (left + j as i32 * cell + cell / 2, below), style))?;
    }
    let caption = "rows: true class · columns: predicted class · % of each true class";
    canvas.draw(&Text::new(caption, (width / 2, below + bottom - 22), centred(13, RGBColor(90, 90, 90))))?;
    Ok(())
}
