//! `plot.svg`: training and validation loss, and validation accuracy, per
//! epoch, side by side, for a person to open (plotters' SVG backend; no
//! fonts or system libraries needed).

use super::metrics::EpochMetrics;
use crate::error::{Error, Result};
use plotters::prelude::*;

const DARK_GREEN: RGBColor = RGBColor(0, 128, 0);
use std::path::Path;

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Format {
        what: path.display().to_string(),
        msg: format!("plot: {e}"),
    }
}

/// Draws `metrics` to `path` (an SVG), written through a temporary file.
pub fn write(path: &Path, metrics: &[EpochMetrics], title: &str) -> Result<()> {
    let mut svg = String::new();
    draw(&mut svg, metrics, title).map_err(|e| plot_error(path, e))?;
    crate::nn::save::write_atomically(path, svg.as_bytes())
}

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn draw(svg: &mut String, metrics: &[EpochMetrics], title: &str) -> DrawResult {
    let root = SVGBackend::with_string(svg, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(500);
    // Epochs count from 1 on the axis, as people say them.
    let x = |m: &EpochMetrics| f64::from(m.epoch) + 1.0;
    let x_max = metrics.iter().map(x).fold(1.0, f64::max) + 0.25;

    let losses = metrics.iter().flat_map(|m| [m.train_loss, m.valid_loss]);
    let y_max = losses.filter(|v| v.is_finite()).fold(0.1, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.75..x_max, 0.0..y_max)?;
    let epochs = metrics.len().max(1);
    chart
        .configure_mesh()
        .x_labels(epochs + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("epoch")
        .y_desc("cross-entropy")
        .draw()?;
    for (name, color, get) in [
        (
            "train",
            BLUE,
            (|m: &EpochMetrics| m.train_loss) as fn(&EpochMetrics) -> f64,
        ),
        ("validation", RED, |m: &EpochMetrics| m.valid_loss),
    ] {
        let pts: Vec<(f64, f64)> = metrics.iter().map(|m| (x(m), get(m))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 18, py)], color));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let mut chart = ChartBuilder::on(&right)
        .caption("validation accuracy", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.75..x_max, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_labels(epochs + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("epoch")
        .y_desc("accuracy")
        .draw()?;
    let pts: Vec<(f64, f64)> = metrics.iter().map(|m| (x(m), m.valid_accuracy)).collect();
    chart.draw_series(LineSeries::new(pts.clone(), DARK_GREEN.stroke_width(2)))?;
    chart.draw_series(
        pts.into_iter()
            .map(|p| Circle::new(p, 3, DARK_GREEN.filled())),
    )?;
    root.present()?;
    Ok(())
}
