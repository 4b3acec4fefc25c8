//! Runs `volley-bench --smoke`: every scenario against raw, tonic and Volley, very briefly.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn volley_bench_smoke_mode_runs_every_scenario() {
    let json = std::env::temp_dir().join(format!("volley-bench-smoke-{}.jsonl", std::process::id()));
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_volley-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run volley-bench");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "volley-bench --smoke failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Generous: smoke mode takes about 2 s in release and a little more in debug builds.
    assert!(elapsed < Duration::from_secs(60), "smoke mode took {elapsed:?}");
    for scenario in [
        "unary_64B_1",
        "unary_64B_128",
        "unary_1MiB_1",
        "unary_64B_4x64",
        "stream_64B",
        "open_loop_50pct",
        "open_loop_25pct",
    ] {
        for system in ["tonic", "volley"] {
            assert!(
                stdout.lines().any(|line| line.starts_with(scenario) && line.contains(system)),
                "no {system} row for {scenario} in:\n{stdout}"
            );
        }
    }
    assert!(stdout.contains("placement:"), "placement not printed");
    let lines = std::fs::read_to_string(&json).expect("json lines written");
    let _ = std::fs::remove_file(&json);
    let summaries = lines.lines().filter(|line| line.contains("\"type\":\"summary\"")).count();
    assert_eq!(summaries, 4 * 3 + 3 * 2, "one summary per scenario and system:\n{lines}");
    for line in lines.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("valid JSON line");
    }
}
