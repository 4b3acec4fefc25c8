//! SVG plots of a run (`--plots DIR`): the latency CDF of the 1-in-flight scenario, one line per
//! system, and calls/s against calls in flight on one connection.
//!
//! plotters is built without its `ttf` feature: text is laid out with estimated glyph widths and
//! written as SVG `<text>` elements, so no system fonts are needed and viewers pick the font.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::{Results, Summary};
use crate::scenarios::{Kind, Scenario};
use crate::systems::{Runtime, System};

/// The scenario whose latency distribution is plotted.
pub(crate) const CDF_SCENARIO: &str = "unary_64B_1";

/// Latencies (ns) of every repeat of a (scenario index, system), merged.
pub(crate) type Histograms = BTreeMap<(usize, System), Histogram<u64>>;

type PlotResult<T> = Result<T, Box<dyn std::error::Error>>;

const SIZE: (u32, u32) = (800, 500);

fn color(system: System) -> RGBColor {
    match system {
        System::Raw => RGBColor(110, 110, 110),
        System::Framed => RGBColor(40, 160, 90),
        System::Tarpc => RGBColor(150, 60, 170),
        System::Tonic => RGBColor(230, 120, 20),
        System::Volley => RGBColor(30, 90, 200),
        System::GrpcGo => RGBColor(0, 170, 200),
        System::Grpcio => RGBColor(200, 40, 60),
        System::Asyncio => RGBColor(190, 170, 0),
    }
}

/// Writes every plot the selected scenarios allow into `dir` (created if missing) and returns
/// the files written. `note` (placement, repeats) goes under each plot.
pub(crate) fn write(
    dir: &Path,
    scenarios: &[Scenario],
    results: &Results,
    histograms: &Histograms,
    note: &str,
) -> PlotResult<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    if let Some(index) = scenarios.iter().position(|s| s.name == CDF_SCENARIO) {
        let series: Vec<_> = scenarios[index]
            .systems()
            .iter()
            .filter_map(|&system| histograms.get(&(index, system)).map(|h| (system, h)))
            .filter(|(_, h)| !h.is_empty())
            .collect();
        if !series.is_empty() {
            let path = dir.join(format!("latency_cdf_{CDF_SCENARIO}.svg"));
            latency_cdf(&path, &format!("Latency CDF: {}", scenarios[index].description), &series, note)?;
            written.push(path);
        }
    }
    let sweep = in_flight_sweep(scenarios, results);
    if sweep.values().any(|points| points.len() >= 2) {
        let path = dir.join("throughput_vs_in_flight.svg");
        throughput(&path, &sweep, note)?;
        written.push(path);
    }
    Ok(written)
}

/// One point of the sweep: calls in flight, and the rate's median, min and max over repeats.
type Point = (f64, f64, f64, f64);

/// Per system, the unary 64 B scenarios on one connection, by calls in flight.
fn in_flight_sweep(scenarios: &[Scenario], results: &Results) -> BTreeMap<System, Vec<Point>> {
    let mut sweep: BTreeMap<System, Vec<Point>> = BTreeMap::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        let Kind::Unary {
            size: 64,
            in_flight,
            conns: 1,
        } = scenario.kind
        else {
            continue;
        };
        if scenario.memory || scenario.runtime != Runtime::CurrentThread {
            continue;
        }
        for &system in scenario.systems() {
            if let Some(runs) = results.get(&(index, system)) {
                let s = Summary::of(runs);
                sweep
                    .entry(system)
                    .or_default()
                    .push((in_flight as f64, s.median.rate, s.rate_min, s.rate_max));
            }
        }
    }
    for points in sweep.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    sweep
}

/// `1/(1-p)` as a percentile label: 2 is "50%", 10 "90%", 1000 "99.9%".
fn percentile_label(inverse_tail: f64) -> String {
    let percent = 100.0 * (1.0 - 1.0 / inverse_tail);
    let decimals = (inverse_tail.log10().round() as i32 - 2).max(0) as usize;
    format!("{percent:.decimals$}%")
}

fn rate_label(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{} k", rate / 1e3)
    } else {
        format!("{rate}")
    }
}

/// Latency (log µs, x) against percentile on a log `1/(1-p)` axis (y), one line per system.
fn latency_cdf(path: &Path, title: &str, series: &[(System, &Histogram<u64>)], note: &str) -> PlotResult<()> {
    let lines: Vec<(System, Vec<(f64, f64)>)> = series
        .iter()
        .map(|&(system, hist)| {
            let total = hist.len() as f64;
            let mut points: Vec<(f64, f64)> = hist
                .iter_quantiles(5)
                .map(|v| (v.value_iterated_to() as f64 / 1000.0, v.quantile_iterated_to()))
                .filter(|&(_, q)| q < 1.0)
                .map(|(us, q)| (us, 1.0 / (1.0 - q)))
                .collect();
            // The largest value, at the last call's percentile.
            points.push((hist.max() as f64 / 1000.0, total.max(2.0)));
            (system, points)
        })
        .collect();
    let all = || lines.iter().flat_map(|(_, points)| points.iter());
    let x_min = all().map(|p| p.0).fold(f64::INFINITY, f64::min).max(0.1) / 1.2;
    let x_max = all().map(|p| p.0).fold(0.0, f64::max) * 1.2;
    let y_max = 10f64.powf(all().map(|p| p.1).fold(10.0, f64::max).log10().ceil());
    let y_keys: Vec<f64> = [1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7]
        .into_iter()
        .filter(|&v| v <= y_max)
        .collect();
    // 1-2-5 steps: readable labels at any latency range.
    let x_keys: Vec<f64> = (-1..8)
        .flat_map(|exp| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(exp)))
        .filter(|&v| (x_min..=x_max).contains(&v))
        .collect();

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .margin_bottom(28)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x_min..x_max).log_scale().with_key_points(x_keys),
            (1.0..y_max).log_scale().with_key_points(y_keys),
        )?;
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("percentile (all repeats merged)")
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| percentile_label(*v))
        .draw()?;
    for (system, points) in lines {
        let style = color(system).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(system.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    draw_note(&root, note)?;
    root.present()?;
    Ok(())
}

/// Calls/s (log) against calls in flight on one connection (log 2), median with min–max bars.
fn throughput(path: &Path, sweep: &BTreeMap<System, Vec<Point>>, note: &str) -> PlotResult<()> {
    let all = || sweep.values().flat_map(|points| points.iter());
    let x_keys: Vec<f64> = {
        let mut keys: Vec<f64> = all().map(|p| p.0).collect();
        keys.sort_by(f64::total_cmp);
        keys.dedup();
        keys
    };
    let x_max = x_keys.last().copied().unwrap_or(2.0) * 1.3;
    let y_min = all().map(|p| p.2).filter(|&r| r > 0.0).fold(f64::INFINITY, f64::min) / 2.0;
    let y_max = all().map(|p| p.3).fold(0.0, f64::max) * 2.0;

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Unary 64 B on one connection: calls/s against calls in flight", ("sans-serif", 18))
        .margin(12)
        .margin_bottom(28)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8..x_max).log_scale().with_key_points(x_keys), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("calls in flight (one connection)")
        .y_desc("calls/s (median, min-max bars)")
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| rate_label(*v))
        .draw()?;
    for (&system, points) in sweep {
        let style = color(system).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), style))?
            .label(system.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|&(x, median, min, max)| ErrorBar::new_vertical(x, min, median, max, color(system).filled().stroke_width(1), 8)),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    draw_note(&root, note)?;
    root.present()?;
    Ok(())
}

fn draw_note<DB: DrawingBackend>(root: &DrawingArea<DB, plotters::coord::Shift>, note: &str) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    root.draw(&Text::new(note.to_owned(), (12, SIZE.1 as i32 - 18), ("sans-serif", 12)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(1e5), "99.999%");
    }
}
