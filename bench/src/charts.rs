//! `--charts DIR`: how cost grows (scenario 10), drawn as SVG from the bench's JSON, one
//! figure per series with a panel per figure. Each panel has a grey reference: the linear
//! growth from the first point for a total, the first point's level for a per-unit cost, so
//! that a curve above it is growing faster than linearly.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

use crate::growth::{Kind, SERIES, points};

/// Draws every series found in `results.growth`; returns the files written.
pub(crate) fn draw(results: &Value, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let growth = &results["growth"];
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (series, x_key, metrics) in SERIES {
        let points = points(growth, series);
        if points.is_empty() {
            continue;
        }
        let path = dir.join(format!("growth-{series}.svg"));
        figure(&path, series, x_key, metrics, points)?;
        written.push(path);
    }
    Ok(written)
}

/// Bytes are drawn in MiB, the rest as they are.
fn unit(metric: &str) -> (&'static str, f64) {
    if metric.ends_with("_bytes") {
        ("MiB", (1u64 << 20) as f64)
    } else if metric.ends_with("_ms") {
        ("ms", 1.0)
    } else if metric.contains("_us_") {
        ("µs", 1.0)
    } else if metric.ends_with("_percent") {
        ("%", 1.0)
    } else {
        ("", 1.0)
    }
}

fn figure(
    path: &Path,
    series: &str,
    x_key: &str,
    metrics: &[(&str, Kind)],
    points: &[Value],
) -> anyhow::Result<()> {
    let failed = |e: String| anyhow!("drawing {}: {e}", path.display());
    let columns = 2;
    let rows = metrics.len().div_ceil(columns);
    let root = SVGBackend::new(path, (1000, 320 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(e.to_string()))?;
    let root = root
        .titled(
            &format!("warren hub cost by {series} (grey: no faster than linear)"),
            ("sans-serif", 20),
        )
        .map_err(|e| failed(e.to_string()))?;
    // Counts of engines and clients span decades: their x axis is logarithmic.
    let log_x = series != "history";
    let xs: Vec<f64> = points
        .iter()
        .map(|p| p[x_key].as_f64().unwrap_or(0.0))
        .collect();
    let (x_min, x_max) = bounds(&xs);
    for (area, (metric, kind)) in root.split_evenly((rows, columns)).iter().zip(metrics) {
        let (unit, scale) = unit(metric);
        let line: Vec<(f64, f64)> = points
            .iter()
            .zip(&xs)
            // A point without the figure (the call timed out: null) is left out, not drawn as 0.
            .filter_map(|(p, x)| Some((*x, p[*metric].as_f64()? / scale)))
            .collect();
        let top = (line.iter().map(|(_, y)| *y).fold(0.0, f64::max) * 1.25).max(1e-9);
        let panel = Panel {
            caption: metric,
            x_desc: &if log_x {
                format!("{x_key} (log)")
            } else {
                x_key.to_string()
            },
            unit,
            top,
            reference: reference(&line, *kind, log_x, top),
            line,
        };
        if log_x {
            panel.draw(area, (x_min.max(1.0)..x_max.max(2.0)).log_scale())
        } else {
            panel.draw(area, x_min..x_max)
        }
        .map_err(failed)?;
    }
    root.present().map_err(|e| failed(e.to_string()))?;
    Ok(())
}

/// One figure's panel.
struct Panel<'a> {
    caption: &'a str,
    x_desc: &'a str,
    unit: &'a str,
    top: f64,
    line: Vec<(f64, f64)>,
    reference: Vec<(f64, f64)>,
}

impl Panel<'_> {
    fn draw<X>(self, area: &DrawingArea<SVGBackend<'_>, Shift>, x: X) -> Result<(), String>
    where
        X: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(area)
            .caption(self.caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x, 0.0..self.top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc)
            .y_desc(self.unit)
            .x_label_formatter(&|x| number(*x))
            .y_label_formatter(&|y| number(*y))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(self.reference, &BLACK.mix(0.3)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(self.line.clone(), &BLUE))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(self.line.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// A tick label: whole numbers without decimals, others with up to three.
fn number(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 100.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn bounds(xs: &[f64]) -> (f64, f64) {
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min.is_finite() && max > min {
        (min, max)
    } else {
        (min.min(0.0), min.max(0.0) + 1.0)
    }
}

/// The growth the figure should not pass, up to `top`: linear from the first point with x and
/// y above 0 (a total), or that point's level (a per-unit cost).
fn reference(line: &[(f64, f64)], kind: Kind, log_x: bool, top: f64) -> Vec<(f64, f64)> {
    let Some(&(x0, y0)) = line.iter().find(|(x, y)| *x > 0.0 && *y > 0.0) else {
        return Vec::new();
    };
    let x_end = line.last().map_or(x0, |(x, _)| *x);
    match kind {
        Kind::PerUnit => vec![(x0, y0), (x_end, y0)],
        Kind::Total => {
            // y = y0 · x / x0 reaches the top of the panel at x = x0 · top / y0; steps even
            // on the axis, so that the line is smooth on a logarithmic one.
            let x_top = (x0 * top / y0).min(x_end);
            let steps = 32;
            (0..=steps)
                .map(|i| {
                    let f = i as f64 / steps as f64;
                    if log_x {
                        x0 * (x_top / x0).powf(f)
                    } else {
                        x0 + (x_top - x0) * f
                    }
                })
                .map(|x| (x, y0 * x / x0))
                .collect()
        }
    }
}
