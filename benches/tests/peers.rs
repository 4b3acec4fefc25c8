//! Runs `volley-bench --smoke --peers go,python` on the scenarios the peers run: every peer that
//! is installed (`benches/peers/setup.sh`) must give a row per scenario, CPU per call, and lines
//! in both plots; a peer that is not installed is skipped with a message. No speed claims.

use std::process::Command;
use std::time::{Duration, Instant};

/// The scenarios the peers run in this test (the list and one point of the sweep).
const SCENARIOS: &[&str] = &[
    "unary_64B_1",
    "unary_64B_128",
    "unary_1MiB_1",
    "unary_64B_4x64",
    "stream_64B",
    "open_loop_50pct",
    "unary_64B_16",
];

const PEERS: &[&str] = &["grpc-go", "grpcio", "asyncio"];

#[test]
fn volley_bench_smoke_mode_runs_the_installed_peers_and_skips_the_others() {
    let dir = std::env::temp_dir().join(format!("volley-bench-peers-{}", std::process::id()));
    let json = dir.join("bench.jsonl");
    let plots = dir.join("plots");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_volley-bench"))
        .args([
            "--smoke",
            "--peers",
            "go,python",
            "--systems",
            "volley,grpc-go,grpcio,asyncio",
            "--scenarios",
        ])
        .arg(SCENARIOS.join(","))
        .arg("--json")
        .arg(&json)
        .arg("--plots")
        .arg(&plots)
        .output()
        .expect("run volley-bench");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "volley-bench failed:\n{stdout}\n{stderr}");
    assert!(elapsed < Duration::from_secs(180), "took {elapsed:?}");
    assert!(!stderr.contains("FAILED"), "a peer run failed:\n{stderr}");

    let skipped: Vec<&str> = PEERS
        .iter()
        .copied()
        .filter(|peer| stderr.contains(&format!("peer {peer}: SKIPPED")))
        .collect();
    for peer in &skipped {
        let line = stderr
            .lines()
            .find(|line| line.contains(&format!("peer {peer}: SKIPPED")))
            .unwrap_or_default();
        eprintln!("peer smoke test: {peer} not installed, skipped ({line})");
    }
    let ran: Vec<&str> = PEERS.iter().copied().filter(|peer| !skipped.contains(peer)).collect();
    if ran.is_empty() {
        eprintln!("peer smoke test: no peer installed; only checked that volley-bench skips them cleanly");
    }
    for peer in &ran {
        assert!(
            stdout.contains(&format!("peer {peer}: ")),
            "no version line for {peer} in:\n{stdout}"
        );
        for scenario in SCENARIOS {
            let rows = stdout
                .lines()
                .filter(|line| {
                    let mut words = line.split_whitespace();
                    words.next() == Some(scenario) && words.next() == Some(peer)
                })
                .count();
            assert_eq!(rows, 1, "{peer} rows for {scenario} in:\n{stdout}");
        }
    }
    if !ran.is_empty() {
        assert!(stdout.contains("Volley against the peers"), "no peer ratios in:\n{stdout}");
    }

    let lines = std::fs::read_to_string(&json).expect("json lines written");
    for line in lines.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON line");
        if value["type"] != "summary" || value["rate_median"].as_f64().unwrap_or(0.0) == 0.0 {
            continue;
        }
        assert!(value["cpu_s_per_1k_calls"].is_number(), "no CPU per call: {value}");
        let system = value["system"].as_str().unwrap_or_default();
        assert_eq!(
            value["allocs_per_call"].is_number(),
            system == "grpc-go",
            "allocations per call from grpc-go only: {value}"
        );
    }
    for plot in ["latency_cdf_unary_64B_1.svg", "throughput_vs_in_flight.svg"] {
        let svg = std::fs::read_to_string(plots.join(plot)).expect("plot written");
        for system in ran.iter().chain(&["volley"]) {
            assert!(
                svg.contains(&format!("\n{system}\n</text>")),
                "{plot}: no legend entry for {system}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
