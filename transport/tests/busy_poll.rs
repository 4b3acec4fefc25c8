//! The busy-poll receive mode: its poller threads run the read pass (inline handlers run on
//! them), end with their connection (client drop, server shutdown, runtime shutdown), and a
//! `SpinThenPark` poller burns no CPU while its connection is idle. Every call kind over TCP
//! and Unix sockets in this mode is covered by `conformance.rs` (`busy_poll_tcp::*`,
//! `busy_poll_unix::*`).
//!
//! Poller threads are found by name in `/proc/self/task`, so the tests that count them take
//! [`SERIAL`] and run one at a time.
// Held across awaits on purpose: each test has a runtime of its own, and the lock only keeps the
// tests from running side by side.
#![allow(clippy::await_holding_lock)]

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

mod common;

use common::{ECHO_ID, Echo, echo, echo_server};
use volley::busy_poll::{BusyPoll, IdleStrategy, POLLER_THREAD_NAME, spin_on};
use volley::{CallOptions, Channel, Client, Request, Server, Status};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves `builder` on a loopback port.
async fn serve(builder: volley::server::ServerBuilder) -> volley::server::ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

/// Parks after a short spin, so idle test connections cost no core.
fn parking() -> BusyPoll {
    BusyPoll::new(IdleStrategy::SpinThenPark {
        spins: 1_000,
        yields: 100,
        min_park: Duration::from_micros(50),
        max_park: Duration::from_millis(1),
    })
}

/// The thread ids of this process's poller threads.
fn pollers() -> Vec<u32> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim_end() == POLLER_THREAD_NAME).then(|| entry.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// CPU time (user + system, in clock ticks) thread `tid` of this process has used, from
/// `/proc/self/task/<tid>/stat` (fields 14 and 15).
fn cpu_ticks(tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

async fn wait_for_pollers(what: &str, count: usize) {
    common::wait_for(what, || pollers().len() == count).await;
}

/// A server whose inline handler answers with the name of the thread it ran on.
fn thread_name_server() -> volley::server::ServerBuilder {
    Server::builder().unary_inline(common::ECHO, |_request: Request<Echo>| {
        Ok::<_, Status>(echo(std::thread::current().name().unwrap_or("").to_owned()))
    })
}

#[tokio::test]
async fn an_inline_handler_runs_on_the_server_poller_thread() {
    let _serial = serial();
    let server = serve(thread_name_server().busy_poll(parking())).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, POLLER_THREAD_NAME);
    // Without the mode it runs on the reader task, on a runtime thread.
    let plain = serve(thread_name_server()).await;
    let client = Client::connect(plain.local_addr()).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    assert_ne!(reply.payload, POLLER_THREAD_NAME);
    drop(client);
    server.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test]
async fn the_client_poller_ends_when_the_client_is_dropped() {
    let _serial = serial();
    let server = serve(echo_server()).await;
    wait_for_pollers("no poller before the client", 0).await;
    let client = Client::builder().busy_poll(parking()).connect(server.local_addr()).await.unwrap();
    assert_eq!(pollers().len(), 1, "one poller for the client's connection");
    let reply: Echo = client.unary(ECHO_ID, &echo("polled"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "polled");
    drop(client);
    wait_for_pollers("the poller ends with its connection", 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_channel_with_busy_poll_reads_through_a_poller() {
    let _serial = serial();
    let server = serve(echo_server()).await;
    let channel = Channel::builder().busy_poll(parking()).connect(server.local_addr()).await.unwrap();
    let reply: Echo = channel.unary(ECHO_ID, &echo("channel"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "channel");
    assert_eq!(pollers().len(), 1);
    drop(channel);
    wait_for_pollers("the channel's poller ends with it", 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_server_pollers_end_on_server_shutdown() {
    let _serial = serial();
    let server = serve(echo_server().busy_poll(parking())).await;
    let first = Client::connect(server.local_addr()).await.unwrap();
    let second = Client::connect(server.local_addr()).await.unwrap();
    for client in [&first, &second] {
        let reply: Echo = client.unary(ECHO_ID, &echo("x"), CallOptions::default()).await.unwrap();
        assert_eq!(reply.payload, "x");
    }
    assert_eq!(pollers().len(), 2, "one poller per accepted connection");
    // The clients stay open: the shutdown itself must end the server's connections.
    tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await.unwrap();
    wait_for_pollers("the server's pollers end on shutdown", 0).await;
    drop((first, second));
}

#[test]
fn the_pollers_end_when_their_runtime_shuts_down() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (server, client) = runtime.block_on(async {
        let server = serve(echo_server().busy_poll(parking())).await;
        let client = Client::builder().busy_poll(parking()).connect(server.local_addr()).await.unwrap();
        let reply: Echo = client.unary(ECHO_ID, &echo("x"), CallOptions::default()).await.unwrap();
        assert_eq!(reply.payload, "x");
        (server, client)
    });
    assert_eq!(pollers().len(), 2);
    // Nothing closes the connections: the handles outlive the runtime.
    drop(runtime);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !pollers().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "pollers still running after their runtime shut down"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop((server, client));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spin_then_park_poller_burns_no_cpu_while_idle_and_a_spinning_one_does() {
    let _serial = serial();
    let server = serve(echo_server()).await;
    let idle_cost = |strategy: IdleStrategy, over: Duration| {
        let address = server.local_addr().clone();
        async move {
            let client = Client::builder().busy_poll(BusyPoll::new(strategy)).connect(address).await.unwrap();
            let reply: Echo = client.unary(ECHO_ID, &echo("x"), CallOptions::default()).await.unwrap();
            assert_eq!(reply.payload, "x");
            let [tid] = pollers()[..] else {
                panic!("one poller expected: {:?}", pollers())
            };
            // Past the spins and yields, into parking (for a parking strategy).
            tokio::time::sleep(Duration::from_millis(100)).await;
            let before = cpu_ticks(tid);
            tokio::time::sleep(over).await;
            let ticks = cpu_ticks(tid) - before;
            drop(client);
            wait_for_pollers("the poller ends", 0).await;
            ticks
        }
    };
    let second = Duration::from_secs(1);
    let parked = idle_cost(parking().idle, second).await;
    let spun = idle_cost(IdleStrategy::Spin, second).await;
    eprintln!("idle poller CPU over 1 s: SpinThenPark {parked} ticks, Spin {spun} ticks");
    let hz = 100; // USER_HZ: clock ticks per second on Linux
    // Parked: at most 1,000 short wake-ups a second; well under 5 % of a core.
    assert!(parked * 20 <= hz, "an idle SpinThenPark poller used {parked} ticks in 1 s");
    // The measurement is real: a spinning poller shows most of a core (unless the machine is
    // saturated, it gets far more than 20 %).
    assert!(spun * 5 >= hz, "an idle spinning poller used only {spun} ticks in 1 s");
    server.shutdown().await;
}

#[test]
fn client_spin_on_reads_the_connection_on_the_callers_thread() {
    let _serial = serial();
    // A runtime that keeps running while the caller spins: the writer tasks live there.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sleepy = BusyPoll::new(IdleStrategy::SpinThenPark {
        spins: 0,
        yields: 0,
        min_park: Duration::from_millis(200),
        max_park: Duration::from_millis(200),
    });
    let (server, client) = runtime.block_on(async {
        let server = serve(echo_server().busy_poll(parking())).await;
        // Its poller sleeps 200 ms between polls: calls answered faster are read by the caller.
        let client = Client::builder().busy_poll(sleepy).connect(server.local_addr()).await.unwrap();
        (server, client)
    });
    let _runtime = runtime.enter();
    let started = std::time::Instant::now();
    for i in 0..50u32 {
        let message = echo(i.to_string());
        let reply: Echo = client
            .spin_on(client.unary(ECHO_ID, &message, CallOptions::default()), IdleStrategy::Spin)
            .unwrap();
        assert_eq!(reply.payload, i.to_string());
    }
    // Waiting for the poller would take at least 50 x 200 ms / 2 on average.
    assert!(started.elapsed() < Duration::from_secs(2), "50 calls took {:?}", started.elapsed());
    drop(client);
    runtime.block_on(server.shutdown());
}

#[test]
fn spin_on_runs_a_call_on_the_calling_thread_against_a_polling_inline_server() {
    let _serial = serial();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (server, client) = runtime.block_on(async {
        let server = serve(
            Server::builder()
                .unary_inline(common::ECHO, |request: Request<Echo>| Ok::<_, Status>(request.into_inner()))
                .busy_poll(parking()),
        )
        .await;
        let client = Client::builder().busy_poll(parking()).connect(server.local_addr()).await.unwrap();
        (server, client)
    });
    // A plain thread, no runtime worker: the caller spins on its calls' outcomes.
    let caller = std::thread::spawn({
        let handle = runtime.handle().clone();
        move || {
            let _runtime = handle.enter();
            for i in 0..1_000u32 {
                let message = echo(i.to_string());
                let reply: Echo = spin_on(client.unary(ECHO_ID, &message, CallOptions::default()), IdleStrategy::Spin).unwrap();
                assert_eq!(reply.payload, i.to_string());
            }
            client.stats().calls_started
        }
    });
    assert_eq!(caller.join().unwrap(), 1_000);
    runtime.block_on(server.shutdown());
}
