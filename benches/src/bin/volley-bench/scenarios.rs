//! The scenarios and their measurement loops. Every loop runs a warm-up, then measures for a
//! fixed time and stops by itself.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley_benches::raw;

use crate::pacer::{Pacer, Pacing};
use crate::systems::{Conn, Servers, System, connect, connect_raw};

/// Bytes a Volley call adds around its payload on the wire; the raw floor echoes messages of
/// the payload size plus this, as the criterion `roundtrip` bench does.
const FRAME_OVERHEAD: usize = 16;

/// Messages per server-streaming call.
pub(crate) const STREAM_LEN: u32 = 1000;

/// What a scenario does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// Closed-loop unary calls: `in_flight` callers on each of `conns` connections.
    Unary { size: usize, in_flight: usize, conns: usize },
    /// Server-streaming calls of [`STREAM_LEN`] messages of `size` bytes, one at a time.
    Stream { size: usize },
    /// Open loop: unary calls of `size` bytes at a fixed rate (a fraction of Volley's measured
    /// peak), latency measured from each call's intended send time.
    OpenLoop { size: usize, fraction: f64 },
}

/// One scenario.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) kind: Kind,
}

impl Scenario {
    /// The systems this scenario runs: the raw floor has no streams and no per-call open loop.
    pub(crate) fn systems(&self) -> &'static [System] {
        match self.kind {
            Kind::Unary { .. } => &System::ALL,
            Kind::Stream { .. } | Kind::OpenLoop { .. } => &[System::Tonic, System::Volley],
        }
    }
}

/// Every scenario, in the order they run. The `unary_64B_<n>` scenarios on one connection (1, 4,
/// 16, 64, 128 and 256 in flight) make the throughput-against-in-flight sweep.
pub(crate) const SCENARIOS: [Scenario; 11] = [
    Scenario {
        name: "unary_64B_1",
        description: "unary 64 B, 1 in flight, 1 connection (latency)",
        kind: Kind::Unary {
            size: 64,
            in_flight: 1,
            conns: 1,
        },
    },
    Scenario {
        name: "unary_64B_128",
        description: "unary 64 B, 128 in flight on 1 connection (throughput)",
        kind: Kind::Unary {
            size: 64,
            in_flight: 128,
            conns: 1,
        },
    },
    Scenario {
        name: "unary_1MiB_1",
        description: "unary 1 MiB, 1 in flight (bandwidth)",
        kind: Kind::Unary {
            size: 1 << 20,
            in_flight: 1,
            conns: 1,
        },
    },
    Scenario {
        name: "unary_64B_4x64",
        description: "unary 64 B, 4 connections x 64 in flight",
        kind: Kind::Unary {
            size: 64,
            in_flight: 64,
            conns: 4,
        },
    },
    Scenario {
        name: "stream_64B",
        description: "server-streaming, 1000 x 64 B messages per call (rate in messages/s)",
        kind: Kind::Stream { size: 64 },
    },
    Scenario {
        name: "open_loop_50pct",
        description: "open loop, unary 64 B at 50 % of Volley's unary_64B_128 peak, CO-corrected",
        kind: Kind::OpenLoop { size: 64, fraction: 0.5 },
    },
    Scenario {
        name: "open_loop_25pct",
        description: "open loop, unary 64 B at 25 % of Volley's unary_64B_128 peak, CO-corrected",
        kind: Kind::OpenLoop { size: 64, fraction: 0.25 },
    },
    sweep("unary_64B_4", "unary 64 B, 4 in flight on 1 connection (in-flight sweep)", 4),
    sweep("unary_64B_16", "unary 64 B, 16 in flight on 1 connection (in-flight sweep)", 16),
    sweep("unary_64B_64", "unary 64 B, 64 in flight on 1 connection (in-flight sweep)", 64),
    sweep("unary_64B_256", "unary 64 B, 256 in flight on 1 connection (in-flight sweep)", 256),
];

/// A point of the in-flight sweep: unary 64 B calls, `in_flight` of them on one connection.
const fn sweep(name: &'static str, description: &'static str, in_flight: usize) -> Scenario {
    Scenario {
        name,
        description,
        kind: Kind::Unary {
            size: 64,
            in_flight,
            conns: 1,
        },
    }
}

/// Finds a scenario by name.
pub(crate) fn find(name: &str) -> Result<Scenario, String> {
    SCENARIOS
        .iter()
        .find(|s| s.name == name)
        .copied()
        .ok_or_else(|| format!("unknown scenario {name:?}"))
}

/// One measurement.
#[derive(Debug)]
pub(crate) struct Sample {
    /// Calls (or streamed messages) completed in the measured window.
    pub(crate) calls: u64,
    /// Length of the measured window.
    pub(crate) elapsed: Duration,
    /// Latencies in nanoseconds.
    pub(crate) hist: Histogram<u64>,
    /// Open loop only: the rate asked for.
    pub(crate) target_rate: Option<f64>,
    /// Open loop only: how the generator waited between sends.
    pub(crate) pacing: Option<Pacing>,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("histogram")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Timing of one run: warm up until `measure_from`, measure until `end`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) measure_from: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn starting_now(warmup: Duration, duration: Duration) -> Self {
        let measure_from = Instant::now() + warmup;
        Self {
            measure_from,
            end: measure_from + duration,
        }
    }
}

/// Runs `scenario` once against `system`. `open_loop` is the open-loop target (calls/s) and
/// the generator's pacing.
pub(crate) async fn run(
    servers: &Servers,
    scenario: &Scenario,
    system: System,
    warmup: Duration,
    duration: Duration,
    open_loop: Option<(f64, Pacing)>,
) -> Sample {
    match scenario.kind {
        Kind::Unary { size, in_flight, conns } if system == System::Raw => {
            let mut streams = Vec::with_capacity(conns);
            for _ in 0..conns {
                streams.push(connect_raw(servers).await);
            }
            let window = Window::starting_now(warmup, duration);
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|stream| tokio::spawn(raw_worker(stream, size + FRAME_OVERHEAD, in_flight, window)))
                .collect();
            collect(tasks, duration).await
        }
        Kind::Unary { size, in_flight, conns } => {
            let mut clients = Vec::with_capacity(conns);
            for _ in 0..conns {
                clients.push(connect(servers, system).await);
            }
            let data = Bytes::from(vec![0x5a; size]);
            let window = Window::starting_now(warmup, duration);
            let tasks: Vec<_> = clients
                .iter()
                .flat_map(|conn| (0..in_flight).map(move |_| conn.clone()))
                .map(|conn| tokio::spawn(unary_worker(conn, data.clone(), window)))
                .collect();
            collect(tasks, duration).await
        }
        Kind::Stream { size } => {
            let conn = connect(servers, system).await;
            let window = Window::starting_now(warmup, duration);
            collect(vec![tokio::spawn(stream_worker(conn, size, window))], duration).await
        }
        Kind::OpenLoop { size, .. } => {
            let conn = connect(servers, system).await;
            let (rate, pacing) = open_loop.expect("open loop needs a rate");
            run_open_loop(conn, Bytes::from(vec![0x5a; size]), rate, pacing, warmup, duration).await
        }
    }
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<(u64, Histogram<u64>)>>, duration: Duration) -> Sample {
    let mut hist = histogram();
    let mut calls = 0;
    for task in tasks {
        let (n, h) = task.await.expect("worker");
        calls += n;
        hist.add(h).expect("merge histograms");
    }
    Sample {
        calls,
        elapsed: duration,
        hist,
        target_rate: None,
        pacing: None,
    }
}

/// The raw floor: `count` messages written back to back and read back (`raw::exchange`); each
/// message is recorded with the batch's round-trip time.
async fn raw_worker(mut stream: TcpStream, size: usize, count: usize, window: Window) -> (u64, Histogram<u64>) {
    let message = vec![0x5a_u8; size];
    let mut scratch = Vec::with_capacity(size * count);
    let mut hist = histogram();
    let mut calls = 0;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        if size > 64 * 1024 {
            exchange_large(&mut stream, &message, &mut scratch).await;
        } else {
            raw::exchange(&mut stream, &message, count, &mut scratch).await;
        }
        if started >= window.measure_from {
            hist.record_n(nanos(started.elapsed()), count as u64).expect("record");
            calls += count as u64;
        }
    }
    (calls, hist)
}

/// A large raw echo: writes and reads at the same time, so neither side's socket buffers need
/// to hold the whole message.
async fn exchange_large(stream: &mut TcpStream, message: &[u8], scratch: &mut Vec<u8>) {
    scratch.resize(message.len(), 0);
    let (mut reader, mut writer) = stream.split();
    let (written, read) = tokio::join!(writer.write_all(message), reader.read_exact(scratch));
    written.expect("write");
    read.expect("read");
}

async fn unary_worker(conn: Conn, data: Bytes, window: Window) -> (u64, Histogram<u64>) {
    let mut hist = histogram();
    let mut calls = 0;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        conn.echo(&data).await;
        if started >= window.measure_from {
            hist.record(nanos(started.elapsed())).expect("record");
            calls += 1;
        }
    }
    (calls, hist)
}

/// Streams one call at a time; records each whole stream's time, counts messages.
async fn stream_worker(conn: Conn, size: usize, window: Window) -> (u64, Histogram<u64>) {
    let mut hist = histogram();
    let mut messages = 0;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let got = conn.feed(STREAM_LEN, size).await;
        assert_eq!(got, u64::from(STREAM_LEN), "short stream");
        if started >= window.measure_from {
            hist.record(nanos(started.elapsed())).expect("record");
            messages += got;
        }
    }
    (messages, hist)
}

/// Most calls an open-loop run keeps in flight; later calls wait (and their wait counts, since
/// latency runs from the intended send time).
const OPEN_LOOP_MAX_IN_FLIGHT: usize = 4096;

/// Sends calls at `rate` per second, each at its intended time (or as soon after as possible),
/// and records latency from the intended time, so a stalled system is charged for the calls it
/// delayed (no coordinated omission). The [`Pacer`] waits between sends without spinning.
async fn run_open_loop(conn: Conn, data: Bytes, rate: f64, pacing: Pacing, warmup: Duration, duration: Duration) -> Sample {
    let hist = Arc::new(Mutex::new(histogram()));
    let last_done = Arc::new(Mutex::new(None::<Instant>));
    let permits = Arc::new(tokio::sync::Semaphore::new(OPEN_LOOP_MAX_IN_FLIGHT));
    let window = Window::starting_now(warmup, duration);
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut sent: u32 = 0;
    let mut recorded = 0u64;
    let pacer = Pacer::start(pacing);
    loop {
        let intended = start + interval * sent;
        if intended >= window.end {
            break;
        }
        let now = Instant::now();
        if now >= window.end {
            // Overloaded: the calls still due are not sent (and not counted); the achieved
            // rate shows the shortfall.
            break;
        }
        if intended > now {
            pacer.wait_until(intended).await;
            continue;
        }
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let measured = intended >= window.measure_from;
        recorded += u64::from(measured);
        let (conn, data, hist, last_done) = (conn.clone(), data.clone(), hist.clone(), last_done.clone());
        tokio::spawn(async move {
            conn.echo(&data).await;
            let done = Instant::now();
            if measured {
                hist.lock().expect("histogram").record(nanos(done - intended)).expect("record");
                *last_done.lock().expect("last") = Some(done);
            }
            drop(permit);
        });
        sent += 1;
    }
    let _all = permits.acquire_many(OPEN_LOOP_MAX_IN_FLIGHT as u32).await.expect("semaphore");
    let finished = last_done.lock().expect("last").unwrap_or(window.end);
    let hist = hist.lock().expect("histogram").clone();
    Sample {
        calls: recorded,
        // Achieved rate: calls sent in the window over the time until the last one finished.
        elapsed: finished.saturating_duration_since(window.measure_from).max(duration),
        hist,
        target_rate: Some(rate),
        pacing: Some(pacing),
    }
}
