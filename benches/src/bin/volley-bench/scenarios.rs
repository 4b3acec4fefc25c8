//! The scenarios and their measurement loops. Every loop runs a warm-up, then measures for a
//! fixed time and stops by itself.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::ServerHandle;
use volley_benches::raw;

use crate::callers::{Callers, Method};
use crate::oneway;
use crate::open_loop::{CallTasks, OpenLoop};
use crate::pacer::Pacing;
use crate::systems::{Conn, Runtime, Servers, System, VolleyCounters, connect, connect_raw, connect_volley};

/// Bytes a Volley call adds around its payload on the wire; the raw floor echoes messages of
/// the payload size plus this, as the criterion `roundtrip` bench does.
const FRAME_OVERHEAD: usize = 16;

/// Messages per server-streaming call.
pub(crate) const STREAM_LEN: u32 = 1000;

/// The socket a one-way scenario runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Loopback TCP.
    Tcp,
    /// A Unix socket in a temp directory.
    Unix,
}

/// What a scenario does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// Closed-loop unary calls: `in_flight` callers on each of `conns` connections.
    Unary { size: usize, in_flight: usize, conns: usize },
    /// One-way bulk transfer on one connection: requests of `size` bytes answered by an empty
    /// message (raw: a 16-byte acknowledgement), `in_flight` outstanding.
    OneWay {
        size: usize,
        in_flight: usize,
        transport: Transport,
    },
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
    /// Where the client and the servers run.
    pub(crate) runtime: Runtime,
    /// Reads the process's resident memory before connecting and at the end of the measured
    /// window (the connection-count sweep).
    pub(crate) memory: bool,
}

impl Scenario {
    /// The systems this scenario runs: the raw floor has no streams and no per-call open loop;
    /// the framed floor and tarpc have no streams; the one-way scenarios run raw, tarpc and
    /// tonic (TCP only) and Volley.
    ///
    /// The peers (grpc-go, grpcio, asyncio) run the unary scenarios on the current-thread
    /// placement except the connection sweep, the stream and the open loop.
    pub(crate) fn systems(&self) -> &'static [System] {
        use System::{Asyncio, Framed, GrpcGo, Grpcio, Raw, Tarpc, Tonic, Volley};
        match self.kind {
            Kind::Unary { .. } if self.memory || self.runtime != Runtime::CurrentThread => &System::ALL,
            Kind::Unary { .. } => &[Raw, Framed, Tarpc, Tonic, Volley, GrpcGo, Grpcio, Asyncio],
            Kind::OneWay {
                transport: Transport::Tcp, ..
            } => &[Raw, Tarpc, Tonic, Volley],
            Kind::OneWay {
                transport: Transport::Unix,
                ..
            } => &[Raw, Volley],
            Kind::OpenLoop { .. } => &[Framed, Tarpc, Tonic, Volley, GrpcGo, Grpcio, Asyncio],
            Kind::Stream { .. } => &[Tonic, Volley, GrpcGo, Grpcio, Asyncio],
        }
    }

    /// Payload bytes each call carries one way (the one-way scenarios, reported as GB/s).
    pub(crate) fn bytes_per_call(&self) -> Option<usize> {
        match self.kind {
            Kind::OneWay { size, .. } => Some(size),
            _ => None,
        }
    }

    /// Connections a run opens.
    pub(crate) fn conns(&self) -> usize {
        match self.kind {
            Kind::Unary { conns, .. } => conns,
            _ => 1,
        }
    }
}

/// A scenario on the current-thread runtimes, without memory readings.
const fn scenario(name: &'static str, description: &'static str, kind: Kind) -> Scenario {
    Scenario {
        name,
        description,
        kind,
        runtime: Runtime::CurrentThread,
        memory: false,
    }
}

/// Every scenario, in the order they run. The `unary_64B_<n>` scenarios on one connection (1, 4,
/// 16, 64, 128 and 256 in flight) make the throughput-against-in-flight sweep; `conns_<n>` make
/// the connection-count sweep.
pub(crate) const SCENARIOS: [Scenario; 17] = [
    scenario(
        "unary_64B_1",
        "unary 64 B, 1 in flight, 1 connection (latency)",
        Kind::Unary {
            size: 64,
            in_flight: 1,
            conns: 1,
        },
    ),
    scenario(
        "unary_64B_128",
        "unary 64 B, 128 in flight on 1 connection (throughput)",
        Kind::Unary {
            size: 64,
            in_flight: 128,
            conns: 1,
        },
    ),
    scenario(
        "unary_1MiB_1",
        "unary 1 MiB, 1 in flight (bandwidth)",
        Kind::Unary {
            size: 1 << 20,
            in_flight: 1,
            conns: 1,
        },
    ),
    scenario(
        "unary_64B_4x64",
        "unary 64 B, 4 connections x 64 in flight",
        Kind::Unary {
            size: 64,
            in_flight: 64,
            conns: 4,
        },
    ),
    scenario(
        "stream_64B",
        "server-streaming, 1000 x 64 B messages per call (rate in messages/s)",
        Kind::Stream { size: 64 },
    ),
    scenario(
        "open_loop_50pct",
        "open loop, unary 64 B at 50 % of Volley's unary_64B_128 peak, CO-corrected",
        Kind::OpenLoop { size: 64, fraction: 0.5 },
    ),
    scenario(
        "open_loop_25pct",
        "open loop, unary 64 B at 25 % of Volley's unary_64B_128 peak, CO-corrected",
        Kind::OpenLoop { size: 64, fraction: 0.25 },
    ),
    sweep("unary_64B_4", "unary 64 B, 4 in flight on 1 connection (in-flight sweep)", 4),
    sweep("unary_64B_16", "unary 64 B, 16 in flight on 1 connection (in-flight sweep)", 16),
    sweep("unary_64B_64", "unary 64 B, 64 in flight on 1 connection (in-flight sweep)", 64),
    sweep("unary_64B_256", "unary 64 B, 256 in flight on 1 connection (in-flight sweep)", 256),
    Scenario {
        name: "unary_64B_16x32_mt",
        description: "unary 64 B, 16 connections x 32 in flight; client and each server on a 2-worker multi-thread runtime, unpinned",
        kind: Kind::Unary {
            size: 64,
            in_flight: 32,
            conns: 16,
        },
        runtime: Runtime::MultiThread,
        memory: false,
    },
    scenario(
        "oneway_1MiB_tcp",
        "one way 1 MiB, 4 in flight on 1 loopback TCP connection (rate in calls/s and GB/s)",
        Kind::OneWay {
            size: 1 << 20,
            in_flight: 4,
            transport: Transport::Tcp,
        },
    ),
    scenario(
        "oneway_1MiB_unix",
        "one way 1 MiB, 4 in flight on 1 Unix socket connection (rate in calls/s and GB/s)",
        Kind::OneWay {
            size: 1 << 20,
            in_flight: 4,
            transport: Transport::Unix,
        },
    ),
    conns(
        "conns_1",
        "unary 64 B, 1 connection x 1 in flight (connection sweep, process RSS)",
        1,
    ),
    conns(
        "conns_64",
        "unary 64 B, 64 connections x 1 in flight (connection sweep, process RSS)",
        64,
    ),
    conns(
        "conns_1024",
        "unary 64 B, 1024 connections x 1 in flight (connection sweep, process RSS)",
        1024,
    ),
];

/// A point of the in-flight sweep: unary 64 B calls, `in_flight` of them on one connection.
const fn sweep(name: &'static str, description: &'static str, in_flight: usize) -> Scenario {
    scenario(
        name,
        description,
        Kind::Unary {
            size: 64,
            in_flight,
            conns: 1,
        },
    )
}

/// A point of the connection-count sweep: unary 64 B calls, one in flight on each of `conns`
/// connections, with the process's resident memory read before and after.
const fn conns(name: &'static str, description: &'static str, conns: usize) -> Scenario {
    Scenario {
        memory: true,
        ..scenario(
            name,
            description,
            Kind::Unary {
                size: 64,
                in_flight: 1,
                conns,
            },
        )
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
    /// Open loop only: how the generator carried the calls in flight.
    pub(crate) calls_carried: Option<CallTasks>,
    /// Volley only: its write counters over the run (warm-up included).
    pub(crate) writes: Option<Writes>,
    /// Memory scenarios only: the process's resident memory in KiB before connecting and at
    /// the end of the measured window.
    pub(crate) rss_kib: Option<(u64, u64)>,
    /// CPU time (user + system) spent in the measured window: this whole process for the
    /// in-process systems (client and server threads), the client and server child processes
    /// for the peers; from `/proc/<pid>/stat`.
    pub(crate) cpu_seconds: Option<f64>,
    /// Peers that count them (grpc-go, `runtime.MemStats.Mallocs`): heap allocations of the
    /// client and the server in the measured window.
    pub(crate) allocs: Option<u64>,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

/// Volley's writes over one run, on both ends, from `Client::stats` (summed over the run's
/// connections) and `ServerHandle::stats`, read after connecting and after the last call; the
/// warm-up is included.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Writes {
    /// Calls the clients started (streams, for the streaming scenario).
    pub(crate) calls: u64,
    pub(crate) client_frames: u64,
    pub(crate) client_writes: u64,
    pub(crate) server_frames: u64,
    pub(crate) server_writes: u64,
}

impl Writes {
    fn between(before: &VolleyCounters, after: &VolleyCounters) -> Self {
        Self {
            calls: after.client.calls_started - before.client.calls_started,
            client_frames: after.client.frames_out - before.client.frames_out,
            client_writes: after.client.write_syscalls - before.client.write_syscalls,
            server_frames: after.server.frames_out - before.server.frames_out,
            server_writes: after.server.write_syscalls - before.server.write_syscalls,
        }
    }

    /// Frames per write system call on the client side.
    pub(crate) fn client_frames_per_write(&self) -> f64 {
        self.client_frames as f64 / self.client_writes.max(1) as f64
    }

    /// Frames per write system call on the server side.
    pub(crate) fn server_frames_per_write(&self) -> f64 {
        self.server_frames as f64 / self.server_writes.max(1) as f64
    }

    /// Write system calls of both sides together per call.
    pub(crate) fn writes_per_call(&self) -> f64 {
        (self.client_writes + self.server_writes) as f64 / self.calls.max(1) as f64
    }
}

/// Volley's counters before a run, if `system` is Volley.
fn count_writes(system: System, conns: &[Conn], server: &ServerHandle) -> Option<VolleyCounters> {
    (system == System::Volley).then(|| VolleyCounters::read(conns, server))
}

/// Volley's writes since `before`.
fn writes_since(before: Option<VolleyCounters>, conns: &[Conn], server: &ServerHandle) -> Option<Writes> {
    before.map(|before| Writes::between(&before, &VolleyCounters::read(conns, server)))
}

/// This process's resident memory (VmRSS) in KiB.
pub(crate) fn rss_kib() -> u64 {
    volley_benches::rss_kib(std::process::id())
}

/// Reads the resident memory at `at` (the end of the measured window, while every connection
/// is open and busy), on a task of the client runtime.
fn rss_at(at: Instant) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        tokio::time::sleep_until(at.into()).await;
        rss_kib()
    })
}

/// The memory readings of a memory scenario: `before` and the reading `after` makes.
async fn rss_pair(before: Option<u64>, after: Option<tokio::task::JoinHandle<u64>>) -> Option<(u64, u64)> {
    match (before, after) {
        (Some(before), Some(after)) => Some((before, after.await.expect("memory reading"))),
        _ => None,
    }
}

/// Reads this process's CPU time at the start and the end of `window`'s measured part, on a
/// task of the client runtime; yields the difference in seconds.
pub(crate) fn cpu_in(window: Window) -> tokio::task::JoinHandle<Option<f64>> {
    tokio::spawn(async move {
        let pid = std::process::id();
        tokio::time::sleep_until(window.measure_from.into()).await;
        let from = crate::peers::cpu_seconds(pid);
        tokio::time::sleep_until(window.end.into()).await;
        Some(crate::peers::cpu_seconds(pid)? - from?)
    })
}

/// The CPU time `reading` took (`None` if the task failed).
pub(crate) async fn cpu_of(reading: tokio::task::JoinHandle<Option<f64>>) -> Option<f64> {
    reading.await.ok().flatten()
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("histogram")
}

pub(crate) fn nanos(d: Duration) -> u64 {
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

/// Runs `scenario` once against `system`, on the current runtime (the caller picks the runtime
/// and the servers that match `scenario.runtime`). `open_loop` is the open-loop target (calls/s)
/// and the generator's pacing and call tasks.
pub(crate) async fn run(
    servers: &Servers,
    scenario: &Scenario,
    system: System,
    warmup: Duration,
    duration: Duration,
    open_loop: Option<OpenLoop>,
) -> Sample {
    let rss_before = scenario.memory.then(rss_kib);
    match scenario.kind {
        Kind::Unary { size, in_flight, conns } if system == System::Raw => {
            let mut streams = Vec::with_capacity(conns);
            for _ in 0..conns {
                streams.push(connect_raw(servers).await);
            }
            let window = Window::starting_now(warmup, duration);
            let cpu = cpu_in(window);
            let rss_after = scenario.memory.then(|| rss_at(window.end));
            let tasks: Vec<_> = streams
                .into_iter()
                .map(|stream| tokio::spawn(raw_worker(stream, size + FRAME_OVERHEAD, in_flight, window)))
                .collect();
            let mut sample = collect(tasks, duration).await;
            sample.cpu_seconds = cpu_of(cpu).await;
            sample.rss_kib = rss_pair(rss_before, rss_after).await;
            sample
        }
        Kind::Unary { size, in_flight, conns } => {
            let mut clients = Vec::with_capacity(conns);
            for _ in 0..conns {
                clients.push(connect(servers, system).await);
            }
            let server = &servers.volley.handle;
            let before = count_writes(system, &clients, server);
            let data = Bytes::from(vec![0x5a; size]);
            let window = Window::starting_now(warmup, duration);
            let cpu = cpu_in(window);
            let rss_after = scenario.memory.then(|| rss_at(window.end));
            let callers = Callers::spawn(
                clients.iter().flat_map(|conn| (0..in_flight).map(move |_| conn.clone())),
                &data,
                Method::Echo,
                window,
            );
            let mut sample = callers.collect(duration).await;
            sample.cpu_seconds = cpu_of(cpu).await;
            sample.writes = writes_since(before, &clients, server);
            sample.rss_kib = rss_pair(rss_before, rss_after).await;
            sample
        }
        Kind::OneWay {
            size,
            in_flight,
            transport,
        } => {
            let oneway = servers.oneway.as_ref().expect("one-way servers started");
            if system == System::Raw {
                let (task, cpu) = match transport {
                    Transport::Tcp => {
                        let stream = raw::connect(oneway.raw_tcp).await;
                        let window = Window::starting_now(warmup, duration);
                        (tokio::spawn(oneway::client(stream, size, in_flight, window)), cpu_in(window))
                    }
                    Transport::Unix => {
                        let stream = tokio::net::UnixStream::connect(&oneway.raw_unix).await.expect("connect unix");
                        let window = Window::starting_now(warmup, duration);
                        (tokio::spawn(oneway::client(stream, size, in_flight, window)), cpu_in(window))
                    }
                };
                let mut sample = collect(vec![task], duration).await;
                sample.cpu_seconds = cpu_of(cpu).await;
                return sample;
            }
            // Unix: only raw and Volley run it; TCP: the others connect to their echo servers,
            // which also serve the sink method.
            let (conn, server) = match transport {
                Transport::Unix => (
                    connect_volley(servers, &oneway.volley_unix.address).await,
                    &oneway.volley_unix.handle,
                ),
                Transport::Tcp => (connect(servers, system).await, &servers.volley.handle),
            };
            let clients = [conn];
            let before = count_writes(system, &clients, server);
            let data = Bytes::from(vec![0x5a; size]);
            let window = Window::starting_now(warmup, duration);
            let cpu = cpu_in(window);
            let callers = Callers::spawn((0..in_flight).map(|_| clients[0].clone()), &data, Method::Sink, window);
            let mut sample = callers.collect(duration).await;
            sample.cpu_seconds = cpu_of(cpu).await;
            sample.writes = writes_since(before, &clients, server);
            sample
        }
        Kind::Stream { size } => {
            let clients = [connect(servers, system).await];
            let server = &servers.volley.handle;
            let before = count_writes(system, &clients, server);
            let window = Window::starting_now(warmup, duration);
            let cpu = cpu_in(window);
            let mut sample = collect(vec![tokio::spawn(stream_worker(clients[0].clone(), size, window))], duration).await;
            sample.cpu_seconds = cpu_of(cpu).await;
            sample.writes = writes_since(before, &clients, server);
            sample
        }
        Kind::OpenLoop { size, .. } => {
            let clients = [connect(servers, system).await];
            let server = &servers.volley.handle;
            let before = count_writes(system, &clients, server);
            let open_loop = open_loop.expect("open loop needs a rate");
            let mut sample = crate::open_loop::run(clients[0].clone(), Bytes::from(vec![0x5a; size]), open_loop, warmup, duration).await;
            sample.writes = writes_since(before, &clients, server);
            sample
        }
    }
}

pub(crate) async fn collect(tasks: Vec<tokio::task::JoinHandle<(u64, Histogram<u64>)>>, duration: Duration) -> Sample {
    let mut hist = histogram();
    let mut calls = 0;
    for task in tasks {
        let (n, h) = task.await.expect("worker");
        calls += n;
        hist.add(h).expect("merge histograms");
    }
    sample(calls, hist, duration)
}

/// A sample of `calls` in `duration` with latencies `hist`, nothing else measured yet.
pub(crate) fn sample(calls: u64, hist: Histogram<u64>, duration: Duration) -> Sample {
    Sample {
        calls,
        elapsed: duration,
        hist,
        target_rate: None,
        pacing: None,
        calls_carried: None,
        writes: None,
        rss_kib: None,
        cpu_seconds: None,
        allocs: None,
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

/// Streams one call at a time; records each whole stream's time, counts messages.
pub(crate) async fn stream_worker(conn: Conn, size: usize, window: Window) -> (u64, Histogram<u64>) {
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
