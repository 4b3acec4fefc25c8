//! Soak: normal traffic and a rapid-reset attacker against one server, for a chosen duration, in
//! one process on loopback. Reports failures of the normal traffic, calls over a latency bound,
//! how the attacker's connections ended, and resident memory and open file descriptors from the
//! end of warm-up to the end (they must stay flat).
//!
//! ```sh
//! cargo run -p volley-benches --release --bin volley-soak -- --duration 10m
//! cargo run -p volley-benches --bin volley-soak -- --smoke   # about 3 s
//! ```
//!
//! Concurrently, until the duration has passed:
//! - large unary calls (256 KiB each way) from two tasks sharing one connection;
//! - small unary calls, each on a fresh connection (100 a second, so closed sockets in TIME_WAIT
//!   stay far below the ephemeral port range);
//! - the rapid-reset pattern: a connection that opens calls and cancels each at once, as fast as
//!   it can; the server's default cancel budget must close it with `too many cancels`, after which
//!   the attacker pauses and connects again;
//! - connection churn: every `--churn-every`, a burst of `--churn-burst` (1,000) connections
//!   opened at once, each handshaking and one in ten making a call, then all closed.
//!
//! Exits non-zero if a normal call failed, an attacker connection was not closed by the budget,
//! memory or file descriptors grew beyond the tolerances from the end of warm-up, or resident
//! memory is still more than `--rss-over-start-mib` (16) over its start when read from 1 s to
//! 10 s after the run (issue #15). The server returns memory after each burst ends
//! (`volley::memory`); `--memory-return pool|off` measures without the allocator trim or without
//! any return, and the report gives glibc's view of the heap (in use, freed but kept).

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start: a background thread purges freed pages after
/// 1 s (`dirty_decay_ms`) and returns them to the kernel at once (`muzzy_decay_ms:0`, so
/// `MADV_DONTNEED`, which lowers RSS, rather than a lazy `MADV_FREE`). With jemalloc's defaults
/// purging runs only when the program allocates, so memory freed by a burst stays resident while
/// the process idles after it (docs/BENCHMARKS.md, "The allocator choice").
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this NUL-terminated string, once, as its `malloc_conf`; nothing writes it.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::FutureExt;
use hdrhistogram::Histogram;
use volley::memory::MemoryReturn;
use volley::{CallOptions, Client, MethodId, Request, Server, ServerHandle, Status};
use volley_benches::{ECHO, ECHO_ID, Payload, payload};

/// A unary method that sleeps 100 ms before echoing: the attacker's calls are running handlers
/// when their cancels arrive.
const SLOW: &str = "/soak.Soak/Slow";

#[derive(Parser, Debug)]
#[command(
    name = "volley-soak",
    about = "Soak Volley: normal traffic alongside a rapid-reset attacker, with memory and fd checks"
)]
struct Args {
    /// How long to run, e.g. 90s, 10m, 1h.
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    duration: Duration,
    /// Run for about 3 s (for tests); overrides --duration.
    #[arg(long)]
    smoke: bool,
    /// Normal calls slower than this count as latency-bound violations.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    latency_bound: Duration,
    /// Bytes of each large call's request (and response).
    #[arg(long, default_value_t = 256 * 1024)]
    large_size: usize,
    /// Resident memory may grow by this many MiB from the end of warm-up to the end.
    #[arg(long, default_value_t = 64)]
    rss_tolerance_mib: u64,
    /// Open file descriptors may grow by this many from the end of warm-up to the end.
    #[arg(long, default_value_t = 16)]
    fd_tolerance: u64,
    /// Connections per churn burst (0: no churn).
    #[arg(long, default_value_t = 1_000)]
    churn_burst: usize,
    /// Time between churn bursts (1 s with --smoke).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    churn_every: Duration,
    /// Resident memory may be at most this many MiB over its start, once the run has ended and
    /// its connections have closed (read for up to 10 s).
    #[arg(long, default_value_t = 16)]
    rss_over_start_mib: u64,
    /// What the server does when a burst of connections has ended (`volley::memory`): `full`
    /// (the default: release the pool's idle buffers and trim the allocator), `pool` (release
    /// the pool's idle buffers only) or `off`; for measuring each part's share.
    #[arg(long, value_enum, default_value_t = MemoryReturnMode::Full)]
    memory_return: MemoryReturnMode,
}

/// `--memory-return`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum MemoryReturnMode {
    Full,
    Pool,
    Off,
}

impl MemoryReturnMode {
    fn config(self) -> MemoryReturn {
        match self {
            Self::Full => MemoryReturn::default(),
            Self::Pool => MemoryReturn {
                trim_allocator: false,
                ..MemoryReturn::default()
            },
            Self::Off => MemoryReturn::disabled(),
        }
    }
}

/// Parses `500ms`, `30s`, `10m`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 10m or 1h"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("unknown unit `{unit}` in `{text}`; use ms, s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// What the loops count.
#[derive(Default)]
struct Counters {
    large_ok: AtomicU64,
    fresh_ok: AtomicU64,
    failures: AtomicU64,
    violations: AtomicU64,
    attack_connections: AtomicU64,
    attack_kicked: AtomicU64,
    /// Closed by the server, but the client saw the socket fail before it read the GoAway.
    attack_closed_without_reason: AtomicU64,
    attack_not_kicked: AtomicU64,
    attack_calls: AtomicU64,
    churn_bursts: AtomicU64,
    churn_connections: AtomicU64,
    /// The first few failure messages, for the report.
    first_failures: Mutex<Vec<String>>,
    large_latency: Mutex<Option<Histogram<u64>>>,
    fresh_latency: Mutex<Option<Histogram<u64>>>,
}

impl Counters {
    fn new() -> Self {
        let histogram = || Mutex::new(Some(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")));
        Self {
            large_latency: histogram(),
            fresh_latency: histogram(),
            ..Self::default()
        }
    }

    fn fail(&self, what: &str, status: &Status) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failures.lock().expect("not poisoned");
        if first.len() < 10 {
            first.push(format!("{what}: {status}"));
        }
    }

    fn record(&self, histogram: &Mutex<Option<Histogram<u64>>>, elapsed: Duration, bound: Duration) {
        if elapsed > bound {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(histogram) = histogram.lock().expect("not poisoned").as_mut() {
            histogram.saturating_record(elapsed.as_micros() as u64);
        }
    }
}

/// The allocator's view of the heap, to tell memory the program holds from memory the
/// allocator keeps after it was freed.
struct Heap {
    in_use: usize,
    mmapped: usize,
    free_kept: usize,
}

/// glibc's `mallinfo2`, summed over every arena; `None` with another allocator.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"), not(feature = "jemalloc")))]
#[allow(unsafe_code)]
fn heap() -> Option<Heap> {
    /// `struct mallinfo2` of glibc 2.33 and later: ten `size_t`s.
    #[repr(C)]
    struct MallInfo2 {
        arena: usize,
        ordblks: usize,
        smblks: usize,
        hblks: usize,
        hblkhd: usize,
        usmblks: usize,
        fsmblks: usize,
        uordblks: usize,
        fordblks: usize,
        keepcost: usize,
    }
    unsafe extern "C" {
        fn mallinfo2() -> MallInfo2;
    }
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let info = unsafe { mallinfo2() };
    let _ = (
        info.arena,
        info.ordblks,
        info.smblks,
        info.hblks,
        info.usmblks,
        info.fsmblks,
        info.keepcost,
    );
    Some(Heap {
        in_use: info.uordblks + info.hblkhd,
        mmapped: info.hblkhd,
        free_kept: info.fordblks,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"), not(feature = "jemalloc"))))]
fn heap() -> Option<Heap> {
    None
}

/// Asks glibc to give every arena's free pages back (`malloc_trim(0)`), after the verdict has
/// been read: the RSS it frees is what the allocator kept, not what the program holds. A
/// diagnostic only; returns how long it took, `None` with another allocator.
#[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"), not(feature = "jemalloc")))]
#[allow(unsafe_code)]
fn trim_heap() -> Option<Duration> {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    let started = Instant::now();
    // SAFETY: malloc_trim only takes the arenas' locks and returns free pages to the kernel.
    unsafe { malloc_trim(0) };
    Some(started.elapsed())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc"), not(feature = "jemalloc"))))]
fn trim_heap() -> Option<Duration> {
    None
}

/// Resident memory and open file descriptors of this process.
#[derive(Clone, Copy, Debug)]
struct Sample {
    rss_kib: u64,
    fds: u64,
}

fn sample() -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64);
    Sample { rss_kib, fds }
}

async fn start_server(memory_return: MemoryReturn) -> ServerHandle {
    Server::builder()
        .memory_return(memory_return)
        .unary(
            ECHO,
            |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) },
        )
        .unary(SLOW, |request: Request<Payload>| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Status>(request.into_inner())
        })
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// Large calls on one shared connection until `stop`.
async fn large_calls(client: Client, size: usize, bound: Duration, counters: Arc<Counters>, stop: Arc<AtomicBool>) {
    let request = Payload {
        data: (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>().into(),
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let options = CallOptions::default().timeout(Duration::from_secs(10));
        match client.unary::<_, Payload>(ECHO_ID, &request, options).await {
            Ok(reply) if reply == request => {
                counters.large_ok.fetch_add(1, Ordering::Relaxed);
                counters.record(&counters.large_latency, started.elapsed(), bound);
            }
            Ok(reply) => counters.fail(
                "large call",
                &Status::data_loss(format!("{} bytes came back changed", reply.data.len())),
            ),
            Err(status) => counters.fail("large call", &status),
        }
    }
}

/// One small call per fresh connection, 100 a second, until `stop`.
async fn fresh_connections(address: volley::net::Address, bound: Duration, counters: Arc<Counters>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let request = payload(64);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let started = Instant::now();
        let call = async {
            let client = Client::connect(&address)
                .await
                .map_err(|err| Status::unavailable(format!("connect: {err}")))?;
            let reply: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await?;
            client.close();
            Ok::<_, Status>(reply)
        };
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok(reply)) if reply == request => {
                counters.fresh_ok.fetch_add(1, Ordering::Relaxed);
                counters.record(&counters.fresh_latency, started.elapsed(), bound);
            }
            Ok(Ok(_)) => counters.fail("fresh connection", &Status::data_loss("the reply came back changed")),
            Ok(Err(status)) => counters.fail("fresh connection", &status),
            Err(_) => counters.fail("fresh connection", &Status::deadline_exceeded("no reply within 5 s")),
        }
    }
}

/// Calls an attacker connection opens and cancels at most before it counts as not kicked: far
/// beyond the default cancel budget's burst of 1,000.
const MAX_ATTACK_CALLS: u64 = 50_000;

/// The rapid-reset pattern: open a call, cancel it at once, repeat, on one connection until the
/// server closes it; pause; again, until `stop`.
async fn rapid_reset(address: volley::net::Address, pause: Duration, counters: Arc<Counters>, stop: Arc<AtomicBool>) {
    let request = payload(16);
    let method = MethodId::from_name(SLOW);
    while !stop.load(Ordering::Relaxed) {
        let Ok(client) = Client::connect(&address).await else {
            tokio::time::sleep(pause).await;
            continue;
        };
        counters.attack_connections.fetch_add(1, Ordering::Relaxed);
        let mut kicked = false;
        for i in 0..MAX_ATTACK_CALLS {
            if client.is_closed() {
                kicked = true;
                break;
            }
            // One poll writes the Request; dropping the future sends the Cancel.
            let _ = client.unary::<_, Payload>(method, &request, CallOptions::default()).now_or_never();
            counters.attack_calls.fetch_add(1, Ordering::Relaxed);
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        if !kicked {
            // The last cancels may still be on their way: give the server a moment to answer.
            for _ in 0..100 {
                if client.is_closed() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let reason = client
            .unary::<_, Payload>(ECHO_ID, &request, CallOptions::default().timeout(Duration::from_secs(1)))
            .await
            .err()
            .map(|status| status.message().to_owned())
            .unwrap_or_default();
        if !client.is_closed() {
            counters.attack_not_kicked.fetch_add(1, Ordering::Relaxed);
            eprintln!("an attacker connection was not closed after {MAX_ATTACK_CALLS} cancels");
        } else if reason.contains("too many cancels") {
            counters.attack_kicked.fetch_add(1, Ordering::Relaxed);
        } else {
            // The server sent its GoAway and closed while our cancels were still arriving: its
            // close then resets the socket, and the reset can overtake the GoAway.
            counters.attack_closed_without_reason.fetch_add(1, Ordering::Relaxed);
        }
        client.close();
        tokio::time::sleep(pause).await;
    }
}

/// The global allocator this build uses (features `mimalloc`, `jemalloc`).
const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else if cfg!(feature = "jemalloc") {
    "jemalloc (background purge after 1 s)"
} else {
    "system"
};

/// When memory after the run is first read (1 s): twice the server's default settle period
/// after a burst ([`volley::memory::DEFAULT_SETTLE`]), so its memory return has run.
const FIRST_READING_AFTER: Duration = Duration::from_secs(1);

/// Connections opened per churn burst that also make one call (one in ten).
const CHURN_CALL_EVERY: usize = 10;

/// Connection churn: every `every`, `burst` connections opened at once (one in ten makes a call),
/// held until all are open, then closed; until `stop`.
async fn churn(address: volley::net::Address, burst: usize, every: Duration, counters: Arc<Counters>, stop: Arc<AtomicBool>) {
    let request = payload(64);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(every).await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let opens: Vec<_> = (0..burst)
            .map(|i| {
                let (address, request) = (address.clone(), request.clone());
                tokio::spawn(async move {
                    let client = Client::connect(&address)
                        .await
                        .map_err(|err| Status::unavailable(format!("connect: {err}")))?;
                    if i % CHURN_CALL_EVERY == 0 {
                        let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await?;
                    }
                    Ok::<_, Status>(client)
                })
            })
            .collect();
        let mut clients = Vec::with_capacity(burst);
        for open in opens {
            match tokio::time::timeout(Duration::from_secs(10), open).await {
                Ok(Ok(Ok(client))) => clients.push(client),
                Ok(Ok(Err(status))) => counters.fail("churn connection", &status),
                Ok(Err(_)) => counters.fail("churn connection", &Status::internal("the connect task panicked")),
                Err(_) => counters.fail("churn connection", &Status::deadline_exceeded("not connected within 10 s")),
            }
        }
        counters.churn_connections.fetch_add(clients.len() as u64, Ordering::Relaxed);
        counters.churn_bursts.fetch_add(1, Ordering::Relaxed);
        for client in &clients {
            client.close();
        }
    }
}

fn percentiles(histogram: &Mutex<Option<Histogram<u64>>>) -> String {
    match histogram.lock().expect("not poisoned").as_ref() {
        Some(h) if !h.is_empty() => format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        ),
        _ => "no calls".to_owned(),
    }
}

fn progress(elapsed: Duration, counters: &Counters, now: Sample) -> String {
    format!(
        "t={:>5.0}s rss={:.1} MiB fds={} large={} fresh={} failures={} over_bound={} attackers={} kicked={} churned={}",
        elapsed.as_secs_f64(),
        now.rss_kib as f64 / 1024.0,
        now.fds,
        counters.large_ok.load(Ordering::Relaxed),
        counters.fresh_ok.load(Ordering::Relaxed),
        counters.failures.load(Ordering::Relaxed),
        counters.violations.load(Ordering::Relaxed),
        counters.attack_connections.load(Ordering::Relaxed),
        counters.attack_kicked.load(Ordering::Relaxed),
        counters.churn_connections.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // A churn burst holds a descriptor per client and per server socket at once.
    let fd_limit = volley_benches::raise_fd_limit(4 * args.churn_burst as u64 + 1024);
    let duration = if args.smoke { Duration::from_secs(3) } else { args.duration };
    // Warm-up: buffers, pools and allocator arenas reach their steady size before the baseline.
    let warm_up = (duration / 10).min(Duration::from_secs(30));
    let report_every = if args.smoke {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(30)
    };
    let churn_every = if args.smoke { Duration::from_secs(1) } else { args.churn_every };
    let attack_pause = if args.smoke {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(200)
    };

    let server = start_server(args.memory_return.config()).await;
    let address = server.local_addr().clone();
    let counters = Arc::new(Counters::new());
    let stop = Arc::new(AtomicBool::new(false));
    let start = sample();
    println!(
        "volley-soak: {duration:?} against {address}; large calls of {} bytes; latency bound {:?}",
        args.large_size, args.latency_bound
    );
    println!(
        "start: rss={:.1} MiB fds={} (open-file limit {fd_limit}); churn: {} connections every {churn_every:?}; allocator: {ALLOCATOR}",
        start.rss_kib as f64 / 1024.0,
        start.fds,
        args.churn_burst
    );

    let large_client = Client::connect(&address).await.expect("connect the large-call client");
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(tokio::spawn(large_calls(
            large_client.clone(),
            args.large_size,
            args.latency_bound,
            counters.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(fresh_connections(
        address.clone(),
        args.latency_bound,
        counters.clone(),
        stop.clone(),
    )));
    if args.churn_burst > 0 {
        tasks.push(tokio::spawn(churn(
            address.clone(),
            args.churn_burst,
            churn_every,
            counters.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(rapid_reset(
        address.clone(),
        attack_pause,
        counters.clone(),
        stop.clone(),
    )));

    let began = Instant::now();
    tokio::time::sleep(warm_up).await;
    let baseline = sample();
    println!("after warm-up: {}", progress(began.elapsed(), &counters, baseline));
    let end = began + duration;
    while Instant::now() < end {
        let next = (Instant::now() + report_every).min(end);
        tokio::time::sleep_until(next.into()).await;
        println!("{}", progress(began.elapsed(), &counters, sample()));
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a soak loop panicked");
    }
    // Let the closed connections finish closing on the server (the large-call one stays open).
    for _ in 0..500 {
        if server.connections() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finish = sample();
    // Memory after the run, against the start: the closed connections' memory must come back
    // (the large-call connection is still open), within 10 s. The first reading is taken
    // `FIRST_READING_AFTER` the end, so every run's figure includes the server's memory return
    // after the last burst (`volley::memory`), however close to the end that burst came.
    let over_start_kib = args.rss_over_start_mib * 1024;
    let settle_started = Instant::now();
    tokio::time::sleep(FIRST_READING_AFTER).await;
    let mut settled = sample();
    while settled.rss_kib > start.rss_kib + over_start_kib && settle_started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = sample();
    }
    let settled_over_start_kib = settled.rss_kib.saturating_sub(start.rss_kib);
    if let Some(heap) = heap() {
        println!(
            "heap after the run (glibc mallinfo2, every arena): {:.1} MiB in use ({:.1} MiB of it mmapped), {:.1} MiB freed and kept by the allocator (resident or, once trimmed, not)",
            heap.in_use as f64 / (1024.0 * 1024.0),
            heap.mmapped as f64 / (1024.0 * 1024.0),
            heap.free_kept as f64 / (1024.0 * 1024.0),
        );
    }
    let settled_ok = settled_over_start_kib <= over_start_kib;
    if let Some(took) = trim_heap() {
        let trimmed = sample();
        println!(
            "diagnostic, after the verdict was read: rss {:.1} MiB after glibc's malloc_trim(0) (which took {:.2} ms), {:.1} MiB over the start (the rest of the settled rss was free memory glibc kept)",
            trimmed.rss_kib as f64 / 1024.0,
            took.as_secs_f64() * 1000.0,
            trimmed.rss_kib.saturating_sub(start.rss_kib) as f64 / 1024.0,
        );
    }

    let failures = counters.failures.load(Ordering::Relaxed);
    let not_kicked = counters.attack_not_kicked.load(Ordering::Relaxed);
    let kicked = counters.attack_kicked.load(Ordering::Relaxed);
    let closed_without_reason = counters.attack_closed_without_reason.load(Ordering::Relaxed);
    let rss_growth_kib = finish.rss_kib.saturating_sub(baseline.rss_kib);
    let fd_growth = finish.fds.saturating_sub(baseline.fds);
    let rss_ok = rss_growth_kib <= args.rss_tolerance_mib * 1024;
    let fds_ok = fd_growth <= args.fd_tolerance;
    println!("end: {}", progress(began.elapsed(), &counters, finish));
    println!(
        "large calls: {} ok; {}",
        counters.large_ok.load(Ordering::Relaxed),
        percentiles(&counters.large_latency)
    );
    println!(
        "fresh-connection calls: {} ok; {}",
        counters.fresh_ok.load(Ordering::Relaxed),
        percentiles(&counters.fresh_latency)
    );
    println!(
        "normal-traffic failures: {failures}; calls over {:?}: {}",
        args.latency_bound,
        counters.violations.load(Ordering::Relaxed)
    );
    for failure in counters.first_failures.lock().expect("not poisoned").iter() {
        println!("  {failure}");
    }
    println!(
        "rapid reset: {} connections, {} calls opened and cancelled; {kicked} closed with `too many cancels`, \
         {closed_without_reason} closed with the socket failing before the GoAway was read, {not_kicked} not closed",
        counters.attack_connections.load(Ordering::Relaxed),
        counters.attack_calls.load(Ordering::Relaxed),
    );
    println!(
        "memory: rss {:.1} MiB at start, {:.1} MiB after warm-up, {:.1} MiB at the end (growth {:.1} MiB, tolerance {} MiB)",
        start.rss_kib as f64 / 1024.0,
        baseline.rss_kib as f64 / 1024.0,
        finish.rss_kib as f64 / 1024.0,
        rss_growth_kib as f64 / 1024.0,
        args.rss_tolerance_mib
    );
    println!(
        "memory after the run: rss {:.1} MiB, {:.1} MiB over the start after {:.1} s (limit {} MiB over the start)",
        settled.rss_kib as f64 / 1024.0,
        settled_over_start_kib as f64 / 1024.0,
        settle_started.elapsed().as_secs_f64(),
        args.rss_over_start_mib
    );
    println!(
        "connection churn: {} bursts, {} connections; the server returned memory {} times after a burst ended",
        counters.churn_bursts.load(Ordering::Relaxed),
        counters.churn_connections.load(Ordering::Relaxed),
        server.memory_returns()
    );
    println!(
        "fds: {} at start, {} after warm-up, {} at the end (growth {fd_growth}, tolerance {})",
        start.fds, baseline.fds, finish.fds, args.fd_tolerance
    );
    let summary = serde_json::json!({
        "type": "soak_summary",
        "allocator": ALLOCATOR,
        "duration_s": duration.as_secs_f64(),
        "large_ok": counters.large_ok.load(Ordering::Relaxed),
        "fresh_ok": counters.fresh_ok.load(Ordering::Relaxed),
        "failures": failures,
        "over_latency_bound": counters.violations.load(Ordering::Relaxed),
        "attack_connections": counters.attack_connections.load(Ordering::Relaxed),
        "attack_kicked": kicked,
        "attack_closed_without_reason": closed_without_reason,
        "attack_not_kicked": not_kicked,
        "churn_bursts": counters.churn_bursts.load(Ordering::Relaxed),
        "churn_connections": counters.churn_connections.load(Ordering::Relaxed),
        "memory_return": format!("{:?}", args.memory_return).to_lowercase(),
        "memory_returns": server.memory_returns(),
        "rss_kib": { "start": start.rss_kib, "baseline": baseline.rss_kib, "end": finish.rss_kib, "settled": settled.rss_kib },
        "fds": { "start": start.fds, "baseline": baseline.fds, "end": finish.fds },
    });
    println!("{summary}");
    server.abort();

    let passed = failures == 0 && not_kicked == 0 && kicked > 0 && rss_ok && fds_ok && settled_ok;
    println!("{}", if passed { "PASS" } else { "FAIL" });
    if passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
