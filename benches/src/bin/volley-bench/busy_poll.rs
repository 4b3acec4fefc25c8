//! `volley-bench busy-poll`: 64 B ping-pong, 1 in flight, with the client's and the server's
//! threads pinned to different CPUs (split placement, through `volley::busy_poll`'s placement
//! helper, not `taskset`), where every hop of a sleeping receiver costs a cross-CPU wake-up.
//! Rows: a raw blocking std socket, a raw busy-polling pair (both sides spin on non-blocking
//! sockets: the floor), Volley in its default mode, and Volley in the busy-poll mode with the
//! client's caller in `spin_on` or awaiting on its runtime. Runs interleaved; medians of the
//! repeats; the goals of issue 20 checked at the end.
//!
//! ```sh
//! cargo build -p volley-benches --release --bin volley-bench
//! flock -o /tmp/volley-cargo.lock target/release/volley-bench busy-poll --repeats 3 --duration 2
//! ```
//!
//! Every loop runs for the given duration and stops by itself. Spinning rows keep both CPUs
//! busy while they run: run nothing else beside them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use volley::busy_poll::{BusyPoll, IdleStrategy, pin_current_thread, spin_on};
use volley::{CallOptions, Client, Request, Server, Status};
use volley_benches::{ECHO, ECHO_ID, Payload, payload};

/// Bytes per message.
const SIZE: usize = 64;

/// Options of the busy-poll comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct BusyPollArgs {
    /// The CPU of the client's threads.
    #[arg(long, default_value_t = 0)]
    client_cpu: usize,
    /// The CPU of the server's threads.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// Comma-separated rows (default: all): raw_blocking, raw_spin, volley_default,
    /// volley_busy_poll (the caller reads in Client::spin_on), volley_busy_poll_handoff (the
    /// client's poller hands outcomes to a caller in spin_on), volley_busy_poll_await (the
    /// caller awaits on its runtime thread).
    #[arg(long, value_delimiter = ',')]
    rows: Vec<String>,
}

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    RawBlocking,
    RawSpin,
    VolleyDefault,
    VolleyBusyPoll,
    VolleyBusyPollHandoff,
    VolleyBusyPollAwait,
}

impl Row {
    const ALL: [Self; 6] = [
        Self::RawBlocking,
        Self::RawSpin,
        Self::VolleyDefault,
        Self::VolleyBusyPoll,
        Self::VolleyBusyPollHandoff,
        Self::VolleyBusyPollAwait,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::RawBlocking => "raw_blocking",
            Self::RawSpin => "raw_spin",
            Self::VolleyDefault => "volley_default",
            Self::VolleyBusyPoll => "volley_busy_poll",
            Self::VolleyBusyPollHandoff => "volley_busy_poll_handoff",
            Self::VolleyBusyPollAwait => "volley_busy_poll_await",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::RawBlocking => "std TcpStream, blocking read/write",
            Self::RawSpin => "std TcpStream, non-blocking, both sides spin on read (the floor)",
            Self::VolleyDefault => "reader task, inline handler, current-thread runtimes",
            Self::VolleyBusyPoll => "server: Spin poller, inline handler; client: caller reads in Client::spin_on (Spin), poller parked",
            Self::VolleyBusyPollHandoff => "server as above; client: yielding poller hands outcomes to a caller in spin_on (yielding)",
            Self::VolleyBusyPollAwait => "server as above; client: yielding poller wakes a caller awaiting on its runtime thread",
        }
    }
}

/// Latency of one run.
#[derive(Clone, Copy, Debug)]
struct Figures {
    calls: u64,
    p50: u64,
    p99: u64,
    p999: u64,
}

impl Figures {
    fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            calls: histogram.len(),
            p50: histogram.value_at_quantile(0.5),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
        }
    }
}

/// Where and how long a run goes.
#[derive(Clone, Copy, Debug)]
struct Run {
    client_cpu: usize,
    server_cpu: usize,
    warmup: Duration,
    duration: Duration,
}

impl Run {
    /// Calls `call` until the warm-up and the measured time have passed; records the measured
    /// calls' latencies in nanoseconds.
    fn measure(&self, mut call: impl FnMut()) -> Histogram<u64> {
        let mut histogram = Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
        let started = Instant::now();
        let measured_from = started + self.warmup;
        let end = measured_from + self.duration;
        loop {
            let before = Instant::now();
            if before >= end {
                return histogram;
            }
            call();
            if before >= measured_from {
                histogram.saturating_record(before.elapsed().as_nanos() as u64);
            }
        }
    }
}

fn pin(cpu: usize) {
    if let Err(err) = pin_current_thread(cpu) {
        panic!("cannot pin to CPU {cpu}: {err}");
    }
}

fn raw_blocking(run: Run) -> Histogram<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        pin(run.server_cpu);
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        let mut buf = [0u8; SIZE];
        // Ends at the client's EOF.
        while socket.read_exact(&mut buf).is_ok() {
            socket.write_all(&buf).expect("write");
        }
    });
    let client = std::thread::spawn(move || {
        pin(run.client_cpu);
        let mut socket = TcpStream::connect(address).expect("connect");
        socket.set_nodelay(true).expect("nodelay");
        let mut buf = [0x5a; SIZE];
        run.measure(|| {
            socket.write_all(&buf).expect("write");
            socket.read_exact(&mut buf).expect("read");
        })
    });
    let histogram = client.join().expect("client");
    server.join().expect("server");
    histogram
}

/// Reads exactly `buf.len()` bytes from a non-blocking socket, spinning (no `PAUSE`) while it
/// has none; `false` at EOF.
fn spin_read(socket: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match socket.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => got += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("read: {err}"),
        }
    }
    true
}

fn spin_write(socket: &mut TcpStream, buf: &[u8]) {
    let mut sent = 0;
    while sent < buf.len() {
        match socket.write(&buf[sent..]) {
            Ok(n) => sent += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("write: {err}"),
        }
    }
}

fn raw_spin(run: Run) -> Histogram<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        pin(run.server_cpu);
        let (mut socket, _) = listener.accept().expect("accept");
        socket.set_nodelay(true).expect("nodelay");
        socket.set_nonblocking(true).expect("non-blocking");
        let mut buf = [0u8; SIZE];
        while spin_read(&mut socket, &mut buf) {
            spin_write(&mut socket, &buf);
        }
    });
    let client = std::thread::spawn(move || {
        pin(run.client_cpu);
        let mut socket = TcpStream::connect(address).expect("connect");
        socket.set_nodelay(true).expect("nodelay");
        socket.set_nonblocking(true).expect("non-blocking");
        let mut buf = [0x5a; SIZE];
        run.measure(|| {
            spin_write(&mut socket, &buf);
            assert!(spin_read(&mut socket, &mut buf), "the server closed");
        })
    });
    let histogram = client.join().expect("client");
    server.join().expect("server");
    histogram
}

/// A Volley echo server (inline handler) on a current-thread runtime whose thread is pinned
/// to the server's CPU; `busy_poll` puts its connections' pollers there too. Stops when
/// `stop` is dropped or sent.
fn volley_server(
    run: Run,
    busy_poll: Option<BusyPoll>,
) -> (volley::net::Address, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>) {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        pin(run.server_cpu);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let mut builder = Server::builder().unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()));
            if let Some(busy_poll) = busy_poll {
                builder = builder.busy_poll(busy_poll.pin_to_cpu(run.server_cpu));
            }
            let handle = builder.build().expect("server").serve("127.0.0.1:0").await.expect("serve");
            address_tx.send(handle.local_addr().clone()).expect("address");
            let _ = stopped.await;
            handle.shutdown().await;
        });
    });
    let address = address_rx.recv().expect("server started");
    (address, stop, thread)
}

/// The busy-poll client's poller. It shares the client's CPU with the caller: beside a caller
/// that reads the socket itself (`Client::spin_on`) it parks at once and is only the backstop;
/// beside a caller that waits for it to hand the outcome over, it yields when it finds nothing
/// rather than holding the CPU for a time slice.
fn client_poller(run: Run, row: Row) -> BusyPoll {
    let idle = match row {
        Row::VolleyBusyPoll => IdleStrategy::SpinThenPark {
            spins: 0,
            yields: 0,
            min_park: Duration::from_millis(1),
            max_park: Duration::from_millis(10),
        },
        _ => IdleStrategy::SpinThenYield { spins: 0 },
    };
    BusyPoll::new(idle).pin_to_cpu(run.client_cpu)
}

fn volley(run: Run, row: Row) -> Histogram<u64> {
    let server_poll = (row != Row::VolleyDefault).then(|| BusyPoll::new(IdleStrategy::Spin));
    let (address, stop, server) = volley_server(run, server_poll);
    let client = std::thread::spawn(move || {
        pin(run.client_cpu);
        // A caller in spin_on does not drive the runtime, and the connection's writer task lives
        // there: those rows get a one-worker runtime of their own (on the client's CPU; idle
        // in epoll_wait, which a polled socket's arriving bytes do not wake).
        let runtime = match row {
            Row::VolleyBusyPoll | Row::VolleyBusyPollHandoff => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .on_thread_start(move || pin(run.client_cpu))
                .enable_all()
                .build(),
            _ => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        }
        .expect("runtime");
        let mut builder = Client::builder();
        if row != Row::VolleyDefault {
            builder = builder.busy_poll(client_poller(run, row));
        }
        let client = runtime.block_on(builder.connect(&address)).expect("connect");
        let request = payload(SIZE);
        let call = || client.unary::<Payload, Payload>(ECHO_ID, &request, CallOptions::default());
        let histogram = match row {
            Row::VolleyBusyPoll => {
                let _runtime = runtime.enter();
                run.measure(|| {
                    client.spin_on(call(), IdleStrategy::Spin).expect("call");
                })
            }
            Row::VolleyBusyPollHandoff => {
                let _runtime = runtime.enter();
                run.measure(|| {
                    spin_on(call(), IdleStrategy::SpinThenYield { spins: 0 }).expect("call");
                })
            }
            _ => run.measure(|| {
                runtime.block_on(call()).expect("call");
            }),
        };
        drop(client);
        histogram
    });
    let histogram = client.join().expect("client");
    let _ = stop.send(());
    server.join().expect("server");
    histogram
}

fn run_row(row: Row, run: Run) -> Figures {
    let histogram = match row {
        Row::RawBlocking => raw_blocking(run),
        Row::RawSpin => raw_spin(run),
        Row::VolleyDefault | Row::VolleyBusyPoll | Row::VolleyBusyPollHandoff | Row::VolleyBusyPollAwait => volley(run, row),
    };
    Figures::of(&histogram)
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn micros(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1_000.0)
}

pub(crate) fn run(
    args: &BusyPollArgs,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    mut json: Option<&mut std::fs::File>,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<Row> = if args.rows.is_empty() {
        Row::ALL.to_vec()
    } else {
        args.rows
            .iter()
            .map(|name| {
                Row::ALL
                    .into_iter()
                    .find(|row| row.name() == name)
                    .ok_or_else(|| format!("unknown row {name:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    if args.client_cpu == args.server_cpu {
        return Err("split placement: --client-cpu and --server-cpu must differ".into());
    }
    let run = Run {
        client_cpu: args.client_cpu,
        server_cpu: args.server_cpu,
        warmup,
        duration,
    };
    eprintln!(
        "volley-bench busy-poll: client threads on CPU {}, server threads on CPU {}; 64 B, 1 in flight",
        run.client_cpu, run.server_cpu
    );
    let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); rows.len()];
    for repeat in 0..repeats {
        for (index, &row) in rows.iter().enumerate() {
            let figures = run_row(row, run);
            eprintln!(
                "  repeat {repeat} {:<24} calls {:>8}  p50 {:>6} µs  p99 {:>6} µs  p99.9 {:>6} µs",
                row.name(),
                figures.calls,
                micros(figures.p50),
                micros(figures.p99),
                micros(figures.p999)
            );
            if let Some(json) = json.as_mut() {
                writeln!(
                    json,
                    "{}",
                    serde_json::json!({
                        "bench": "busy_poll", "row": row.name(), "repeat": repeat, "client_cpu": run.client_cpu,
                        "server_cpu": run.server_cpu, "calls": figures.calls, "p50_ns": figures.p50,
                        "p99_ns": figures.p99, "p999_ns": figures.p999,
                    })
                )?;
            }
            runs[index].push(figures);
        }
    }
    let medians: Vec<(Row, Figures)> = rows
        .iter()
        .zip(&runs)
        .map(|(&row, figures)| {
            let pick = |f: fn(&Figures) -> u64| median(&mut figures.iter().map(f).collect::<Vec<_>>());
            (
                row,
                Figures {
                    calls: pick(|f| f.calls),
                    p50: pick(|f| f.p50),
                    p99: pick(|f| f.p99),
                    p999: pick(|f| f.p999),
                },
            )
        })
        .collect();
    let find = |wanted: Row| medians.iter().find(|(row, _)| *row == wanted).map(|(_, figures)| *figures);
    let floor = find(Row::RawSpin);
    println!(
        "\n64 B unary, 1 in flight, split placement (client CPU {}, server CPU {}); medians of {repeats} run(s)",
        run.client_cpu, run.server_cpu
    );
    println!("| row | what | calls/run | p50 µs | p99 µs | p99.9 µs | p50 / raw_spin |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (row, figures) in &medians {
        let ratio = floor.map_or_else(|| "-".to_owned(), |floor| format!("{:.2}", figures.p50 as f64 / floor.p50 as f64));
        println!(
            "| {} | {} | {} | {} | {} | {} | {ratio} |",
            row.name(),
            row.describe(),
            figures.calls,
            micros(figures.p50),
            micros(figures.p99),
            micros(figures.p999)
        );
    }
    if let (Some(polled), Some(blocking), Some(floor)) = (find(Row::VolleyBusyPoll), find(Row::RawBlocking), floor) {
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        let against_blocking = polled.p50 as f64 / blocking.p50 as f64;
        let against_floor = polled.p50 as f64 / floor.p50 as f64;
        let tail = polled.p999 as f64 / polled.p50 as f64;
        println!("\nGoals (issue 20), volley_busy_poll:");
        println!(
            "- p50 <= 0.5x raw_blocking p50: {against_blocking:.2}x, {}",
            verdict(against_blocking <= 0.5)
        );
        println!("- p50 <= 1.1x raw_spin p50: {against_floor:.2}x, {}", verdict(against_floor <= 1.1));
        println!("- p99.9 <= 3x its p50: {tail:.2}x, {}", verdict(tail <= 3.0));
    }
    Ok(())
}
