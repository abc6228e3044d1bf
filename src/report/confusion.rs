//! The row-normalised confusion matrix as a heat-map: true classes down, predicted classes
//! across, each cell shaded by and labelled with its percentage of the true class.

use super::canvas::{Canvas, DrawResult, Figure, render_png, text};
use crate::error::Result;
use crate::train::metrics::Confusion;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const CELL: i32 = 58;
const LEFT: i32 = 130;
const TOP: i32 = 56;
const BOTTOM: i32 = 120;

/// The heat-map of `confusion` with class `names`, as a PNG figure.
pub fn confusion_png(confusion: &Confusion, names: &[String], title: &str) -> Result<Figure> {
    let n = names.len() as i32;
    let (width, height) = (LEFT + n * CELL + 24, TOP + n * CELL + BOTTOM);
    render_png("confusion matrix", width as u32, height as u32, |canvas| {
        draw(canvas, &confusion.row_percent(), names, title)
    })
}

/// White → deep blue by percentage.
fn shade(percent: f64) -> RGBColor {
    let t = (percent / 100.0).clamp(0.0, 1.0);
    let mix = |from: f64, to: f64| (from + (to - from) * t.powf(0.6)) as u8;
    RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0))
}

fn draw(canvas: &Canvas, percent: &[Vec<f64>], names: &[String], title: &str) -> DrawResult {
    let n = names.len() as i32;
    let centred = |size, colour| text(size, colour).pos(Pos::new(HPos::Center, VPos::Center));
    canvas.draw(&Text::new(title.to_string(), (LEFT + n * CELL / 2, TOP / 2 - 4), centred(20, BLACK)))?;
    for (i, row) in percent.iter().enumerate() {
        let y = TOP + i as i32 * CELL;
        for (j, &p) in row.iter().enumerate() {
            let x = LEFT + j as i32 * CELL;
            canvas.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], shade(p).filled()))?;
            canvas.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], RGBColor(200, 200, 200)))?;
            let ink = if p > 45.0 { WHITE } else { BLACK };
            let label = if p == 0.0 { "0".to_string() } else { format!("{p:.1}") };
            canvas.draw(&Text::new(label, (x + CELL / 2, y + CELL / 2), centred(14, ink)))?;
        }
        let right = text(14, BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        canvas.draw(&Text::new(names[i].clone(), (LEFT - 8, y + CELL / 2), right))?;
    }
    let below = TOP + n * CELL + 8;
    for (j, name) in names.iter().enumerate() {
        let style = text(14, BLACK).transform(FontTransform::Rotate90).pos(Pos::new(HPos::Left, VPos::Center));
        canvas.draw(&Text::new(name.clone(), (LEFT + j as i32 * CELL + CELL / 2, below), style))?;
    }
    let caption = "rows: true class · columns: predicted class · % of each true class";
    canvas.draw(&Text::new(caption, (LEFT + n * CELL / 2, below + BOTTOM - 22), centred(13, RGBColor(90, 90, 90))))?;
    Ok(())
}
