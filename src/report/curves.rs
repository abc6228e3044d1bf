//! Training curves: loss and accuracy per epoch, training against validation, side by side.

use super::canvas::{Canvas, DrawResult, FONT, Figure, render_png};
use crate::error::Result;
use crate::model_dir::EpochStats;
use plotters::prelude::*;

const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VALIDATION: RGBColor = RGBColor(255, 127, 14);

/// Loss and accuracy curves of `history`, as a PNG figure.
pub fn curves_png(history: &[EpochStats]) -> Result<Figure> {
    render_png("training curves", 1100, 440, |canvas| {
        let (left, right) = canvas.split_horizontally(550);
        panel(&left, "loss", SeriesLabelPosition::UpperRight, history, |e| (e.loss, e.val_loss))?;
        panel(&right, "accuracy", SeriesLabelPosition::LowerRight, history, |e| (e.accuracy, e.val_accuracy))
    })
}

/// One panel: `metric` (training, validation) per epoch, the legend at `legend`.
fn panel(
    area: &Canvas,
    title: &str,
    legend: SeriesLabelPosition,
    history: &[EpochStats],
    metric: impl Fn(&EpochStats) -> (f64, f64),
) -> DrawResult {
    let values: Vec<(f64, f64)> = history.iter().map(&metric).collect();
    let all = values.iter().flat_map(|&(t, v)| [t, v]);
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let epochs = history.len().max(2) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(1.0..epochs, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(history.len().clamp(2, 12))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let points = |pick: fn(&(f64, f64)) -> f64| values.iter().enumerate().map(move |(i, v)| ((i + 1) as f64, pick(v)));
    for (name, colour, pick) in
        [("training", TRAIN, (|v: &(f64, f64)| v.0) as fn(&(f64, f64)) -> f64), ("validation", VALIDATION, |v| v.1)]
    {
        chart
            .draw_series(LineSeries::new(points(pick), colour.stroke_width(3)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
        chart.draw_series(points(pick).map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    Ok(())
}
