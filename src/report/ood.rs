//! The out-of-distribution figure: histograms of the score on the test set and on each folder of
//! photos that are not ours, with the threshold above which a photo is called unknown.

use super::canvas::{FONT, Figure, render_png};
use crate::error::Result;
use plotters::prelude::*;

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
const BINS: usize = 40;

/// Scores of one set of photos.
pub struct ScoredSet<'a> {
    /// Its name in the legend.
    pub name: String,
    /// Its scores.
    pub scores: &'a [f32],
}

/// The share of each set's photos per score bin (the first set is the test set), and the
/// threshold as a vertical line, as a PNG figure.
pub fn ood_png(sets: &[ScoredSet], threshold: f32) -> Result<Figure> {
    let all = sets.iter().flat_map(|s| s.scores.iter().copied()).chain([threshold]).filter(|s| s.is_finite());
    let (lo, hi) = all.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let (lo, hi) = (f64::from(lo.min(0.0)), f64::from(hi.max(lo + 1.0)) * 1.02);
    let width = (hi - lo) / BINS as f64;
    let shares: Vec<Vec<f64>> = sets
        .iter()
        .map(|s| {
            let mut counts = vec![0.0; BINS];
            for &x in s.scores.iter().filter(|x| x.is_finite()) {
                counts[(((f64::from(x) - lo) / width) as usize).min(BINS - 1)] += 1.0;
            }
            counts.iter().map(|c| c / s.scores.len().max(1) as f64).collect()
        })
        .collect();
    let top = shares.iter().flatten().fold(0.0f64, |a, &b| a.max(b)).max(0.01) * 1.1;
    render_png("out-of-distribution figure", 820, 480, |canvas| {
        let mut chart = ChartBuilder::on(canvas)
            .caption("out-of-distribution score (higher = more unusual)", (FONT, 20))
            .margin(16)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("score")
            .y_desc("share of the set's photos")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (i, (set, share)) in sets.iter().zip(&shares).enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let steps = share.iter().enumerate().flat_map(|(b, &v)| {
                let x = lo + b as f64 * width;
                [(x, v), (x + width, v)]
            });
            chart
                .draw_series(LineSeries::new(steps, colour.stroke_width(2)))?
                .label(format!("{} ({} photos)", set.name, set.scores.len()))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(3)));
        }
        let t = f64::from(threshold);
        chart
            .draw_series(LineSeries::new([(t, 0.0), (t, top)], BLACK.stroke_width(2)))?
            .label(format!("unknown above {threshold:.3}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}
