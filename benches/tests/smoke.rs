//! Runs `volley-bench --smoke`: every scenario against raw, tonic and Volley, very briefly, with
//! plots; and `volley-bench ab --smoke`: every built-in socket-option variant. No speed claims.

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
    for scenario in [
        "unary_64B_1",
        "unary_64B_128",
        "unary_1MiB_1",
        "unary_64B_4x64",
        "stream_64B",
        "open_loop_50pct",
        "open_loop_25pct",
        "unary_64B_4",
        "unary_64B_16",
        "unary_64B_64",
        "unary_64B_256",
    ] {
        for system in ["tonic", "volley"] {
            assert!(
                stdout
                    .lines()
                    .any(|line| line.split_whitespace().next() == Some(scenario) && line.contains(system)),
                "no {system} row for {scenario} in:\n{stdout}"
            );
        }
    }
    assert!(stdout.contains("placement:"), "placement not printed");
    let lines = std::fs::read_to_string(&json).expect("json lines written");
    let _ = std::fs::remove_file(&json);
    let summaries = lines.lines().filter(|line| line.contains("\"type\":\"summary\"")).count();
    assert_eq!(summaries, 8 * 3 + 3 * 2, "one summary per scenario and system:\n{lines}");
    for line in lines.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("valid JSON line");
    }
    assert_svg_plot(&plots.join("latency_cdf_unary_64B_1.svg"), &["raw", "tonic", "volley"]);
    assert_svg_plot(&plots.join("throughput_vs_in_flight.svg"), &["raw", "tonic", "volley"]);
    let _ = std::fs::remove_dir_all(&plots);
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
