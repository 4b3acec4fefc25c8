//! `volley-bench lanes`: 64-byte calls every 100 µs on one connection, alone (idle) and beside a
//! steady stream of 16 MiB answers on the same connection (bulk: one 16 MiB call after another),
//! at priority high (255) and normal (0); the same with chunking off (the client does not
//! announce `RECEIVE_CHUNKS`, so the server sends each 16 MiB answer whole, as before chunking).
//! Runs interleaved, bounded by `--duration`; prints p50/p99 of the 64-byte calls, the bulk
//! rate, and the goal of issue 20 (high p99 with bulk <= 2x idle p99).
//!
//! ```sh
//! cargo build -p volley-benches --release --bin volley-bench
//! taskset -c 0 target/release/volley-bench lanes --repeats 5
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use volley::net::{Address, SocketConfig};
use volley::protocol::ConnectionConfig;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};
use volley_benches::{ECHO, ECHO_ID, Payload, ServerThread, payload};

use crate::pacer::{Pacer, Pacing};
use crate::systems::Runtime;

/// The bulk method: answers any request with [`BULK_LEN`] bytes.
const BULK: &str = "/bench.Echo/Bulk";
const BULK_ID: MethodId = MethodId::from_name(BULK);
const BULK_LEN: usize = 16 * 1024 * 1024;
/// Time between two 64-byte calls.
const GAP: Duration = Duration::from_micros(100);

/// Options of the priority-lane scenario.
#[derive(Debug, clap::Args)]
pub(crate) struct LanesArgs {
    /// Milliseconds between the starts of two bulk calls (0: back to back, which keeps a CPU
    /// busy with 16 MiB copies; a gap measures head-of-line blocking without saturating it).
    #[arg(long, default_value_t = 0)]
    bulk_gap_ms: u64,
    /// Socket send and receive buffer size in KiB on both sides (0: the kernel's, autotuned to
    /// several MiB on loopback). Bytes already in the socket buffers are ahead of any lane.
    #[arg(long, default_value_t = 0)]
    socket_buffer_kib: usize,
    /// The server's chunk window in KiB (`ConnectionConfig::chunk_window`; 0: none): chunk bytes
    /// of a 16 MiB answer it keeps unacknowledged. Unset: the default.
    #[arg(long)]
    chunk_window_kib: Option<usize>,
    /// The server's chunk size in KiB (`ConnectionConfig::chunk_size`): the payload it cuts a
    /// 16 MiB answer into. Unset: the default (64 KiB).
    #[arg(long)]
    chunk_kib: Option<usize>,
    /// Only the cases whose name contains this (say `bulk` or `no chunks`), for a profile.
    #[arg(long)]
    only: Option<String>,
    /// Pins the server's thread to the CPU `SERVER,CLIENT` names first and the client's (the
    /// main thread) to the second, say `1,0`: client and server on different CPUs, whatever
    /// the scheduler would do. Unset: both inherit the process's affinity.
    #[arg(long, value_parser = parse_cpu_pair)]
    split_cpus: Option<(usize, usize)>,
    /// Bulk callers on the connection, each making one 16 MiB call after another. With 2, the
    /// next 16 MiB answer is usually queued while one is written: a normal-priority answer
    /// queued behind it waits for both, a high-priority one goes between chunks (its lane).
    #[arg(long, default_value_t = 1)]
    bulk_calls: usize,
}

/// `SERVER,CLIENT` CPU numbers for `--split-cpus`.
fn parse_cpu_pair(text: &str) -> Result<(usize, usize), String> {
    let (server, client) = text.split_once(',').ok_or("expected SERVER,CLIENT, say 1,0")?;
    let cpu = |part: &str| part.trim().parse::<usize>().map_err(|err| format!("{part:?}: {err}"));
    Ok((cpu(server)?, cpu(client)?))
}

/// Pins the calling thread to `cpu`.
fn pin_current_thread(cpu: usize) -> Result<(), String> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|err| format!("pinning a thread to CPU {cpu}: {err}"))
}

/// The socket options of both sides for `--socket-buffer-kib`.
fn socket_config(kib: usize) -> SocketConfig {
    let size = (kib > 0).then_some(kib * 1024);
    SocketConfig {
        send_buffer_size: size,
        recv_buffer_size: size,
        ..SocketConfig::default()
    }
}

/// One measured configuration.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    priority: u8,
    bulk: bool,
    chunks: bool,
}

const CASES: [Case; 6] = [
    Case {
        name: "high idle",
        priority: 255,
        bulk: false,
        chunks: true,
    },
    Case {
        name: "high + bulk",
        priority: 255,
        bulk: true,
        chunks: true,
    },
    Case {
        name: "normal idle",
        priority: 0,
        bulk: false,
        chunks: true,
    },
    Case {
        name: "normal + bulk",
        priority: 0,
        bulk: true,
        chunks: true,
    },
    Case {
        name: "high idle, no chunks",
        priority: 255,
        bulk: false,
        chunks: false,
    },
    Case {
        name: "high + bulk, no chunks",
        priority: 255,
        bulk: true,
        chunks: false,
    },
];

#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    p50: f64,
    p99: f64,
    calls: usize,
    /// 16 MiB answers received per second.
    bulk_per_s: f64,
}

async fn server(socket: SocketConfig, chunks: (Option<usize>, Option<usize>), cpu: Option<usize>) -> Address {
    let (chunk_window_kib, chunk_kib) = chunks;
    if let Some(cpu) = cpu {
        // This future runs on the server's thread, before its runtime serves anything.
        pin_current_thread(cpu).expect("pin the server thread");
    }
    // Built once: each answer splices it by reference, so the server's cost is the write.
    let bulk = Bytes::from(vec![0x5a; BULK_LEN]);
    let mut config = ConnectionConfig::default();
    if let Some(kib) = chunk_window_kib {
        config = config.chunk_window(kib * 1024);
    }
    if let Some(kib) = chunk_kib {
        config = config.chunk_size(kib * 1024);
    }
    let handle = Server::builder()
        .socket_config(socket)
        .connection_config(config)
        .unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
        .unary_inline(BULK, move |_: Request<Payload>| Ok::<_, Status>(Payload { data: bulk.clone() }))
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind");
    let address = handle.local_addr().clone();
    // The server lives as long as its thread's runtime.
    std::mem::forget(handle);
    address
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank] as f64 / 1000.0
}

async fn run_once(server: &Address, case: Case, args: &LanesArgs, warmup: Duration, duration: Duration, pacer: &Pacer) -> Figures {
    let bulk_gap = Duration::from_millis(args.bulk_gap_ms);
    let config = if case.chunks {
        ConnectionConfig::default().acknowledge_chunks(true)
    } else {
        ConnectionConfig::default().receive_chunks(false)
    };
    let client = Client::builder()
        .connection_config(config)
        .socket_config(socket_config(args.socket_buffer_kib))
        .connect(server)
        .await
        .expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let bulk_done = Arc::new(AtomicU64::new(0));
    let bulk_callers = if case.bulk { args.bulk_calls } else { 0 };
    let bulk: Vec<_> = (0..bulk_callers)
        .map(|_| {
            let (client, stop, done) = (client.clone(), stop.clone(), bulk_done.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let answer: Payload = client.unary(BULK_ID, &payload(0), CallOptions::new()).await.expect("bulk call");
                    assert_eq!(answer.data.len(), BULK_LEN);
                    done.fetch_add(1, Ordering::Relaxed);
                    let next = started + bulk_gap;
                    while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();
    let request = payload(64);
    let options = CallOptions::new().priority(case.priority);
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let bulk_at_start = Arc::new(AtomicU64::new(u64::MAX));
    let mut calls = Vec::new();
    let mut next = start;
    // Open loop: a call every GAP whatever the earlier ones do; each records its latency.
    while next < end {
        pacer.wait_until(next).await;
        if bulk_at_start.load(Ordering::Relaxed) == u64::MAX && next >= measure_from {
            bulk_at_start.store(bulk_done.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let (client, request, options) = (client.clone(), request.clone(), options.clone());
        let measured = next >= measure_from;
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let _: Payload = client.unary(ECHO_ID, &request, options).await.expect("64-byte call");
            measured.then(|| sent.elapsed().as_nanos() as u64)
        }));
        next += GAP;
    }
    let bulk_in_window = bulk_done
        .load(Ordering::Relaxed)
        .saturating_sub(bulk_at_start.load(Ordering::Relaxed).min(u64::MAX - 1));
    let mut latencies = Vec::with_capacity(calls.len());
    for call in calls {
        if let Some(ns) = call.await.expect("call task") {
            latencies.push(ns);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for bulk in bulk {
        let _ = bulk.await;
    }
    latencies.sort_unstable();
    Figures {
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        calls: latencies.len(),
        bulk_per_s: if case.bulk {
            bulk_in_window as f64 / duration.as_secs_f64()
        } else {
            0.0
        },
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Runs every case `repeats` times, interleaved, and prints the table and the goal.
pub(crate) fn run(
    args: &LanesArgs,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    runtime: &tokio::runtime::Runtime,
    mut json: Option<&mut std::fs::File>,
) -> Result<(), Box<dyn std::error::Error>> {
    let socket = socket_config(args.socket_buffer_kib);
    let chunks = (args.chunk_window_kib, args.chunk_kib);
    // Read before the main thread is pinned: the process's affinity.
    let placement = Runtime::CurrentThread.placement();
    let server_cpu = args.split_cpus.map(|(server, _)| server);
    let (server, _thread) = ServerThread::spawn_on(|| Runtime::CurrentThread.build(), move || server(socket, chunks, server_cpu));
    if let Some((_, client)) = args.split_cpus {
        pin_current_thread(client)?;
    }
    let pacer = Pacer::start(Pacing::Sleep);
    let mut runs: Vec<Vec<Figures>> = CASES.iter().map(|_| Vec::new()).collect();
    for repeat in 0..repeats {
        for (c, case) in CASES.iter().enumerate() {
            if args.only.as_ref().is_some_and(|only| !case.name.contains(only.as_str())) {
                continue;
            }
            let figures = runtime.block_on(run_once(&server, *case, args, warmup, duration, &pacer));
            eprintln!(
                "repeat {} {}: p50 {:.1} us p99 {:.1} us ({} calls, {:.1} bulk answers/s)",
                repeat + 1,
                case.name,
                figures.p50,
                figures.p99,
                figures.calls,
                figures.bulk_per_s
            );
            if let Some(file) = json.as_mut() {
                writeln!(
                    file,
                    "{{\"lanes\":true,\"case\":\"{}\",\"repeat\":{repeat},\"p50_us\":{:.2},\"p99_us\":{:.2},\"calls\":{},\"bulk_per_s\":{:.2}}}",
                    case.name, figures.p50, figures.p99, figures.calls, figures.bulk_per_s
                )?;
            }
            runs[c].push(figures);
        }
    }
    let med = |c: usize, f: fn(&Figures) -> f64| median(runs[c].iter().map(f).collect());
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nplacement: {placement}")?;
    if let Some((server, client)) = args.split_cpus {
        writeln!(
            out,
            "split: server thread pinned to CPU {server}, client (main) thread to CPU {client}"
        )?;
    }
    writeln!(
        out,
        "{repeats} repeat(s) of {duration:?} each, runs interleaved; 64 B calls every {GAP:?}; bulk = 16 MiB answers, {} caller(s) one call at a time each, {} ms from start to start (0 = back to back); socket buffers {} KiB (0 = kernel's); medians\n",
        args.bulk_calls, args.bulk_gap_ms, args.socket_buffer_kib
    )?;
    writeln!(out, "{:<24} {:>10} {:>10} {:>14}", "case", "p50 us", "p99 us", "16 MiB/s")?;
    for (c, case) in CASES.iter().enumerate() {
        writeln!(
            out,
            "{:<24} {:>10.1} {:>10.1} {:>14.2}",
            case.name,
            med(c, |f| f.p50),
            med(c, |f| f.p99),
            med(c, |f| f.bulk_per_s)
        )?;
    }
    let ratio = |with: usize, idle: usize| med(with, |f| f.p99) / med(idle, |f| f.p99);
    writeln!(out)?;
    writeln!(
        out,
        "p99 with bulk / idle p99: high {:.2}x, normal {:.2}x, high without chunks {:.2}x",
        ratio(1, 0),
        ratio(3, 2),
        ratio(5, 4)
    )?;
    let met = ratio(1, 0) <= 2.0;
    writeln!(
        out,
        "goal (issue 20): high p99 with bulk <= 2x idle p99: {}",
        if met { "met" } else { "MISSED" }
    )?;
    Ok(())
}
