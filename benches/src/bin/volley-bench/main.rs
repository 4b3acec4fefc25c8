//! `volley-bench`: one command, one run, the raw socket floor, a framed floor, tarpc, tonic and
//! Volley measured side by side with the same echo proto and the same thread placement.
//!
//! ```sh
//! cargo run -p volley-benches --release --bin volley-bench -- --repeats 3 --json bench.jsonl
//! cargo run -p volley-benches --release --bin volley-bench -- --smoke
//! benches/peers/setup.sh && cargo run -p volley-benches --release --bin volley-bench -- --peers go,python
//! cargo run -p volley-benches --release --bin volley-bench -- --plots target/volley-bench
//! cargo run -p volley-benches --release --bin volley-bench -- ab --variants default,nodelay=off
//! cargo run -p volley-benches --release --bin volley-bench -- busy-poll
//! cargo run -p volley-benches --release --features tls --bin volley-bench -- tls
//! cargo run -p volley-benches --release --features quic --bin volley-bench -- quic
//! ```
//!
//! Systems: `raw` (a plain tokio socket echo), `framed` (the framed floor: Volley's 16-byte
//! header, prost decode and encode, a call table, pipelined and batched; see `framed.rs`),
//! `tarpc` 0.38 (bincode over a length-delimited codec on TCP, `TCP_NODELAY`), `tonic` 0.14 and
//! `volley`; with `--peers go,python` also `grpc-go`, `grpcio` (`grpc.aio`) and `asyncio` (a plain
//! asyncio-streams floor), each a server and a client child process (`peers.rs`,
//! `benches/peers/`). Every row has CPU seconds per 1,000 calls from `/proc/<pid>/stat`.
//! Scenarios: unary latency and throughput on one connection (with an in-flight
//! sweep), bulk 1 MiB, several connections, server streaming, open loop at a fraction of
//! Volley's peak, 16 connections × 32 in flight on multi-thread runtimes, one-way 1 MiB over TCP
//! and a Unix socket (GB/s), and a connection-count sweep (1, 64, 1,024 connections) with the
//! process's resident memory. For Volley every run also reads `Client::stats()` and
//! `ServerHandle::stats()` and reports frames per write system call on each side.
//!
//! Placement: each system's server runs on its own thread with a current-thread tokio runtime;
//! the client runs on the main thread with another current-thread runtime. Run under
//! `taskset -c 0` to put every thread on one CPU. The exception is `unary_64B_16x32_mt`: the
//! client and each server run on a 2-worker multi-thread runtime whose worker threads are
//! unpinned (their affinity is widened to every online CPU). The output prints both placements.

mod ab;
mod balance;
mod busy_poll;
mod callers;
mod framed;
mod lanes;
#[cfg(feature = "quic")]
mod lossy_tcp;
mod oneway;
mod open_loop;
mod pacer;
mod peers;
mod plots;
mod progress;
#[cfg(feature = "quic")]
mod quic;
mod report;
mod scenarios;
mod systems;
mod tarpc_echo;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "quic")]
#[path = "../../../../transport/tests/support/udp_proxy.rs"]
mod udp_proxy;

use std::fs::File;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::plots::Histograms;
use crate::progress::Progress;
use crate::report::{Figures, Results};
use crate::scenarios::{Kind, SCENARIOS, Scenario};
use crate::systems::{Runtime, System};

/// Load tool: raw floor, framed floor, tarpc, tonic and Volley in one run.
#[derive(Debug, Parser)]
#[command(name = "volley-bench", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Comma-separated scenarios to run (default: all). Known: unary_64B_1, unary_64B_128,
    /// unary_1MiB_1, unary_64B_4x64, stream_64B, open_loop_50pct, open_loop_25pct; the
    /// in-flight sweep unary_64B_4, unary_64B_16, unary_64B_64, unary_64B_256;
    /// unary_64B_16x32_mt (16 connections x 32 in flight, client and servers on 2-worker
    /// multi-thread runtimes, unpinned); oneway_1MiB_tcp and oneway_1MiB_unix (1 MiB one way,
    /// 4 in flight, GB/s); the connection sweep conns_1, conns_64, conns_1024 (1 in flight
    /// each, with the process's RSS).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Comma-separated systems to run (default: all): raw, framed, tarpc, tonic, volley, and
    /// the peers grpc-go, grpcio, asyncio (those started by `--peers`). One
    /// system per process gives the connection sweep a memory reading no earlier run has
    /// touched (the open-loop scenarios still measure Volley's peak first).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<String>,
    /// Comma-separated peer groups to start as child processes and measure too: `go` (grpc-go
    /// from Debian's packages) and `python` (grpcio's grpc.aio and a plain asyncio-streams
    /// floor). A peer that is not installed is skipped with a line saying why; install them
    /// with `benches/peers/setup.sh`.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
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
    /// How the open-loop generator carries the calls in flight: `inline` (its own task polls
    /// them all) or `spawn` (a tokio task per call, the earlier generator), for comparison.
    #[arg(long, value_enum, default_value = "inline")]
    open_loop_calls: open_loop::CallTasks,
    /// Overrides the fraction of Volley's peak that every open-loop scenario asks for (0.5 is
    /// 50 %), for a load sweep: `--scenarios open_loop_50pct --open-loop-fraction 0.35`.
    #[arg(long, value_parser = parse_fraction)]
    open_loop_fraction: Option<f64>,
    /// No progress bar and no per-run lines on stderr.
    #[arg(long, global = true)]
    quiet: bool,
    /// Attaches a `Metrics` (recording every call) to Volley's servers and clients; run the same
    /// binary with and without it to measure what recording costs (feature `metrics`).
    #[cfg(feature = "metrics")]
    #[arg(long)]
    metrics: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A/B of socket options: one scenario, raw and Volley, under several SocketConfig
    /// variants, repeats interleaved; prints each variant's delta against the first.
    Ab(ab::AbArgs),
    /// A balanced channel over one endpoint against a plain Channel, runs interleaved: 64 B
    /// at 1 and 128 in flight; prints medians, ratios and the goal of issue 18 (<= 5 % cost).
    Balance(balance::BalanceArgs),
    /// Priority lanes (issue 20): 64 B calls every 100 µs alone and beside back-to-back 16 MiB
    /// answers on the same connection, at priority high and normal, with and without chunking;
    /// prints p50/p99 and the goal (high p99 with bulk <= 2x idle).
    Lanes(lanes::LanesArgs),
    /// Busy-poll mode: 64 B ping-pong with client and server pinned to different CPUs: raw
    /// blocking sockets, raw spinning sockets (the floor), Volley default and busy-poll; prints
    /// medians, ratios and the goals of issue 20.
    BusyPoll(busy_poll::BusyPollArgs),
    /// TLS (feature `tls`): Volley with TLS against Volley in plaintext and tonic with TLS,
    /// runs interleaved; prints medians, ratios and the goals of issue 17.
    #[cfg(feature = "tls")]
    Tls(tls::TlsArgs),
    /// QUIC (feature `quic`): Volley over QUIC against Volley over TCP (plaintext and TLS)
    /// and tonic, runs interleaved; p99 under packet loss; fresh vs resumed connections.
    #[cfg(feature = "quic")]
    Quic(quic::QuicArgs),
}

pub(crate) fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Connections the tool may hold open at once: the 1,024-connection sweep needs a descriptor
/// for each client and each server socket, plus those of the previous run still closing.
const WANTED_FDS: u64 = 8192;

/// Raises the soft limit on open files towards [`WANTED_FDS`] (up to the hard limit); returns a
/// line for the output when the limit stays below it.
/// A fraction of the peak: a number above 0 and at most 2.
fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(fraction) if fraction > 0.0 && fraction <= 2.0 => Ok(fraction),
        _ => Err(format!("{text:?} is not a fraction of the peak in (0, 2]")),
    }
}

fn raise_fd_limit() -> Option<String> {
    let now = volley_benches::raise_fd_limit(WANTED_FDS);
    (now < WANTED_FDS).then(|| {
        format!(
            "open-file limit {now} (hard limit {:?}): conns_1024 holds about 2,050 descriptors at once, more while the previous run closes; raise it with `ulimit -n`",
            rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum
        )
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    #[cfg(feature = "metrics")]
    systems::record_metrics(args.metrics);
    let (duration, repeats) = match (args.smoke, &args.command) {
        // The A/B smoke run repeats twice, so interleaving and spreads are exercised.
        (true, Some(Command::Ab(_))) => (Duration::from_millis(60), 2),
        (true, _) => (Duration::from_millis(60), 1),
        (false, _) => (Duration::from_secs_f64(args.duration), args.repeats.max(1)),
    };
    let warmup = (duration / 4).min(Duration::from_secs(1));
    let placement = Runtime::CurrentThread.placement();
    eprintln!("volley-bench: {placement}");
    eprintln!("volley-bench: {repeats} repeat(s), {duration:?} measured + {warmup:?} warm-up per run");
    if let Some(warning) = raise_fd_limit() {
        eprintln!("volley-bench: {warning}");
    }
    let mut json = args.json.as_ref().map(File::create).transpose()?;
    let runtime = Runtime::CurrentThread.build();
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
    if let Some(Command::Balance(balance_args)) = &args.command {
        return balance::run(balance_args, warmup, duration, repeats, &runtime, json.as_mut());
    }
    if let Some(Command::Lanes(lanes_args)) = &args.command {
        return lanes::run(lanes_args, warmup, duration, repeats, &runtime, json.as_mut());
    }
    if let Some(Command::BusyPoll(busy_poll_args)) = &args.command {
        return busy_poll::run(busy_poll_args, warmup, duration, repeats, json.as_mut());
    }
    #[cfg(feature = "tls")]
    if let Some(Command::Tls(tls_args)) = &args.command {
        return tls::run(tls_args, warmup, duration, repeats, &runtime, json.as_mut());
    }
    #[cfg(feature = "quic")]
    if let Some(Command::Quic(quic_args)) = &args.command {
        return quic::run(quic_args, warmup, duration, repeats, &runtime, json.as_mut());
    }

    let selected: Vec<Scenario> = if args.scenarios.is_empty() {
        SCENARIOS.to_vec()
    } else {
        args.scenarios.iter().map(|name| scenarios::find(name)).collect::<Result<_, _>>()?
    };
    let mut systems: Vec<System> = if args.systems.is_empty() {
        System::ALL.to_vec()
    } else {
        args.systems
            .iter()
            .map(|name| {
                System::ALL
                    .into_iter()
                    .chain(System::PEERS)
                    .find(|system| system.name() == name)
                    .ok_or_else(|| format!("unknown system {name:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    // The peers' servers: child processes, killed when `peers` drops.
    let cpus = rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as usize);
    let mut peers = peers::Peers::start(&args.peers, cpus)?;
    for note in &peers.notes {
        eprintln!("volley-bench: peer {note}");
    }
    // Every started peer runs unless `--systems` names some of them; a peer named there but not
    // started does not run.
    let started = peers.systems();
    if !systems.iter().any(|system| system.is_peer()) {
        systems.extend(&started);
    }
    systems.retain(|system| !system.is_peer() || started.contains(system));
    let runs_of = |scenario: &Scenario| -> Vec<System> { scenario.systems().iter().copied().filter(|s| systems.contains(s)).collect() };
    let with_oneway = selected.iter().any(|s| matches!(s.kind, Kind::OneWay { .. }));
    let servers = systems::start_servers(Runtime::CurrentThread, with_oneway);
    // The multi-thread scenario's servers and client runtime, only when it is selected.
    let multi_thread = selected
        .iter()
        .any(|s| s.runtime == Runtime::MultiThread)
        .then(|| (systems::start_servers(Runtime::MultiThread, false), Runtime::MultiThread.build()));
    let placement_of = |scenario: &Scenario| match scenario.runtime {
        Runtime::CurrentThread => placement.clone(),
        Runtime::MultiThread => Runtime::MultiThread.placement(),
    };
    let mut results = Results::new();
    let mut histograms = Histograms::new();
    // Volley's peak (unary_64B_128) per repeat, for the open-loop rate.
    let mut volley_peak: Option<f64> = None;
    let total_runs: usize = selected.iter().map(|s| runs_of(s).len()).sum::<usize>() * repeats;
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
                    Some(open_loop::OpenLoop {
                        rate: peak * args.open_loop_fraction.unwrap_or(fraction),
                        pacing: args.pacing,
                        calls: args.open_loop_calls,
                    })
                }
                _ => None,
            };
            let (runtime, servers) = match (scenario.runtime, &multi_thread) {
                (Runtime::MultiThread, Some((servers, runtime))) => (runtime, servers),
                _ => (&runtime, &servers),
            };
            for system in runs_of(scenario) {
                progress.start(format!("repeat {} {} {}", repeat + 1, scenario.name, system.name()));
                let sample = if system.is_peer() {
                    match peers.run(scenario, system, warmup, duration, rate) {
                        Ok(sample) => sample,
                        Err(why) => {
                            done += 1;
                            progress.finish_run(format!(
                                "[{done}/{total_runs}] repeat {} {} {}: FAILED, {why}",
                                repeat + 1,
                                scenario.name,
                                system.name()
                            ));
                            continue;
                        }
                    }
                } else {
                    runtime.block_on(scenarios::run(servers, scenario, system, warmup, duration, rate))
                };
                done += 1;
                let figures = Figures::of(&sample, scenario);
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
                    writeln!(
                        file,
                        "{}",
                        report::run_line(scenario, system, repeat, &sample, &placement_of(scenario))
                    )?;
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
    if multi_thread.is_some() {
        writeln!(stdout, "placement of unary_64B_16x32_mt: {}", Runtime::MultiThread.placement())?;
    }
    if !args.peers.is_empty() {
        writeln!(
            stdout,
            "placement of the peers: a server and a client child process each, with this process's CPU affinity\n\
             (allowed CPUs: {}); CPU s/1k: user + system time per 1,000 calls in the measured window from\n\
             /proc/<pid>/stat, of this whole process for the Rust systems and of both children for the peers",
            allowed_cpus()
        )?;
        for note in &peers.notes {
            writeln!(stdout, "peer {note}")?;
        }
    }
    writeln!(
        stdout,
        "{repeats} repeat(s) of {duration:?} each; rates are calls/s (stream_64B: messages/s; oneway_*: GB/s of payload,\n\
         1 GB = 10^9 bytes); latencies are per call\n\
         (raw pipelined rows: the batch's round trip; raw one-way rows: from the start of a message's write to its\n\
         acknowledgement; stream_64B: one whole stream of {} messages;\n\
         open loop: from the intended send time, rate achieved at the target fraction of Volley's peak;\n\
         open-loop pacing: {}, calls in flight: {}{})\n",
        scenarios::STREAM_LEN,
        args.pacing.name(),
        args.open_loop_calls.name(),
        args.open_loop_fraction
            .map(|fraction| format!(", every open loop at {:.0} % of the peak", fraction * 100.0))
            .unwrap_or_default()
    )?;
    for scenario in &selected {
        writeln!(stdout, "  {:<18} {}", scenario.name, scenario.description)?;
    }
    writeln!(stdout)?;
    report::print_table(&mut stdout, &selected, &results)?;
    if let Some(file) = json.as_mut() {
        for line in report::summary_lines(&selected, &results, placement_of) {
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
