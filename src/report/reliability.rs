//! The reliability diagram: per confidence bin, how often the model was right against how sure
//! it said it was, before and after calibration; a calibrated model follows the diagonal.

use super::canvas::{DrawResult, FONT, Figure, render_png};
use crate::error::Result;
use crate::train::calibration::{self, Bin, ECE_BINS};
use plotters::prelude::*;

const RAW: RGBColor = RGBColor(214, 39, 40);
const CALIBRATED: RGBColor = RGBColor(31, 119, 180);

/// The diagram of `raw` and `calibrated` probabilities (rows of `classes`) against `labels`.
pub fn reliability_png(raw: &[f32], calibrated: &[f32], labels: &[u16], classes: usize) -> Result<Figure> {
    let curves = [("uncalibrated", RAW, raw), ("calibrated", CALIBRATED, calibrated)].map(|(name, colour, probs)| {
        let bins = calibration::reliability(probs, labels, classes, ECE_BINS);
        (format!("{name} (ECE {:.4})", calibration::ece_of(&bins)), colour, bins)
    });
    render_png("reliability diagram", 620, 600, |canvas| {
        let mut chart = ChartBuilder::on(canvas)
            .caption("reliability diagram (test set)", (FONT, 22))
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("confidence")
            .y_desc("accuracy")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        chart.draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4).stroke_width(1)))?;
        for (name, colour, bins) in &curves {
            draw_curve(&mut chart, name, *colour, bins)?;
        }
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One curve through the non-empty bins, each marked by a dot.
fn draw_curve(chart: &mut Chart, name: &str, colour: RGBColor, bins: &[Bin]) -> DrawResult {
    let points: Vec<(f64, f64)> = bins.iter().filter(|b| b.count > 0).map(|b| (b.confidence, b.accuracy)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
    chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    Ok(())
}
