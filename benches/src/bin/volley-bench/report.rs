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
    /// One-way scenarios: payload bytes per second.
    pub(crate) bytes_per_sec: Option<f64>,
    /// Volley only: frames per write system call on the client and on the server, and write
    /// system calls of both together per call.
    pub(crate) client_frames_per_write: Option<f64>,
    pub(crate) server_frames_per_write: Option<f64>,
    pub(crate) writes_per_call: Option<f64>,
    /// Memory scenarios only: process RSS before connecting, and its growth by the end of the
    /// measured window, in KiB.
    pub(crate) rss_before_kib: Option<f64>,
    pub(crate) rss_delta_kib: Option<f64>,
    /// CPU seconds (user + system, every process involved) per 1,000 calls (stream_64B: per
    /// 1,000 messages) in the measured window.
    pub(crate) cpu_per_1k: Option<f64>,
    /// Heap allocations per call, client and server together (peers that count them).
    pub(crate) allocs_per_call: Option<f64>,
}

impl Figures {
    pub(crate) fn of(sample: &Sample, scenario: &Scenario) -> Self {
        let us = |q: f64| sample.hist.value_at_quantile(q) as f64 / 1000.0;
        let rate = sample.rate();
        Self {
            rate,
            p50: us(0.5),
            p90: us(0.9),
            p99: us(0.99),
            p999: us(0.999),
            max: sample.hist.max() as f64 / 1000.0,
            bytes_per_sec: scenario.bytes_per_call().map(|bytes| rate * bytes as f64),
            client_frames_per_write: sample.writes.map(|w| w.client_frames_per_write()),
            server_frames_per_write: sample.writes.map(|w| w.server_frames_per_write()),
            writes_per_call: sample.writes.map(|w| w.writes_per_call()),
            rss_before_kib: sample.rss_kib.map(|(before, _)| before as f64),
            rss_delta_kib: sample.rss_kib.map(|(before, after)| after as f64 - before as f64),
            cpu_per_1k: sample
                .cpu_seconds
                .filter(|_| sample.calls > 0)
                .map(|cpu| cpu / sample.calls as f64 * 1000.0),
            allocs_per_call: sample
                .allocs
                .filter(|_| sample.calls > 0)
                .map(|allocs| allocs as f64 / sample.calls as f64),
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

/// The median of an optional figure over the runs that have it.
fn median_of(runs: &[Figures], f: fn(&Figures) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = runs.iter().filter_map(f).collect();
    (!values.is_empty()).then(|| median(&mut values))
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
                bytes_per_sec: median_of(runs, |f| f.bytes_per_sec),
                client_frames_per_write: median_of(runs, |f| f.client_frames_per_write),
                server_frames_per_write: median_of(runs, |f| f.server_frames_per_write),
                writes_per_call: median_of(runs, |f| f.writes_per_call),
                rss_before_kib: median_of(runs, |f| f.rss_before_kib),
                rss_delta_kib: median_of(runs, |f| f.rss_delta_kib),
                cpu_per_1k: median_of(runs, |f| f.cpu_per_1k),
                allocs_per_call: median_of(runs, |f| f.allocs_per_call),
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

/// The systems Volley's rows are compared with, in the order of the ratio columns.
const PEERS: [System; 4] = [System::Raw, System::Framed, System::Tarpc, System::Tonic];

/// `a/b` of each peer that ran the scenario, comma-separated, `-` for those that did not.
fn ratios(m: &Figures, peers: &[Option<Summary>], f: fn(&Figures) -> f64) -> String {
    peers
        .iter()
        .map(|peer| peer.map_or_else(|| "-".into(), |p| ratio(f(m), f(&p.median))))
        .collect::<Vec<_>>()
        .join(",")
}

fn gbytes_text(bytes_per_sec: f64) -> String {
    format!("{:.2} GB/s", bytes_per_sec / 1e9)
}

/// Prints the tables: per (scenario, system) the median rate (min-max over repeats), median
/// percentiles, and on Volley's rows its rate and p50 relative to raw, the framed floor, tarpc
/// and tonic; then Volley's write batching per scenario, and the connection sweep's memory.
pub(crate) fn print_table(out: &mut impl Write, scenarios: &[Scenario], results: &Results) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<18} {:<7} {:>30} {:>9} {:>9} {:>9} {:>9} {:>9} {:>24} {:>24} {:>9} {:>7}",
        "scenario",
        "system",
        "rate/s median (min-max)",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "rate V/raw,framed,tarpc,tonic",
        "p50 V/raw,framed,tarpc,tonic",
        "CPU s/1k",
        "alloc/c"
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
                    "{:<18} {:<7} {:>30}",
                    scenario.name,
                    system.name(),
                    "overloaded: no call of the measured window was sent"
                )?;
                continue;
            }
            let (rates, p50s) = if system == System::Volley {
                let peers: Vec<Option<Summary>> = PEERS.iter().map(|&peer| summary(peer)).collect();
                (ratios(&m, &peers, |f| f.rate), ratios(&m, &peers, |f| f.p50))
            } else {
                (String::new(), String::new())
            };
            let rate = match (m.bytes_per_sec, scenario.bytes_per_call()) {
                (Some(bytes), Some(per_call)) => format!(
                    "{} ({:.2}-{:.2})",
                    gbytes_text(bytes),
                    s.rate_min * per_call as f64 / 1e9,
                    s.rate_max * per_call as f64 / 1e9
                ),
                _ => format!("{} ({}-{})", rate_text(m.rate), rate_text(s.rate_min), rate_text(s.rate_max)),
            };
            writeln!(
                out,
                "{:<18} {:<7} {:>30} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>24} {:>24} {:>9} {:>7}",
                scenario.name,
                system.name(),
                rate,
                m.p50,
                m.p90,
                m.p99,
                m.p999,
                m.max,
                rates,
                p50s,
                m.cpu_per_1k.map_or_else(|| "-".into(), |cpu| format!("{cpu:.4}")),
                m.allocs_per_call.map_or_else(|| "-".into(), |allocs| format!("{allocs:.1}")),
            )?;
        }
    }
    print_peers(out, scenarios, results)?;
    print_writes(out, scenarios, results)?;
    print_memory(out, scenarios, results)
}

/// Volley against each peer that ran (medians over repeats): rate, p50 and CPU per call.
fn print_peers(out: &mut impl Write, scenarios: &[Scenario], results: &Results) -> std::io::Result<()> {
    let ran: Vec<System> = System::PEERS
        .into_iter()
        .filter(|&peer| results.keys().any(|&(_, system)| system == peer))
        .collect();
    if ran.is_empty() {
        return Ok(());
    }
    let names = ran.iter().map(|peer| peer.name()).collect::<Vec<_>>().join(",");
    writeln!(
        out,
        "\nVolley against the peers (Volley's median over the peer's): rate (higher is better for Volley\n\
         above 1), p50 and CPU seconds per 1,000 calls (lower is better for Volley below 1)"
    )?;
    let heads = [format!("rate V/{names}"), format!("p50 V/{names}"), format!("CPU V/{names}")];
    writeln!(out, "{:<18} {:>32} {:>32} {:>32}", "scenario", heads[0], heads[1], heads[2])?;
    for (index, scenario) in scenarios.iter().enumerate() {
        let summary = |system| results.get(&(index, system)).map(|runs| Summary::of(runs));
        let Some(volley) = summary(System::Volley) else { continue };
        let peers: Vec<Option<Summary>> = ran.iter().map(|&peer| summary(peer)).collect();
        if peers.iter().all(Option::is_none) {
            continue;
        }
        let m = &volley.median;
        let cpu = peers
            .iter()
            .map(|peer| match (m.cpu_per_1k, peer.and_then(|p| p.median.cpu_per_1k)) {
                (Some(v), Some(p)) => ratio(v, p),
                _ => "-".into(),
            })
            .collect::<Vec<_>>()
            .join(",");
        writeln!(
            out,
            "{:<18} {:>32} {:>32} {:>32}",
            scenario.name,
            ratios(m, &peers, |f| f.rate),
            ratios(m, &peers, |f| f.p50),
            cpu
        )?;
    }
    Ok(())
}

/// Volley's write batching per scenario (medians over repeats).
fn print_writes(out: &mut impl Write, scenarios: &[Scenario], results: &Results) -> std::io::Result<()> {
    let rows: Vec<_> = scenarios
        .iter()
        .enumerate()
        .filter_map(|(index, scenario)| {
            let runs = results.get(&(index, System::Volley))?;
            let m = Summary::of(runs).median;
            Some((scenario, m.client_frames_per_write?, m.server_frames_per_write?, m.writes_per_call?))
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nVolley's write batching: frames per write/writev system call, from Client::stats() summed over\n\
         the run's connections and ServerHandle::stats(), read after connecting and after the last call\n\
         (warm-up included); stream_64B counts per stream, not per message"
    )?;
    writeln!(
        out,
        "{:<18} {:>22} {:>22} {:>26}",
        "scenario", "client frames/write", "server frames/write", "writes per call (both)"
    )?;
    for (scenario, client, server, per_call) in rows {
        writeln!(out, "{:<18} {client:>22.2} {server:>22.2} {per_call:>26.3}", scenario.name)?;
    }
    Ok(())
}

/// The connection sweep's memory (medians over repeats).
fn print_memory(out: &mut impl Write, scenarios: &[Scenario], results: &Results) -> std::io::Result<()> {
    let memory: Vec<_> = scenarios.iter().enumerate().filter(|(_, s)| s.memory).collect();
    if memory.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nConnection sweep memory: VmRSS of this whole process (clients and servers both run in it),\n\
         read before connecting and at the end of the measured window; glibc malloc keeps memory an\n\
         earlier run freed, so a delta can be smaller than what the connections use"
    )?;
    writeln!(
        out,
        "{:<18} {:<7} {:>6} {:>16} {:>16} {:>18}",
        "scenario", "system", "conns", "RSS before MiB", "RSS delta MiB", "delta per conn KiB"
    )?;
    for (index, scenario) in memory {
        for &system in scenario.systems() {
            let Some(runs) = results.get(&(index, system)) else { continue };
            let m = Summary::of(runs).median;
            let (Some(before), Some(delta)) = (m.rss_before_kib, m.rss_delta_kib) else {
                continue;
            };
            let conns = scenario.conns();
            writeln!(
                out,
                "{:<18} {:<7} {conns:>6} {:>16.1} {:>16.1} {:>18.1}",
                scenario.name,
                system.name(),
                before / 1024.0,
                delta / 1024.0,
                delta / conns as f64
            )?;
        }
    }
    Ok(())
}

/// One JSON line per run.
pub(crate) fn run_line(scenario: &Scenario, system: System, repeat: usize, sample: &Sample, placement: &str) -> String {
    let f = Figures::of(sample, scenario);
    json!({
        "type": "run",
        "scenario": scenario.name,
        "system": system.name(),
        "repeat": repeat,
        "calls": sample.calls,
        "seconds": sample.elapsed.as_secs_f64(),
        "rate": f.rate,
        "bytes_per_sec": f.bytes_per_sec,
        "target_rate": sample.target_rate,
        "pacing": sample.pacing.map(|p| p.name()),
        "open_loop_calls": sample.calls_carried.map(|c| c.name()),
        "p50_us": f.p50, "p90_us": f.p90, "p99_us": f.p99, "p999_us": f.p999, "max_us": f.max,
        "volley_writes": sample.writes.map(|w| json!({
            "calls": w.calls,
            "client_frames": w.client_frames, "client_writes": w.client_writes,
            "server_frames": w.server_frames, "server_writes": w.server_writes,
        })),
        "client_frames_per_write": f.client_frames_per_write,
        "server_frames_per_write": f.server_frames_per_write,
        "writes_per_call": f.writes_per_call,
        "rss_before_kib": sample.rss_kib.map(|(before, _)| before),
        "rss_after_kib": sample.rss_kib.map(|(_, after)| after),
        "cpu_seconds": sample.cpu_seconds,
        "cpu_s_per_1k_calls": f.cpu_per_1k,
        "allocs_per_call": f.allocs_per_call,
        "placement": placement,
    })
    .to_string()
}

/// One JSON line per (scenario, system) with medians over repeats and Volley's ratios.
pub(crate) fn summary_lines(scenarios: &[Scenario], results: &Results, placement: impl Fn(&Scenario) -> String) -> Vec<String> {
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
                    "bytes_per_sec_median": m.bytes_per_sec,
                    "p50_us": m.p50, "p50_us_min": s.p50_min, "p50_us_max": s.p50_max,
                    "p90_us": m.p90, "p99_us": m.p99, "p999_us": m.p999, "max_us": m.max,
                    "rate_vs_raw": rel(System::Raw, |f| f.rate),
                    "rate_vs_framed": rel(System::Framed, |f| f.rate),
                    "rate_vs_tarpc": rel(System::Tarpc, |f| f.rate),
                    "rate_vs_tonic": rel(System::Tonic, |f| f.rate),
                    "p50_vs_raw": rel(System::Raw, |f| f.p50),
                    "p50_vs_framed": rel(System::Framed, |f| f.p50),
                    "p50_vs_tarpc": rel(System::Tarpc, |f| f.p50),
                    "p50_vs_tonic": rel(System::Tonic, |f| f.p50),
                    "rate_vs_grpc_go": rel(System::GrpcGo, |f| f.rate),
                    "rate_vs_grpcio": rel(System::Grpcio, |f| f.rate),
                    "rate_vs_asyncio": rel(System::Asyncio, |f| f.rate),
                    "p50_vs_grpc_go": rel(System::GrpcGo, |f| f.p50),
                    "p50_vs_grpcio": rel(System::Grpcio, |f| f.p50),
                    "p50_vs_asyncio": rel(System::Asyncio, |f| f.p50),
                    "cpu_s_per_1k_calls": m.cpu_per_1k,
                    "allocs_per_call": m.allocs_per_call,
                    "client_frames_per_write": m.client_frames_per_write,
                    "server_frames_per_write": m.server_frames_per_write,
                    "writes_per_call": m.writes_per_call,
                    "connections": scenario.conns(),
                    "rss_before_kib": m.rss_before_kib,
                    "rss_delta_kib": m.rss_delta_kib,
                    "placement": placement(scenario),
                })
                .to_string(),
            );
        }
    }
    lines
}
