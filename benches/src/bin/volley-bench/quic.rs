//! `volley-bench quic` (feature `quic`): Volley over QUIC against Volley over TCP (plaintext and
//! TLS) and tonic (plaintext HTTP/2), same run, same placement, runs interleaved; then p99 under
//! packet loss, QUIC through the UDP fault proxy against TLS over TCP through a TCP proxy that
//! models Linux's loss recovery (see `lossy_tcp.rs`), on loopback and (head-of-line rows) with a
//! round-trip time added; then the first call on a fresh connection against one on a resumed TLS
//! session.
//!
//! `volley+quic` is the per-call mapping (`volley-quic/2`) and `volley+quic1` the one-stream
//! mapping (`volley/1`), each asked for explicitly, whatever the default.
//!
//! ```sh
//! cargo build -p volley-benches --release --features quic --bin volley-bench
//! taskset -c 0 target/release/volley-bench quic --repeats 5
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use volley::net::Address;
use volley::quic::{QuicMapping, QuicOptions};
use volley::tls::{ClientTls, ServerTls};
use volley::{CallOptions, Client, Request, Server, Status};
use volley_benches::{ECHO, ECHO_ID, FEED, Payload, ServerThread, payload};

use crate::callers::{Callers, Method};
use crate::lossy_tcp::LossyTcpProxy;
use crate::report::Figures;
use crate::scenarios::{self, Kind, Window};
use crate::systems::{Conn, Runtime, pb};
use crate::tls::{Pki, pki};
use crate::udp_proxy::{UdpFaultProxy, UdpFaults};

/// Options of the QUIC comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct QuicArgs {
    /// Comma-separated scenarios of the clean-path comparison.
    #[arg(long, value_delimiter = ',', default_value = "unary_64B_1,unary_64B_128,unary_1MiB_1,stream_64B")]
    scenarios: Vec<String>,
    /// Packet loss (share of packets, each way) of the loss comparison; 0 skips it.
    #[arg(long, default_value_t = 0.01)]
    loss: f64,
    /// Comma-separated unary scenarios of the loss comparison.
    #[arg(long, value_delimiter = ',', default_value = "unary_64B_1,unary_64B_128")]
    loss_scenarios: Vec<String>,
    /// Round-trip time (ms) of the head-of-line rows: the loss comparison again at 128 in flight
    /// (64 B and 4 KiB calls), half of it added each way by both proxies; 0 skips them.
    #[arg(long, default_value_t = 10)]
    hol_rtt_ms: u64,
    /// Fresh and resumed connections timed (each); 0 skips the resumption comparison.
    #[arg(long, default_value_t = 40)]
    connects: usize,
    /// Comma-separated systems of the clean-path comparison (volley, volley+tls, volley+quic,
    /// volley+quic1, tonic); the ratios need volley, volley+tls, volley+quic and volley+quic1.
    #[arg(long, value_delimiter = ',', default_value = "volley,volley+tls,volley+quic,volley+quic1,tonic")]
    systems: Vec<String>,
    /// Instead of the comparisons: make this many 64-byte calls, 128 in flight, over the first
    /// of `--systems` and exit (a fixed amount of work for callgrind: the instructions per call
    /// are the difference of two counts over the difference of the calls). 0: off.
    #[arg(long, default_value_t = 0)]
    cost_calls: u64,
}

/// The systems of the clean-path comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QuicSystem {
    Volley,
    VolleyTls,
    VolleyQuic,
    /// QUIC with the one-stream mapping (`volley/1`), to the same server.
    VolleyQuicOne,
    Tonic,
}

impl QuicSystem {
    const ALL: [Self; 5] = [Self::Volley, Self::VolleyTls, Self::VolleyQuic, Self::VolleyQuicOne, Self::Tonic];

    fn name(self) -> &'static str {
        match self {
            Self::Volley => "volley",
            Self::VolleyTls => "volley+tls",
            Self::VolleyQuic => "volley+quic",
            Self::VolleyQuicOne => "volley+quic1",
            Self::Tonic => "tonic",
        }
    }

    fn named(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|system| system.name() == name)
            .ok_or_else(|| format!("unknown system {name}: one of volley, volley+tls, volley+quic, volley+quic1, tonic"))
    }
}

/// The servers, each on its own thread and current-thread runtime.
struct QuicServers {
    volley: Address,
    volley_tls: Address,
    volley_quic: Address,
    tonic: SocketAddr,
    pki: Pki,
    _threads: Vec<ServerThread>,
}

/// Volley's echo and feed methods with `tls` if set, served on `address`.
async fn volley_server(tls: Option<ServerTls>, address: &'static str) -> Address {
    let builder = Server::builder()
        .unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
        .server_streaming(
            FEED,
            |request: Request<Payload>, mut sender: volley::StreamSender<Payload>| async move {
                let (count, message) = crate::systems::feed_parts(request.into_inner().data);
                for _ in 0..count {
                    sender.send(&message).await?;
                }
                Ok(())
            },
        );
    let builder = match tls {
        // Over QUIC the server accepts 0-RTT data (for the resumption comparison's 0-RTT column).
        Some(tls) => builder.tls(tls).quic(QuicOptions::new().accept_early_data(true)),
        None => builder,
    };
    let handle = builder.build().expect("valid server").serve(address).await.expect("bind");
    let address = handle.local_addr().clone();
    // The server lives as long as its thread's runtime.
    std::mem::forget(handle);
    address
}

fn start() -> QuicServers {
    let pki = pki();
    let build = || Runtime::CurrentThread.build();
    let server_tls = || {
        ServerTls::builder_from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
            .expect("PEM")
            .build()
            .expect("server TLS")
    };
    let (volley, plain_thread) = ServerThread::spawn_on(build, || volley_server(None, "127.0.0.1:0"));
    let tls = server_tls();
    let (volley_tls, tls_thread) = ServerThread::spawn_on(build, move || volley_server(Some(tls), "127.0.0.1:0"));
    let tls = server_tls();
    let (volley_quic, quic_thread) = ServerThread::spawn_on(build, move || volley_server(Some(tls), "quic://127.0.0.1:0"));
    let (tonic, tonic_thread) = ServerThread::spawn_on(build, crate::systems::tonic_server);
    QuicServers {
        volley,
        volley_tls,
        volley_quic,
        tonic,
        pki,
        _threads: vec![plain_thread, tls_thread, quic_thread, tonic_thread],
    }
}

/// QUIC options offering only the one-stream mapping (`volley/1`).
fn one_stream() -> QuicOptions {
    QuicOptions::new().mapping(QuicMapping::OneStream)
}

/// QUIC options offering the per-call mapping (`volley-quic/2`).
fn per_call() -> QuicOptions {
    QuicOptions::new().mapping(QuicMapping::PerCall)
}

/// The head-of-line rows' scenarios: 128 calls in flight on one connection, 64 B (a round of
/// calls fits a few loopback datagrams) and 4 KiB (a round spans several: a lost one holds up
/// the calls behind it on one stream, only its own calls with a stream per call).
const HOL_SCENARIOS: [scenarios::Scenario; 2] = [hol_scenario("unary_64B_128", 64), hol_scenario("unary_4KiB_128", 4096)];

const fn hol_scenario(name: &'static str, size: usize) -> scenarios::Scenario {
    scenarios::Scenario {
        name,
        description: "unary, 128 in flight on 1 connection, through the lossy proxies with a round-trip time",
        kind: Kind::Unary {
            size,
            in_flight: 128,
            conns: 1,
        },
        runtime: Runtime::CurrentThread,
        memory: false,
    }
}

fn client_tls(pki: &Pki) -> ClientTls {
    ClientTls::builder()
        .ca_pem(pki.ca_pem.as_bytes())
        .expect("CA PEM")
        .server_name("localhost")
        .build()
        .expect("client TLS")
}

async fn connect_volley(address: &Address, tls: Option<ClientTls>) -> Client {
    connect_volley_with(address, tls, QuicOptions::new()).await
}

/// Connects with `quic` as the QUIC options (the stream mapping offered).
async fn connect_volley_with(address: &Address, tls: Option<ClientTls>, quic: QuicOptions) -> Client {
    let builder = Client::builder().quic(quic);
    let builder = match tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    };
    builder.connect(address).await.expect("connect volley")
}

async fn connect(servers: &QuicServers, system: QuicSystem) -> Conn {
    match system {
        QuicSystem::Volley => Conn::Volley(connect_volley(&servers.volley, None).await),
        QuicSystem::VolleyTls => Conn::Volley(connect_volley(&servers.volley_tls, Some(client_tls(&servers.pki))).await),
        QuicSystem::VolleyQuic => Conn::Volley(connect_volley_with(&servers.volley_quic, Some(client_tls(&servers.pki)), per_call()).await),
        QuicSystem::VolleyQuicOne => {
            Conn::Volley(connect_volley_with(&servers.volley_quic, Some(client_tls(&servers.pki)), one_stream()).await)
        }
        QuicSystem::Tonic => {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", servers.tonic))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect tonic");
            Conn::Tonic(pb::echo_client::EchoClient::new(channel))
        }
    }
}

/// Makes `count` 64-byte echo calls over `system`, 128 at a time; returns the calls made.
async fn fixed_calls(servers: &QuicServers, system: QuicSystem, count: u64) -> u64 {
    const IN_FLIGHT: u64 = 128;
    let Conn::Volley(client) = connect(servers, system).await else {
        panic!("--cost-calls counts Volley's systems only")
    };
    let request = payload(64);
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                for _ in 0..count / IN_FLIGHT {
                    let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
                }
                count / IN_FLIGHT
            })
        })
        .collect();
    let mut done = 0;
    for task in tasks {
        done += task.await.expect("task");
    }
    done
}

/// Runs `scenario` (unary or stream) on `conn` and returns its figures.
async fn measure(conn: Conn, scenario: &scenarios::Scenario, warmup: Duration, duration: Duration) -> Figures {
    let window = Window::starting_now(warmup, duration);
    let sample = match scenario.kind {
        Kind::Unary { size, in_flight, .. } => {
            let data = Bytes::from(vec![0x5a; size]);
            let callers = Callers::spawn((0..in_flight).map(|_| conn.clone()), &data, Method::Echo, window);
            callers.collect(duration).await
        }
        Kind::Stream { size } => {
            let task = tokio::spawn(scenarios::stream_worker(conn.clone(), size, window));
            scenarios::collect(vec![task], duration).await
        }
        _ => unreachable!("checked: unary and stream scenarios only"),
    };
    Figures::of(&sample, scenario)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn scenarios_named(names: &[String], allow_stream: bool) -> Result<Vec<scenarios::Scenario>, Box<dyn std::error::Error>> {
    let selected = names.iter().map(|name| scenarios::find(name)).collect::<Result<Vec<_>, _>>()?;
    for scenario in &selected {
        let fits = match scenario.kind {
            Kind::Unary { conns: 1, .. } => true,
            Kind::Stream { .. } => allow_stream,
            _ => false,
        };
        if !fits {
            return Err(format!(
                "{} is not a one-connection unary{} scenario",
                scenario.name,
                if allow_stream { " or stream" } else { "" }
            )
            .into());
        }
    }
    Ok(selected)
}

/// Runs the three comparisons and prints their tables and the goals of issue 22.
pub(crate) fn run(
    args: &QuicArgs,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    runtime: &tokio::runtime::Runtime,
    mut json: Option<&mut std::fs::File>,
) -> Result<(), Box<dyn std::error::Error>> {
    let selected = scenarios_named(&args.scenarios, true)?;
    let lossy = scenarios_named(&args.loss_scenarios, false)?;
    let systems = args
        .systems
        .iter()
        .map(|name| QuicSystem::named(name))
        .collect::<Result<Vec<_>, _>>()?;
    let servers = start();
    if args.cost_calls > 0 {
        let system = *systems.first().ok_or("--cost-calls needs a system")?;
        let done = runtime.block_on(fixed_calls(&servers, system, args.cost_calls));
        println!("{}: {done} calls", system.name());
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nplacement: {}", Runtime::CurrentThread.placement())?;
    writeln!(out, "{repeats} repeat(s) of {duration:?} each, runs interleaved; medians\n")?;

    // Clean loopback: every system, every scenario.
    let mut runs: Vec<Vec<Vec<Figures>>> = selected.iter().map(|_| systems.iter().map(|_| Vec::new()).collect()).collect();
    for repeat in 0..repeats {
        for (s, scenario) in selected.iter().enumerate() {
            for (y, system) in systems.iter().enumerate() {
                let figures = runtime.block_on(async {
                    let conn = connect(&servers, *system).await;
                    measure(conn, scenario, warmup, duration).await
                });
                eprintln!(
                    "repeat {} {} {}: {:.0}/s p50 {:.1} us p99 {:.1} us",
                    repeat + 1,
                    scenario.name,
                    system.name(),
                    figures.rate,
                    figures.p50,
                    figures.p99
                );
                if let Some(file) = json.as_mut() {
                    writeln!(
                        file,
                        "{{\"quic\":true,\"scenario\":\"{}\",\"system\":\"{}\",\"repeat\":{repeat},\"rate\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
                        scenario.name,
                        system.name(),
                        figures.rate,
                        figures.p50,
                        figures.p99
                    )?;
                }
                runs[s][y].push(figures);
            }
        }
    }
    writeln!(
        out,
        "{:<14} {:<12} {:>12} {:>10} {:>10}",
        "scenario", "system", "rate/s", "p50 us", "p99 us"
    )?;
    let med = |s: usize, y: usize, f: fn(&Figures) -> f64| median(runs[s][y].iter().map(f).collect());
    for (s, scenario) in selected.iter().enumerate() {
        for (y, system) in systems.iter().enumerate() {
            writeln!(
                out,
                "{:<14} {:<12} {:>12.0} {:>10.1} {:>10.1}",
                scenario.name,
                system.name(),
                med(s, y, |f| f.rate),
                med(s, y, |f| f.p50),
                med(s, y, |f| f.p99),
            )?;
        }
    }
    writeln!(out)?;
    let at = |system: QuicSystem| systems.iter().position(|y| *y == system);
    let ratios = (
        at(QuicSystem::Volley),
        at(QuicSystem::VolleyTls),
        at(QuicSystem::VolleyQuic),
        at(QuicSystem::VolleyQuicOne),
    );
    if let (Some(plain), Some(tls), Some(quic), Some(quic1)) = ratios {
        for (s, scenario) in selected.iter().enumerate() {
            let p50_vs_tcp = med(s, quic, |f| f.p50) / med(s, plain, |f| f.p50);
            let p50_vs_tls = med(s, quic, |f| f.p50) / med(s, tls, |f| f.p50);
            let p50_vs_one = med(s, quic, |f| f.p50) / med(s, quic1, |f| f.p50);
            let one_vs_tcp = med(s, quic1, |f| f.p50) / med(s, plain, |f| f.p50);
            let rate_vs_tcp = med(s, quic, |f| f.rate) / med(s, plain, |f| f.rate);
            let rate_vs_one = med(s, quic, |f| f.rate) / med(s, quic1, |f| f.rate);
            let rate_vs_tonic = at(QuicSystem::Tonic).map_or(f64::NAN, |tonic| med(s, quic, |f| f.rate) / med(s, tonic, |f| f.rate));
            writeln!(
                out,
                "{:<14} quic p50 = {p50_vs_tcp:.2}x tcp, {p50_vs_tls:.2}x tcp+tls, {p50_vs_one:.2}x quic1 (quic1 {one_vs_tcp:.2}x tcp); quic rate = {rate_vs_tcp:.2}x tcp, {rate_vs_one:.2}x quic1, {rate_vs_tonic:.2}x tonic; goal p50 <= 1.5x tcp: {}",
                scenario.name,
                if p50_vs_tcp <= 1.5 { "met" } else { "MISSED" }
            )?;
        }
    }

    if args.loss > 0.0 {
        let clean = Duration::ZERO;
        loss_comparison(&mut out, &servers, &lossy, args.loss, clean, warmup, duration, repeats, runtime)?;
        if args.hol_rtt_ms > 0 {
            let rtt = Duration::from_millis(args.hol_rtt_ms);
            loss_comparison(
                &mut out,
                &servers,
                &HOL_SCENARIOS,
                args.loss,
                rtt,
                warmup,
                duration,
                repeats,
                runtime,
            )?;
        }
    }
    if args.connects > 0 {
        resumption_comparison(&mut out, &servers, args.connects, runtime)?;
    }
    Ok(())
}

/// p99 under `loss`: volley+tls through the TCP loss model, volley+quic (both mappings) through
/// the UDP proxy, each also through its proxy with no loss (the proxy's own cost); `rtt` added
/// by both proxies (half each way), none when zero.
#[allow(clippy::too_many_arguments)]
fn loss_comparison(
    out: &mut impl Write,
    servers: &QuicServers,
    selected: &[scenarios::Scenario],
    loss: f64,
    rtt: Duration,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Box<dyn std::error::Error>> {
    let (Address::Tcp(tls_addr), Address::Quic(quic_addr)) = (&servers.volley_tls, &servers.volley_quic) else {
        unreachable!("the servers were bound to TCP and QUIC addresses")
    };
    let (tcp_proxy, udp_proxy) = runtime.block_on(async {
        (
            LossyTcpProxy::start(*tls_addr, 0x7c9).await,
            UdpFaultProxy::start(*quic_addr, 0x9d1).await,
        )
    });
    let cases: [(&str, f64); 6] = [
        ("volley+tls", 0.0),
        ("volley+quic", 0.0),
        ("volley+quic1", 0.0),
        ("volley+tls", loss),
        ("volley+quic", loss),
        ("volley+quic1", loss),
    ];
    let mut runs: Vec<Vec<Vec<Figures>>> = selected.iter().map(|_| cases.iter().map(|_| Vec::new()).collect()).collect();
    for repeat in 0..repeats {
        for (s, scenario) in selected.iter().enumerate() {
            for (c, (system, p)) in cases.iter().enumerate() {
                tcp_proxy.set_loss(*p);
                tcp_proxy.set_rtt(rtt);
                udp_proxy.set_both(UdpFaults {
                    drop: *p,
                    delay: rtt / 2,
                    ..UdpFaults::default()
                });
                let figures = runtime.block_on(async {
                    let (address, quic) = match *system {
                        "volley+tls" => (Address::Tcp(tcp_proxy.local_addr()), QuicOptions::new()),
                        "volley+quic1" => (Address::Quic(udp_proxy.local_addr()), one_stream()),
                        _ => (Address::Quic(udp_proxy.local_addr()), per_call()),
                    };
                    let conn = Conn::Volley(connect_volley_with(&address, Some(client_tls(&servers.pki)), quic).await);
                    measure(conn, scenario, warmup, duration).await
                });
                eprintln!(
                    "repeat {} {} {system} loss {:.1} % rtt {rtt:?}: {:.0}/s p50 {:.1} us p99 {:.1} us",
                    repeat + 1,
                    scenario.name,
                    p * 100.0,
                    figures.rate,
                    figures.p50,
                    figures.p99
                );
                runs[s][c].push(figures);
            }
        }
    }
    writeln!(
        out,
        "\nloss: {:.1} % of packets each way (QUIC: datagrams dropped by the UDP proxy; TCP: the loss model of lossy_tcp.rs), round trip {rtt:?} added",
        loss * 100.0
    )?;
    writeln!(
        out,
        "{:<14} {:<12} {:>7} {:>10} {:>10} {:>10} {:>11}",
        "scenario", "system", "loss %", "rate/s", "p50 us", "p99 us", "p99.9 us"
    )?;
    let med = |s: usize, c: usize, f: fn(&Figures) -> f64| median(runs[s][c].iter().map(f).collect());
    for (s, scenario) in selected.iter().enumerate() {
        for (c, (system, p)) in cases.iter().enumerate() {
            writeln!(
                out,
                "{:<14} {:<12} {:>7.1} {:>10.0} {:>10.1} {:>10.1} {:>11.1}",
                scenario.name,
                system,
                p * 100.0,
                med(s, c, |f| f.rate),
                med(s, c, |f| f.p50),
                med(s, c, |f| f.p99),
                med(s, c, |f| f.p999),
            )?;
        }
        let ratio = med(s, 4, |f| f.p99) / med(s, 3, |f| f.p99);
        let one_ratio = med(s, 5, |f| f.p99) / med(s, 3, |f| f.p99);
        let mapping_ratio = med(s, 4, |f| f.p99) / med(s, 5, |f| f.p99);
        let mapping_ratio_999 = med(s, 4, |f| f.p999) / med(s, 5, |f| f.p999);
        writeln!(
            out,
            "{:<14} under loss: quic p99 = {ratio:.2}x tcp+tls p99 (quic1 {one_ratio:.2}x), per-call / one-stream p99 = {mapping_ratio:.2}x, p99.9 = {mapping_ratio_999:.2}x; goal better p99 than TCP: {}",
            scenario.name,
            if ratio < 1.0 { "met" } else { "MISSED" }
        )?;
    }
    Ok(())
}

/// Time from `connect` to the first call's answer, on `connects` fresh connections: each with a
/// new `ClientTls` (an empty session cache: a full handshake), each with one shared, warmed
/// `ClientTls` (TLS 1.3 resumption), and (QUIC only) each with a shared, warmed `ClientTls` and
/// the echo method marked for 0-RTT (the call goes in early data), interleaved; over TCP+TLS and
/// over QUIC.
fn resumption_comparison(
    out: &mut impl Write,
    servers: &QuicServers,
    connects: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), Box<dyn std::error::Error>> {
    let request = payload(64);
    let first_call = |address: Address, tls: ClientTls, quic: QuicOptions| {
        let request = request.clone();
        async move {
            let started = Instant::now();
            let client = connect_volley_with(&address, Some(tls), quic).await;
            let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("first call");
            let took = started.elapsed();
            drop(client);
            took.as_secs_f64() * 1e6
        }
    };
    writeln!(
        out,
        "\nconnect + first 64 B call, {connects} connections each, medians (full handshake vs resumed session vs 0-RTT)"
    )?;
    writeln!(
        out,
        "{:<12} {:>12} {:>12} {:>12} {:>9} {:>9}",
        "system", "fresh us", "resumed us", "0-RTT us", "res/fresh", "0rtt/fresh"
    )?;
    let early = per_call().early_data_for(ECHO_ID);
    for (name, address) in [("volley+tls", &servers.volley_tls), ("volley+quic", &servers.volley_quic)] {
        let quic = name == "volley+quic";
        let (shared, shared_early) = (client_tls(&servers.pki), client_tls(&servers.pki));
        // Warm the shared session caches.
        runtime.block_on(first_call(address.clone(), shared.clone(), QuicOptions::new()));
        runtime.block_on(first_call(address.clone(), shared_early.clone(), early.clone()));
        let (mut fresh, mut resumed, mut zero_rtt) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..connects {
            fresh.push(runtime.block_on(first_call(address.clone(), client_tls(&servers.pki), QuicOptions::new())));
            resumed.push(runtime.block_on(first_call(address.clone(), shared.clone(), QuicOptions::new())));
            if quic {
                zero_rtt.push(runtime.block_on(first_call(address.clone(), shared_early.clone(), early.clone())));
            }
        }
        let (fresh, resumed, zero_rtt) = (median(fresh), median(resumed), median(zero_rtt));
        writeln!(
            out,
            "{name:<12} {fresh:>12.1} {resumed:>12.1} {zero_rtt:>12.1} {:>9.2} {:>9.2}",
            resumed / fresh,
            zero_rtt / fresh
        )?;
    }
    // Connections closing after their first call finish in the background.
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    Ok(())
}
