//! Summaries over repeats, the terminal table and JSON lines.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use crate::scenarios::{Sample, Scenario};
use crate::systems::System;

/// The figures of one run, in microseconds and calls per second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Figures {
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
}

impl Figures {
    pub(crate) fn of(sample: &Sample) -> Self {
        let us = |q: f64| sample.hist.value_at_quantile(q) as f64 / 1000.0;
        Self {
            rate: sample.rate(),
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: sample.hist.max() as f64 / 1000.0,
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Median, min and max of the repeats of one (scenario, system).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    pub(crate) median: Figures,
    pub(crate) rate_min: f64,
    pub(crate) rate_max: f64,
    pub(crate) p50_min: f64,
    pub(crate) p50_max: f64,
    pub(crate) repeats: usize,
}

impl Summary {
    pub(crate) fn of(runs: &[Figures]) -> Self {
        let pick = |f: fn(&Figures) -> f64| runs.iter().map(f).collect::<Vec<_>>();
        let fold = |v: &[f64], min: bool| {
            v.iter()
                .copied()
                .fold(if min { f64::INFINITY } else { 0.0 }, if min { f64::min } else { f64::max })
        };
        let rates = pick(|f| f.rate);
        let p50s = pick(|f| f.p50);
        Self {
            median: Figures {
                rate: median(&mut rates.clone()),
                p50: median(&mut p50s.clone()),
                p90: median(&mut pick(|f| f.p90)),
                p99: median(&mut pick(|f| f.p99)),
                p999: median(&mut pick(|f| f.p999)),
                max: median(&mut pick(|f| f.max)),
            },
            rate_min: fold(&rates, true),
            rate_max: fold(&rates, false),
            p50_min: fold(&p50s, true),
            p50_max: fold(&p50s, false),
            repeats: runs.len(),
        }
    }
}

/// All runs, keyed by scenario index and system.
pub(crate) type Results = BTreeMap<(usize, System), Vec<Figures>>;

pub(crate) fn rate_text(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k", rate / 1e3)
    } else {
        format!("{rate:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        "-".into()
    } else if a / b < 0.1 {
        format!("{:.3}x", a / b)
    } else {
        format!("{:.2}x", a / b)
    }
}

/// Prints the table: median rate (min-max over repeats), median percentiles, and on Volley's
/// rows its rate and p50 relative to raw and tonic.
pub(crate) fn print_table(out: &mut impl Write, scenarios: &[Scenario], results: &Results) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<7} {:>26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13} {:>13}",
        "scenario",
        "system",
        "rate/s median (min-max)",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "rate V/raw,tonic",
        "p50 V/raw,tonic"
    )?;
    for (index, scenario) in scenarios.iter().enumerate() {
        let summary = |system| results.get(&(index, system)).map(|runs| Summary::of(runs));
        for &system in scenario.systems() {
            let Some(s) = summary(system) else { continue };
            let m = s.median;
            if s.rate_max == 0.0 {
                // Open loop only: the system never caught up with the calls due since warm-up.
                writeln!(
                    out,
                    "{:<16} {:<7} {:>26}",
                    scenario.name,
                    system.name(),
                    "overloaded: no call of the measured window was sent"
                )?;
                continue;
            }
            let (rates, p50s) = if system == System::Volley {
                let vs = |other: Option<Summary>, f: fn(&Figures) -> f64| other.map_or("-".into(), |o| ratio(f(&m), f(&o.median)));
                (
                    format!(
                        "{},{}",
                        vs(summary(System::Raw), |f| f.rate),
                        vs(summary(System::Tonic), |f| f.rate)
                    ),
                    format!("{},{}", vs(summary(System::Raw), |f| f.p50), vs(summary(System::Tonic), |f| f.p50)),
                )
            } else {
                (String::new(), String::new())
            };
            writeln!(
                out,
                "{:<16} {:<7} {:>26} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>13} {:>13}",
                scenario.name,
                system.name(),
                format!("{} ({}-{})", rate_text(m.rate), rate_text(s.rate_min), rate_text(s.rate_max)),
                m.p50,
                m.p90,
                m.p99,
                m.p999,
                m.max,
                rates,
                p50s
            )?;
        }
    }
    Ok(())
}

/// One JSON line per run.
pub(crate) fn run_line(scenario: &Scenario, system: System, repeat: usize, sample: &Sample, placement: &str) -> String {
    let f = Figures::of(sample);
    json!({
        "type": "run",
        "scenario": scenario.name,
        "system": system.name(),
        "repeat": repeat,
        "calls": sample.calls,
        "seconds": sample.elapsed.as_secs_f64(),
        "rate": f.rate,
        "target_rate": sample.target_rate,
        "pacing": sample.pacing.map(|p| p.name()),
        "p50_us": f.p50, "p90_us": f.p90, "p99_us": f.p99, "p999_us": f.p999, "max_us": f.max,
        "placement": placement,
    })
    .to_string()
}

/// One JSON line per (scenario, system) with medians over repeats and Volley's ratios.
pub(crate) fn summary_lines(scenarios: &[Scenario], results: &Results, placement: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        let summary = |system| results.get(&(index, system)).map(|runs| Summary::of(runs));
        for &system in scenario.systems() {
            let Some(s) = summary(system) else { continue };
            let m = s.median;
            let rel =
                |other: System, f: fn(&Figures) -> f64| summary(other).filter(|_| system == System::Volley).map(|o| f(&m) / f(&o.median));
            lines.push(
                json!({
                    "type": "summary",
                    "scenario": scenario.name,
                    "description": scenario.description,
                    "system": system.name(),
                    "repeats": s.repeats,
                    "rate_median": m.rate, "rate_min": s.rate_min, "rate_max": s.rate_max,
                    "p50_us": m.p50, "p50_us_min": s.p50_min, "p50_us_max": s.p50_max,
                    "p90_us": m.p90, "p99_us": m.p99, "p999_us": m.p999, "max_us": m.max,
                    "rate_vs_raw": rel(System::Raw, |f| f.rate),
                    "rate_vs_tonic": rel(System::Tonic, |f| f.rate),
                    "p50_vs_raw": rel(System::Raw, |f| f.p50),
                    "p50_vs_tonic": rel(System::Tonic, |f| f.p50),
                    "placement": placement,
                })
                .to_string(),
            );
        }
    }
    lines
}
