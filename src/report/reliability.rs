//! The reliability diagram: per confidence bin, how often the model was right against how sure
//! it said it was, before and after calibration; a calibrated model follows the diagonal. Each
//! bin is labelled with how many predictions fell in it, and bins of fewer than
//! [`MIN_BIN_COUNT`] are not drawn: a handful of photos is noise, not a finding.

use super::canvas::{DrawResult, FONT, Figure, render_png};
use crate::error::Result;
use crate::train::calibration::{self, Bin, ECE_BINS};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const RAW: RGBColor = RGBColor(214, 39, 40);
const CALIBRATED: RGBColor = RGBColor(31, 119, 180);

/// Fewest predictions a bin needs to be drawn.
pub const MIN_BIN_COUNT: usize = 20;

/// The diagram of `raw` and `calibrated` probabilities (rows of `classes`) against `labels`.
pub fn reliability_png(raw: &[f32], calibrated: &[f32], labels: &[u16], classes: usize) -> Result<Figure> {
    let curves = [("uncalibrated", RAW, raw), ("calibrated", CALIBRATED, calibrated)].map(|(name, colour, probs)| {
        let bins = calibration::reliability(probs, labels, classes, ECE_BINS);
        (format!("{name} (ECE {:.4})", calibration::ece_of(&bins)), colour, bins)
    });
    render_png("reliability diagram", 620, 600, |canvas| {
        let mut chart = ChartBuilder::on(canvas)
            .caption(format!("reliability diagram (test set; bins under {MIN_BIN_COUNT} hidden)"), (FONT, 20))
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
        // Labels right of their dot, or left of it near the right edge.
        let counts = curves[1].2.iter().filter(|b| b.count >= MIN_BIN_COUNT);
        chart.draw_series(counts.map(|b| {
            let (side, dx) = if b.confidence > 0.85 { (HPos::Right, -0.012) } else { (HPos::Left, 0.012) };
            let style = (FONT, 12).into_font().color(&CALIBRATED).pos(Pos::new(side, VPos::Top));
            Text::new(format!("n={}", b.count), (b.confidence + dx, b.accuracy - 0.015), style)
        }))?;
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

/// One curve through the bins of at least [`MIN_BIN_COUNT`] predictions, each marked by a dot.
fn draw_curve(chart: &mut Chart, name: &str, colour: RGBColor, bins: &[Bin]) -> DrawResult {
    let kept = bins.iter().filter(|b| b.count >= MIN_BIN_COUNT);
    let points: Vec<(f64, f64)> = kept.map(|b| (b.confidence, b.accuracy)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
    chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    Ok(())
}
