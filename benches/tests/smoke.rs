//! Runs `volley-bench --smoke`: every scenario against every system that runs it (raw, the framed
//! floor, tarpc, tonic and Volley), very briefly, with plots; `--systems`; and
//! `volley-bench ab --smoke`: every built-in socket-option variant. No speed claims.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A fresh path in the temp directory for this test process.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("volley-bench-smoke-{}-{name}", std::process::id()))
}

/// Runs volley-bench with `args`; checks that it succeeded and stopped in reasonable time.
fn run(args: &[&str]) -> Output {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_volley-bench"))
        .args(args)
        .output()
        .expect("run volley-bench");
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "volley-bench {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Generous: smoke mode takes about 3 s in release and a little more in debug builds.
    assert!(elapsed < Duration::from_secs(60), "volley-bench {args:?} took {elapsed:?}");
    output
}

/// Checks that `path` is an SVG document with a data line (a polyline of more than two points)
/// and a legend entry for each of `systems`.
fn assert_svg_plot(path: &Path, systems: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{} not written: {err}", path.display()));
    assert!(svg.starts_with("<svg"), "{} is not an SVG document", path.display());
    assert!(svg.trim_end().ends_with("</svg>"), "{} is truncated", path.display());
    let data_lines = svg
        .lines()
        .filter(|line| line.starts_with("<polyline"))
        .filter(|line| {
            line.split("points=\"")
                .nth(1)
                .is_some_and(|points| points.split_whitespace().count() > 2)
        })
        .count();
    assert!(
        data_lines >= systems.len(),
        "{}: {data_lines} data lines for {systems:?}",
        path.display()
    );
    for system in systems {
        assert!(
            svg.contains(&format!("\n{system}\n</text>")),
            "{}: no legend entry for {system}",
            path.display()
        );
    }
}

/// Every system.
const ALL: &[&str] = &["raw", "framed", "tarpc", "tonic", "volley"];

/// Every scenario of `volley-bench` and the systems that run it.
const SCENARIOS: &[(&str, &[&str])] = &[
    ("unary_64B_1", ALL),
    ("unary_64B_128", ALL),
    ("unary_1MiB_1", ALL),
    ("unary_64B_4x64", ALL),
    ("stream_64B", &["tonic", "volley"]),
    ("open_loop_50pct", &["framed", "tarpc", "tonic", "volley"]),
    ("open_loop_25pct", &["framed", "tarpc", "tonic", "volley"]),
    ("unary_64B_4", ALL),
    ("unary_64B_16", ALL),
    ("unary_64B_64", ALL),
    ("unary_64B_256", ALL),
    ("unary_64B_16x32_mt", ALL),
    ("oneway_1MiB_tcp", &["raw", "tarpc", "tonic", "volley"]),
    ("oneway_1MiB_unix", &["raw", "volley"]),
    ("conns_1", ALL),
    ("conns_64", ALL),
    ("conns_1024", ALL),
];

#[test]
fn volley_bench_smoke_mode_runs_every_scenario_and_writes_plots() {
    let json = temp_path("bench.jsonl");
    let plots = temp_path("plots");
    let output = run(&[
        "--smoke",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--plots",
        plots.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = |scenario: &str, system: &str| {
        stdout
            .lines()
            .filter(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some(scenario) && words.next() == Some(system)
            })
            .count()
    };
    for (scenario, systems) in SCENARIOS {
        for system in *systems {
            // The main table, and the connection sweep's memory table.
            let expected = if scenario.starts_with("conns_") { 2 } else { 1 };
            assert_eq!(rows(scenario, system), expected, "{system} rows for {scenario} in:\n{stdout}");
        }
        // Volley's write batching: one row per scenario, with three figures.
        let batching = stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(scenario))
            .filter(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() == 4 && words[1..].iter().all(|word| word.parse::<f64>().is_ok())
            })
            .count();
        assert_eq!(batching, 1, "write batching row for {scenario} in:\n{stdout}");
    }
    assert!(stdout.contains("placement:"), "placement not printed");
    assert!(
        stdout.contains("placement of unary_64B_16x32_mt: client and each server: a 2-worker multi-thread tokio runtime"),
        "multi-thread placement not printed in:\n{stdout}"
    );
    assert!(stdout.contains(" GB/s "), "one-way rows not in GB/s in:\n{stdout}");
    let lines = std::fs::read_to_string(&json).expect("json lines written");
    let _ = std::fs::remove_file(&json);
    let summaries: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("valid JSON line"))
        .filter(|value| value["type"] == "summary")
        .collect();
    let expected: usize = SCENARIOS.iter().map(|(_, systems)| systems.len()).sum();
    assert_eq!(summaries.len(), expected, "one summary per scenario and system:\n{lines}");
    for summary in &summaries {
        let volley = summary["system"] == "volley";
        assert_eq!(
            summary["writes_per_call"].is_number(),
            volley,
            "write counters on Volley's summaries only: {summary}"
        );
        let memory = summary["scenario"].as_str().is_some_and(|name| name.starts_with("conns_"));
        assert_eq!(
            summary["rss_delta_kib"].is_number(),
            memory,
            "RSS on the connection sweep only: {summary}"
        );
        let oneway = summary["scenario"].as_str().is_some_and(|name| name.starts_with("oneway_"));
        assert_eq!(
            summary["bytes_per_sec_median"].is_number(),
            oneway,
            "GB/s on one-way rows only: {summary}"
        );
    }
    assert_svg_plot(&plots.join("latency_cdf_unary_64B_1.svg"), ALL);
    assert_svg_plot(&plots.join("throughput_vs_in_flight.svg"), ALL);
    let _ = std::fs::remove_dir_all(&plots);
}

#[test]
fn volley_bench_runs_only_the_systems_asked_for() {
    let output = run(&["--smoke", "--scenarios", "conns_64,oneway_1MiB_unix", "--systems", "volley"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for system in ["raw", "framed", "tarpc", "tonic"] {
        assert!(
            !stdout.lines().any(|line| line.split_whitespace().nth(1) == Some(system)),
            "{system} ran in:\n{stdout}"
        );
    }
    assert!(
        stdout.lines().any(|line| line.starts_with("conns_64") && line.contains("volley")),
        "no Volley row in:\n{stdout}"
    );
}

#[test]
fn volley_bench_ab_smoke_mode_prints_a_row_per_variant() {
    let json = temp_path("ab.jsonl");
    let output = run(&["ab", "--smoke", "--json", json.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    for variant in ["default", "nodelay=off", "buffers=64k", "buffers=4m", "quickack=on", "busy_poll=50"] {
        // A measured variant has a row per system; one the kernel refused says so on one row.
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|line| line.split_whitespace().next() == Some(variant))
            .collect();
        assert!(
            rows.len() == 2 || (rows.len() == 1 && rows[0].contains("not applied")),
            "rows for {variant}: {rows:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("baseline"), "no baseline in:\n{stdout}");
    let lines = std::fs::read_to_string(&json).expect("json lines written");
    let _ = std::fs::remove_file(&json);
    for line in lines.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("valid JSON line");
    }
    assert!(lines.contains("\"type\":\"ab_summary\""), "no A/B summary in:\n{lines}");
}
