//! `volley-bench balance`: what a `BalancedChannel` costs against a plain `Channel` to the same
//! server, and against tower's power of two choices (`tower::balance::p2c::Balance` over
//! `tower::load::PeakEwma` of Volley's `tower::Service` channels, behind a `tower::buffer::Buffer`
//! so tasks share it; feature `tower`), same run, same placement, runs interleaved: 64 B unary
//! at 1 and at 128 in flight. With `--endpoints N` the balancers spread over N servers (the
//! plain channel uses the first); `--slow-ms MS` makes the last of them answer MS later, and
//! the share of calls each balancer sent it is printed. Every server runs on its own thread and
//! current-thread runtime.
//!
//! ```sh
//! cargo build -p volley-benches --release --bin volley-bench --features tower
//! taskset -c 0 target/release/volley-bench balance --repeats 5
//! taskset -c 0 target/release/volley-bench balance --endpoints 4 --slow-ms 2 --scenarios unary_64B_16
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use volley::balance::BalancedChannel;
use volley::net::Address;
use volley::{Channel, Request, Server, Status};
use volley_benches::{ECHO, Payload, ServerThread};

use crate::callers::{Callers, Method};
use crate::report::Figures;
use crate::scenarios::{self, Kind, Window};
use crate::systems::{Conn, Runtime};

/// Options of the balanced-channel comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct BalanceArgs {
    /// Comma-separated one-connection unary scenarios.
    #[arg(long, value_delimiter = ',', default_value = "unary_64B_1,unary_64B_128")]
    scenarios: Vec<String>,
    /// Servers the balancers spread over (the plain channel uses the first).
    #[arg(long, default_value_t = 1)]
    endpoints: usize,
    /// The last server answers this many milliseconds late (0: none).
    #[arg(long, default_value_t = 0)]
    slow_ms: u64,
}

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channels {
    Channel,
    Balanced,
    /// tower's p2c over PeakEwma, behind a Buffer.
    #[cfg(feature = "tower")]
    TowerP2c,
}

impl Channels {
    #[cfg(not(feature = "tower"))]
    const ALL: &[Self] = &[Self::Channel, Self::Balanced];
    #[cfg(feature = "tower")]
    const ALL: &[Self] = &[Self::Channel, Self::Balanced, Self::TowerP2c];

    fn name(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Balanced => "balanced",
            #[cfg(feature = "tower")]
            Self::TowerP2c => "tower-p2c",
        }
    }
}

/// A server that counts its calls; a `slow` one answers after the delay.
async fn volley_server(calls: Arc<AtomicU64>, slow: Option<Duration>) -> Address {
    let builder = Server::builder();
    let builder = match slow {
        None => builder.unary_inline(ECHO, move |request: Request<Payload>| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Status>(request.into_inner())
        }),
        Some(delay) => builder.unary(ECHO, move |request: Request<Payload>| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Status>(request.into_inner())
            }
        }),
    };
    let handle = builder.build().expect("valid server").serve("127.0.0.1:0").await.expect("bind");
    let address = handle.local_addr().clone();
    // The server lives as long as its thread's runtime.
    std::mem::forget(handle);
    address
}

async fn connect(servers: &[Address], system: Channels) -> Conn {
    match system {
        Channels::Channel => Conn::VolleyChannel(Channel::builder().connect(&servers[0]).await.expect("connect channel")),
        Channels::Balanced => {
            let channel = BalancedChannel::builder().build(servers.iter().cloned()).expect("balanced channel");
            Conn::VolleyBalanced(channel)
        }
        #[cfg(feature = "tower")]
        Channels::TowerP2c => unreachable!("tower's balancer runs its own workers"),
    }
}

async fn run_once(servers: &[Address], scenario: &scenarios::Scenario, system: Channels, warmup: Duration, duration: Duration) -> Figures {
    let Kind::Unary { size, in_flight, .. } = scenario.kind else {
        unreachable!("checked: unary scenarios only")
    };
    let data = Bytes::from(vec![0x5a; size]);
    let window = Window::starting_now(warmup, duration);
    #[cfg(feature = "tower")]
    if system == Channels::TowerP2c {
        let balancer = tower_p2c::connect(servers).await;
        let tasks: Vec<_> = (0..in_flight)
            .map(|_| tokio::spawn(tower_p2c::worker(balancer.clone(), data.clone(), window)))
            .collect();
        return Figures::of(&scenarios::collect(tasks, duration).await, scenario);
    }
    let conn = connect(servers, system).await;
    let callers = Callers::spawn((0..in_flight).map(|_| conn.clone()), &data, Method::Echo, window);
    let sample = callers.collect(duration).await;
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

/// Runs the comparison and prints the table, the ratios and the goal of issue 18.
pub(crate) fn run(
    args: &BalanceArgs,
    warmup: Duration,
    duration: Duration,
    repeats: usize,
    runtime: &tokio::runtime::Runtime,
    mut json: Option<&mut std::fs::File>,
) -> Result<(), Box<dyn std::error::Error>> {
    let selected = args
        .scenarios
        .iter()
        .map(|name| scenarios::find(name))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = selected.iter().find(|s| !matches!(s.kind, Kind::Unary { conns: 1, .. })) {
        return Err(format!("{} is not a one-connection unary scenario", bad.name).into());
    }
    if args.endpoints == 0 {
        return Err("--endpoints must be at least 1".into());
    }
    let counters: Vec<Arc<AtomicU64>> = (0..args.endpoints).map(|_| Arc::default()).collect();
    let mut servers = Vec::new();
    let mut threads = Vec::new();
    for (i, calls) in counters.iter().enumerate() {
        let slow = (args.slow_ms > 0 && args.endpoints > 1 && i == args.endpoints - 1).then(|| Duration::from_millis(args.slow_ms));
        let calls = calls.clone();
        let (server, thread) = ServerThread::spawn_on(|| Runtime::CurrentThread.build(), move || volley_server(calls, slow));
        servers.push(server);
        threads.push(thread);
    }
    // Calls the slow server received, per scenario and system: (slow, all).
    let mut slow_share: Vec<Vec<(u64, u64)>> = selected.iter().map(|_| Channels::ALL.iter().map(|_| (0, 0)).collect()).collect();
    let mut runs: Vec<Vec<Vec<Figures>>> = selected
        .iter()
        .map(|_| Channels::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    for repeat in 0..repeats {
        for (s, scenario) in selected.iter().enumerate() {
            for (y, system) in Channels::ALL.iter().enumerate() {
                let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                let figures = runtime.block_on(run_once(&servers, scenario, *system, warmup, duration));
                let got: Vec<u64> = counters.iter().zip(&before).map(|(c, b)| c.load(Ordering::Relaxed) - b).collect();
                let share = &mut slow_share[s][y];
                share.0 += got[got.len() - 1];
                share.1 += got.iter().sum::<u64>();
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
                        "{{\"balance\":true,\"scenario\":\"{}\",\"system\":\"{}\",\"repeat\":{repeat},\"rate\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
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
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nplacement: {}", Runtime::CurrentThread.placement())?;
    writeln!(
        out,
        "{repeats} repeat(s) of {duration:?} each, runs interleaved; medians; {} endpoint(s){}\n",
        args.endpoints,
        if args.slow_ms > 0 && args.endpoints > 1 {
            format!(", the last {} ms slow", args.slow_ms)
        } else {
            String::new()
        }
    )?;
    writeln!(
        out,
        "{:<14} {:<12} {:>12} {:>10} {:>10} {:>12}",
        "scenario", "system", "calls/s", "p50 us", "p99 us", "to last ep"
    )?;
    let med = |s: usize, y: usize, f: fn(&Figures) -> f64| median(runs[s][y].iter().map(f).collect());
    for (s, scenario) in selected.iter().enumerate() {
        for (y, system) in Channels::ALL.iter().enumerate() {
            let (slow, all) = slow_share[s][y];
            writeln!(
                out,
                "{:<14} {:<12} {:>12.0} {:>10.1} {:>10.1} {:>11.1}%",
                scenario.name,
                system.name(),
                med(s, y, |f| f.rate),
                med(s, y, |f| f.p50),
                med(s, y, |f| f.p99),
                100.0 * slow as f64 / all.max(1) as f64,
            )?;
        }
    }
    writeln!(out)?;
    let (plain, balanced) = (0, 1);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    for (s, scenario) in selected.iter().enumerate() {
        let p50_cost = med(s, balanced, |f| f.p50) / med(s, plain, |f| f.p50) - 1.0;
        let rate = med(s, balanced, |f| f.rate) / med(s, plain, |f| f.rate);
        writeln!(
            out,
            "{:<14} balanced adds {:+.1} % to p50; rate = {rate:.3}x channel",
            scenario.name,
            p50_cost * 100.0
        )?;
        #[cfg(feature = "tower")]
        {
            let tower = 2;
            let p50 = med(s, tower, |f| f.p50) / med(s, balanced, |f| f.p50);
            let rate = med(s, tower, |f| f.rate) / med(s, balanced, |f| f.rate);
            writeln!(
                out,
                "{:<14} tower-p2c: p50 {p50:.3}x balanced, rate {rate:.3}x balanced",
                scenario.name
            )?;
        }
        if args.endpoints > 1 {
            continue;
        }
        match scenario.name {
            "unary_64B_1" => writeln!(out, "  goal: <= 5 % on the 1-in-flight p50: {}", verdict(p50_cost <= 0.05))?,
            "unary_64B_128" => writeln!(out, "  goal: >= 0.95x the rate at 128 in flight: {}", verdict(rate >= 0.95))?,
            _ => {}
        }
    }
    Ok(())
}

/// tower's p2c over PeakEwma of Volley's `tower::Service` channels, shared through a Buffer.
#[cfg(feature = "tower")]
mod tower_p2c {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use hdrhistogram::Histogram;
    use tower::balance::p2c::Balance;
    use tower::buffer::Buffer;
    use tower::discover::ServiceList;
    use tower::load::{CompleteOnResponse, PeakEwma};
    use tower::{Service, ServiceExt};
    use volley::net::Address;
    use volley::tower::UnaryRequest;
    use volley::{CallOptions, Channel};
    use volley_benches::{ECHO_ID, Payload};

    use crate::scenarios::{Window, histogram, nanos};

    type P2c = Balance<ServiceList<Vec<PeakEwma<Channel>>>, UnaryRequest>;
    /// What tasks share: a Buffer in front of the balancer (a worker task runs it).
    pub(super) type Shared = Buffer<UnaryRequest, <P2c as Service<UnaryRequest>>::Future>;

    /// PeakEwma's defaults as linkerd and tower's examples use them: 1 ms before the first
    /// answer, a 10 s decay.
    const DEFAULT_RTT: Duration = Duration::from_millis(1);
    const DECAY_NS: f64 = 10e9;
    /// The Buffer's queue: above the most calls in flight of any scenario.
    const BUFFER: usize = 1024;

    pub(super) async fn connect(servers: &[Address]) -> Shared {
        let mut services = Vec::new();
        for server in servers {
            let channel = Channel::builder().connect(server).await.expect("connect channel");
            services.push(PeakEwma::new(channel, DEFAULT_RTT, DECAY_NS, CompleteOnResponse::default()));
        }
        Buffer::new(Balance::new(ServiceList::new(services)), BUFFER)
    }

    /// One closed-loop caller: as `scenarios::unary_worker`, through the shared balancer.
    pub(super) async fn worker(mut balancer: Shared, data: Bytes, window: Window) -> (u64, Histogram<u64>) {
        let mut hist = histogram();
        let mut calls = 0;
        let request = Payload { data };
        loop {
            let started = Instant::now();
            if started >= window.end {
                break;
            }
            let call = UnaryRequest::new(ECHO_ID, &request, CallOptions::default());
            let response = balancer
                .ready()
                .await
                .expect("balancer ready")
                .call(call)
                .await
                .expect("tower p2c call");
            let reply = <Payload as prost::Message>::decode(response.into_inner()).expect("decode");
            debug_assert_eq!(reply.data.len(), request.data.len());
            if started >= window.measure_from {
                hist.record(nanos(started.elapsed())).expect("record");
                calls += 1;
            }
        }
        (calls, hist)
    }
}
