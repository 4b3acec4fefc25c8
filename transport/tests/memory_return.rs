//! Resident memory comes back after bursts (issue #15): a server in a child process (this test
//! binary run again, so no other test's allocations share its heap) takes 20 bursts of 1,000
//! connections opened at once and then closed, and 5 rounds of 4,000 unary calls held open on
//! one connection and then answered. After each burst, within 10 s:
//! - its live heap (bytes allocated and not freed, counted by this binary's global allocator,
//!   which defers to the system allocator) is back within 1 MiB of the idle baseline: the
//!   transport frees what a connection or a call allocated;
//! - its RSS (VmRSS from /proc) is back within 16 MiB of the idle baseline: what the allocator
//!   keeps resident on top stays bounded, however many bursts came before.
//!
//! Peak heap and RSS per idle connection must stay at or under 32 KiB, and heap per open call at
//! or under 2 KiB beyond its payload.
//!
//! The child serves on a multi-thread runtime with two workers (a server's usual shape) and the
//! system allocator (glibc malloc on Linux). `VOLLEY_RSS_REPORT=1` prints every reading;
//! `VOLLEY_RSS_BURSTS`, `VOLLEY_RSS_ROUNDS`, `VOLLEY_RSS_SOFT=1` (report instead of fail) and
//! `VOLLEY_RSS_WRAP=heaptrack` are for diagnosis.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

/// A message whose decoding allocates nothing (a `Bytes` field shares the read buffer).
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

const HOLD: &str = "/rss.Test/Hold";
const RELEASE: &str = "/rss.Test/Release";
const HELD: &str = "/rss.Test/Held";
const HEAP: &str = "/rss.Test/Heap";
const CHILD_ENV: &str = "VOLLEY_RSS_CHILD";
const TEST_NAME: &str = "rss_comes_back_after_bursts_of_connections_and_of_open_calls";

const BURSTS: usize = 20;
const BURST_CONNECTIONS: usize = 1_000;
/// Files a process keeps open beside a burst's sockets (the runtime, the listener, the probe, std
/// streams), with room to spare.
const FILES_BESIDE_A_BURST: u64 = 64;
const ROUNDS: usize = 5;
const OPEN_CALLS: usize = 4_000;
/// Payload of each held call's request, in bytes.
const CALL_PAYLOAD: usize = 64;
const TOLERANCE_KIB: u64 = 16 * 1024;
/// Live heap a burst may leave behind (1 MiB): pooled buffers (at most 2 MiB of capacity, mostly
/// untouched) aside, a connection that ended must free everything it allocated.
const HEAP_TOLERANCE_KIB: u64 = 1024;
const SETTLE: Duration = Duration::from_secs(10);
const MAX_IDLE_CONNECTION_BYTES: f64 = 32.0 * 1024.0;
const MAX_OPEN_CALL_BYTES: f64 = 2.0 * 1024.0 + CALL_PAYLOAD as f64;

static HELD_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes live: what the process holds, as opposed to what
/// the allocator keeps resident.
struct Live;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers every operation to the system allocator; only counts bytes.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Live {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Live = Live;
static RELEASED: Notify = Notify::const_new();

/// The child: serves until its stdin closes.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = Server::builder()
            .unary(HOLD, |request: Request<Payload>| async move {
                let released = RELEASED.notified();
                HELD_CALLS.fetch_add(1, Ordering::SeqCst);
                released.await;
                HELD_CALLS.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Status>(Payload {
                    data: request.into_inner().data.slice(..0),
                })
            })
            .unary_inline(RELEASE, |_: Request<Payload>| {
                RELEASED.notify_waiters();
                Ok::<_, Status>(Payload::default())
            })
            .unary_inline(HELD, |_: Request<Payload>| {
                let held = HELD_CALLS.load(Ordering::SeqCst) as u64;
                Ok::<_, Status>(Payload {
                    data: Bytes::copy_from_slice(&held.to_le_bytes()),
                })
            })
            .unary_inline(HEAP, |_: Request<Payload>| {
                let live = LIVE_BYTES.load(Ordering::Relaxed) as u64;
                Ok::<_, Status>(Payload {
                    data: Bytes::copy_from_slice(&live.to_le_bytes()),
                })
            })
            .build()
            .expect("valid server")
            .serve("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        println!("ADDRESS {}", server.local_addr());
        std::io::stdout().flush().expect("stdout");
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    });
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("a VmRSS line")
}

/// Raises the soft limit on open files towards `wanted` (up to the hard limit); returns the soft
/// limit in force.
fn raise_fd_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    if soft >= wanted || target <= soft {
        return soft;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    if setrlimit(Resource::Nofile, raised).is_ok() {
        target
    } else {
        soft
    }
}

struct ServerProcess {
    child: Child,
    address: String,
}

impl ServerProcess {
    fn start() -> Self {
        // VOLLEY_RSS_WRAP runs the child under a profiler, e.g. `heaptrack` (diagnosis only).
        let exe = std::env::current_exe().expect("own path");
        let mut command = match std::env::var("VOLLEY_RSS_WRAP") {
            Ok(wrap) => {
                let mut words = wrap.split_whitespace();
                let mut command = Command::new(words.next().expect("a wrapper command"));
                command.args(words).arg(exe);
                command
            }
            Err(_) => Command::new(exe),
        };
        let mut child = command
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let address = lines
            .by_ref()
            .map(|line| line.expect("child stdout"))
            // libtest may print `test NAME ... ` on the same line first.
            .find_map(|line| line.split_once("ADDRESS ").map(|(_, address)| address.trim().to_owned()))
            .expect("the child prints its address");
        // Keep reading what the child prints after (libtest's result lines), so it never writes
        // into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, address }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn report(line: std::fmt::Arguments<'_>) {
    if std::env::var_os("VOLLEY_RSS_REPORT").is_some() {
        eprintln!("{line}");
    }
}

/// Readings of the server process, in KiB.
#[derive(Clone, Copy, Debug)]
struct Reading {
    rss: u64,
    heap: u64,
}

/// The server process, and a connection to ask it how much heap is live.
struct Probe<'a> {
    server: &'a ServerProcess,
    client: Client,
}

impl Probe<'_> {
    async fn read(&self) -> Reading {
        let reply: Payload = self
            .client
            .unary(MethodId::from_name(HEAP), &Payload::default(), CallOptions::default())
            .await
            .expect("heap");
        let heap = u64::from_le_bytes(reply.data[..8].try_into().expect("8 bytes")) / 1024;
        Reading {
            rss: self.server.rss_kib(),
            heap,
        }
    }

    /// Waits until the server has freed what the burst allocated (live heap back within
    /// [`HEAP_TOLERANCE_KIB`]) and its RSS is within [`TOLERANCE_KIB`] of `baseline`; returns how
    /// long that took and the reading. Fails after [`SETTLE`].
    async fn settles(&self, baseline: Reading, what: &str) -> (Duration, Reading) {
        let started = Instant::now();
        loop {
            let now = self.read().await;
            if now.heap <= baseline.heap + HEAP_TOLERANCE_KIB && now.rss <= baseline.rss + TOLERANCE_KIB {
                return (started.elapsed(), now);
            }
            if started.elapsed() >= SETTLE {
                let message = format!(
                    "{what}: not back within {SETTLE:?}: RSS {} KiB (baseline {} KiB, tolerance {TOLERANCE_KIB} KiB), \
                     live heap {} KiB (baseline {} KiB, tolerance {HEAP_TOLERANCE_KIB} KiB)",
                    now.rss, baseline.rss, now.heap, baseline.heap
                );
                assert!(std::env::var_os("VOLLEY_RSS_SOFT").is_some(), "{message}");
                report(format_args!("{message}"));
                return (started.elapsed(), now);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn held(client: &Client) -> usize {
    let reply: Payload = client
        .unary(MethodId::from_name(HELD), &Payload::default(), CallOptions::default())
        .await
        .expect("held count");
    u64::from_le_bytes(reply.data[..8].try_into().expect("8 bytes")) as usize
}

#[test]
fn rss_comes_back_after_bursts_of_connections_and_of_open_calls() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return serve();
    }
    // A burst is 1,000 sockets in each process: raise the common soft limit of 1,024 open files
    // (the child inherits it). Where the hard limit is lower, bursts shrink to fit, and say so.
    let limit = raise_fd_limit(4 * BURST_CONNECTIONS as u64);
    let burst_connections = BURST_CONNECTIONS.min(limit.saturating_sub(FILES_BESIDE_A_BURST) as usize);
    assert!(
        burst_connections >= BURST_CONNECTIONS / 2,
        "the open-file limit is {limit}; this test needs {BURST_CONNECTIONS} (ulimit -n)"
    );
    if burst_connections < BURST_CONNECTIONS {
        eprintln!(
            "the open-file limit is {limit} and cannot be raised: bursts of {burst_connections} connections, not {BURST_CONNECTIONS}"
        );
    }
    let server = ServerProcess::start();
    let address = server.address.as_str();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let started = Instant::now();

    // Warm up: a connection, a call, closed. The probe's connection stays open throughout.
    let probe = runtime.block_on(async {
        let client = Client::connect(address).await.expect("connect");
        assert_eq!(held(&client).await, 0);
        client.close();
        let probe = Probe {
            server: &server,
            client: Client::connect(address).await.expect("connect"),
        };
        probe.read().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        probe
    });
    let baseline = runtime.block_on(probe.read());
    report(format_args!("idle baseline: {baseline:?}"));

    let mut worst_connection = (0.0f64, 0.0f64);
    for burst in 0..env_count("VOLLEY_RSS_BURSTS", BURSTS) {
        let (before, peak) = runtime.block_on(async {
            let before = probe.read().await;
            let connects: Vec<_> = (0..burst_connections)
                .map(|_| tokio::spawn(Client::connect(address.to_owned())))
                .collect();
            let mut clients = Vec::with_capacity(burst_connections);
            for connect in connects {
                clients.push(connect.await.expect("connect task").expect("connect"));
            }
            // Every connection has finished its handshake; let the server's side settle too.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let peak = probe.read().await;
            for client in &clients {
                client.close();
            }
            (before, peak)
        });
        let per = |now: u64, then: u64| now.saturating_sub(then) as f64 * 1024.0 / burst_connections as f64;
        let (rss_per, heap_per) = (per(peak.rss, before.rss), per(peak.heap, before.heap));
        worst_connection = (worst_connection.0.max(rss_per), worst_connection.1.max(heap_per));
        let (took, now) = runtime.block_on(probe.settles(baseline, &format!("connection burst {burst}")));
        report(format_args!(
            "burst {burst}: peak {peak:?} ({rss_per:.0} B RSS, {heap_per:.0} B heap per idle connection); back to {now:?} in {took:?}"
        ));
    }

    let mut worst_call = (0.0f64, 0.0f64);
    runtime.block_on(async {
        let client = Client::connect(address).await.expect("connect");
        for round in 0..env_count("VOLLEY_RSS_ROUNDS", ROUNDS) {
            let before = probe.read().await;
            let request = Payload {
                data: Bytes::from(vec![0x5a; CALL_PAYLOAD]),
            };
            let calls: Vec<_> = (0..OPEN_CALLS)
                .map(|_| {
                    let (client, request) = (client.clone(), request.clone());
                    tokio::spawn(async move {
                        client
                            .unary::<_, Payload>(MethodId::from_name(HOLD), &request, CallOptions::default())
                            .await
                    })
                })
                .collect();
            let deadline = Instant::now() + SETTLE;
            while held(&client).await < OPEN_CALLS {
                assert!(Instant::now() < deadline, "round {round}: the calls never all opened");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let peak = probe.read().await;
            let per = |now: u64, then: u64| now.saturating_sub(then) as f64 * 1024.0 / OPEN_CALLS as f64;
            let (rss_per, heap_per) = (per(peak.rss, before.rss), per(peak.heap, before.heap));
            worst_call = (worst_call.0.max(rss_per), worst_call.1.max(heap_per));
            let _: Payload = client
                .unary(MethodId::from_name(RELEASE), &Payload::default(), CallOptions::default())
                .await
                .expect("release");
            for call in calls {
                call.await.expect("call task").expect("held call answered");
            }
            let (took, now) = probe.settles(baseline, &format!("open-call round {round}")).await;
            report(format_args!(
                "round {round}: peak {peak:?} ({rss_per:.0} B RSS, {heap_per:.0} B heap per open call); back to {now:?} in {took:?}"
            ));
        }
        client.close();
    });
    report(format_args!(
        "worst: per idle connection {:.0} B RSS, {:.0} B heap; per open call {:.0} B RSS, {:.0} B heap; took {:?}",
        worst_connection.0,
        worst_connection.1,
        worst_call.0,
        worst_call.1,
        started.elapsed()
    ));
    for (what, figure, max) in [
        ("RSS per idle connection", worst_connection.0, MAX_IDLE_CONNECTION_BYTES),
        ("heap per idle connection", worst_connection.1, MAX_IDLE_CONNECTION_BYTES),
        ("heap per open call", worst_call.1, MAX_OPEN_CALL_BYTES),
    ] {
        assert!(figure <= max, "{figure:.0} B of {what}, over {max} B");
    }
}

/// A count from the environment (diagnosis only), else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}
