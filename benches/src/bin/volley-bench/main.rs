//! `volley-bench`: one command, one run, the raw socket floor, tonic and Volley measured side by
//! side on loopback TCP with the same echo proto and the same thread placement.
//!
//! ```sh
//! cargo run -p volley-benches --release --bin volley-bench -- --repeats 3 --json bench.jsonl
//! cargo run -p volley-benches --release --bin volley-bench -- --smoke
//! cargo run -p volley-benches --release --bin volley-bench -- --plots target/volley-bench
//! cargo run -p volley-benches --release --bin volley-bench -- ab --variants default,nodelay=off
//! ```
//!
//! Placement: each system's server runs on its own thread with a current-thread tokio runtime;
//! the client runs on the main thread with another current-thread runtime. Run under
//! `taskset -c 0` to put every thread on one CPU.

mod ab;
mod pacer;
mod plots;
mod progress;
mod report;
mod scenarios;
mod systems;

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::plots::Histograms;
use crate::progress::Progress;
use crate::report::{Figures, Results};
use crate::scenarios::{Kind, SCENARIOS, Scenario};
use crate::systems::System;

/// Load tool: raw TCP floor, tonic and Volley in one run.
#[derive(Debug, Parser)]
#[command(name = "volley-bench", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Comma-separated scenarios to run (default: all). Known: unary_64B_1, unary_64B_128,
    /// unary_1MiB_1, unary_64B_4x64, stream_64B, open_loop_50pct, open_loop_25pct, and the
    /// in-flight sweep unary_64B_4, unary_64B_16, unary_64B_64, unary_64B_256.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Measured seconds per run (after a warm-up of a quarter of that, at most 1 s).
    #[arg(long, global = true, default_value_t = 3.0)]
    duration: f64,
    /// Runs of each (scenario, system); the table shows the median with min and max.
    #[arg(long, global = true, default_value_t = 3)]
    repeats: usize,
    /// Runs every scenario very briefly, once; checks only that everything works.
    #[arg(long, global = true)]
    smoke: bool,
    /// Also writes JSON lines (one per run, one summary per scenario and system) to this file.
    #[arg(long, global = true)]
    json: Option<std::path::PathBuf>,
    /// Writes SVG plots (latency CDF of unary_64B_1, calls/s against calls in flight) into
    /// this directory.
    #[arg(long)]
    plots: Option<std::path::PathBuf>,
    /// How the open-loop generator waits for each send time: `sleep` (a helper thread sleeps
    /// through gaps over 100 µs, shorter ones yield to the kernel and the runtime) or `spin`
    /// (the earlier generator, yielding to the runtime only), for comparison.
    #[arg(long, value_enum, default_value = "sleep")]
    pacing: pacer::Pacing,
    /// No progress bar and no per-run lines on stderr.
    #[arg(long, global = true)]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A/B of socket options: one scenario, raw and Volley, under several SocketConfig
    /// variants, repeats interleaved; prints each variant's delta against the first.
    Ab(ab::AbArgs),
}

fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (duration, repeats) = match (args.smoke, &args.command) {
        // The A/B smoke run repeats twice, so interleaving and spreads are exercised.
        (true, Some(Command::Ab(_))) => (Duration::from_millis(60), 2),
        (true, None) => (Duration::from_millis(60), 1),
        (false, _) => (Duration::from_secs_f64(args.duration), args.repeats.max(1)),
    };
    let warmup = (duration / 4).min(Duration::from_secs(1));
    let placement = format!(
        "servers: own thread each, current-thread tokio runtime; client: main thread, current-thread tokio runtime; allowed CPUs: {}",
        allowed_cpus()
    );
    eprintln!("volley-bench: {placement}");
    eprintln!("volley-bench: {repeats} repeat(s), {duration:?} measured + {warmup:?} warm-up per run");
    let mut json = args.json.as_ref().map(File::create).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(Command::Ab(ab_args)) = &args.command {
        let settings = ab::Settings {
            warmup,
            duration,
            repeats,
            hide_progress: args.smoke,
            quiet: args.quiet,
            placement,
        };
        return ab::run(ab_args, &settings, &runtime, json.as_mut());
    }

    let selected: Vec<Scenario> = if args.scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        args.scenarios.iter().map(|name| scenarios::find(name)).collect::<Result<_, _>>()?
    };
    let servers = systems::start_servers();
    let mut results = Results::new();
    let mut histograms = Histograms::new();
    // Volley's peak (unary_64B_128) per repeat, for the open-loop rate.
    let mut volley_peak: Option<f64> = None;
    let total_runs: usize = selected.iter().map(|s| s.systems().len()).sum::<usize>() * repeats;
    let progress = Progress::new(total_runs, args.smoke, args.quiet);
    let mut done = 0;
    for repeat in 0..repeats {
        for (index, scenario) in selected.iter().enumerate() {
            let rate = match scenario.kind {
                Kind::OpenLoop { fraction, .. } => {
                    let peak = match volley_peak {
                        Some(peak) => peak,
                        None => {
                            progress.start(format!("repeat {} Volley's peak for the open loop", repeat + 1));
                            let peak_scenario = scenarios::find("unary_64B_128")?;
                            let sample = runtime.block_on(scenarios::run(&servers, &peak_scenario, System::Volley, warmup, duration, None));
                            sample.rate()
                        }
                    };
                    Some((peak * fraction, args.pacing))
                }
                _ => None,
            };
            for &system in scenario.systems() {
                progress.start(format!("repeat {} {} {}", repeat + 1, scenario.name, system.name()));
                let sample = runtime.block_on(scenarios::run(&servers, scenario, system, warmup, duration, rate));
                done += 1;
                let figures = Figures::of(&sample);
                progress.finish_run(format!(
                    "[{done}/{total_runs}] repeat {} {} {}: {:.0}/s p50 {:.1} us p99 {:.1} us",
                    repeat + 1,
                    scenario.name,
                    system.name(),
                    figures.rate,
                    figures.p50,
                    figures.p99
                ));
                if system == System::Volley && scenario.name == "unary_64B_128" {
                    volley_peak = Some(figures.rate);
                }
                if let Some(file) = json.as_mut() {
                    writeln!(file, "{}", report::run_line(scenario, system, repeat, &sample, &placement))?;
                }
                results.entry((index, system)).or_default().push(figures);
                if args.plots.is_some() {
                    match histograms.entry((index, system)) {
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(sample.hist);
                        }
                        std::collections::btree_map::Entry::Occupied(mut merged) => merged.get_mut().add(&sample.hist)?,
                    }
                }
            }
        }
    }
    progress.finish();

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "\nplacement: {placement}")?;
    writeln!(
        stdout,
        "{repeats} repeat(s) of {duration:?} each; rates are calls/s (stream_64B: messages/s); latencies are per call\n\
         (raw pipelined rows: the batch's round trip; stream_64B: one whole stream of {} messages;\n\
         open loop: from the intended send time, rate achieved at the target fraction of Volley's peak;\n\
         open-loop pacing: {})\n",
        scenarios::STREAM_LEN,
        args.pacing.name()
    )?;
    for scenario in &selected {
        writeln!(stdout, "  {:<16} {}", scenario.name, scenario.description)?;
    }
    writeln!(stdout)?;
    report::print_table(&mut stdout, &selected, &results)?;
    if let Some(file) = json.as_mut() {
        for line in report::summary_lines(&selected, &results, &placement) {
            writeln!(file, "{line}")?;
        }
    }
    if let Some(dir) = &args.plots {
        let note = format!(
            "volley-bench, {repeats} repeat(s) of {duration:?} per system; allowed CPUs: {}",
            allowed_cpus()
        );
        for path in plots::write(dir, &selected, &results, &histograms, &note)? {
            writeln!(stdout, "plot: {}", path.display())?;
        }
    }
    Ok(())
}
