//! `volley-bench balance`: what a `BalancedChannel` over one endpoint costs against a plain
//! `Channel` to the same server, same run, same placement, runs interleaved: 64 B unary at 1
//! and at 128 in flight. The server runs on its own thread and current-thread runtime.
//!
//! ```sh
//! cargo build -p volley-benches --release --bin volley-bench
//! taskset -c 0 target/release/volley-bench balance --repeats 5
//! ```

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use volley::balance::BalancedChannel;
use volley::net::Address;
use volley::{Channel, Request, Server, Status};
use volley_benches::{ECHO, Payload, ServerThread};

use crate::report::Figures;
use crate::scenarios::{self, Kind, Window};
use crate::systems::{Conn, Runtime};

/// Options of the balanced-channel comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct BalanceArgs {
    /// Comma-separated one-connection unary scenarios.
    #[arg(long, value_delimiter = ',', default_value = "unary_64B_1,unary_64B_128")]
    scenarios: Vec<String>,
}

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channels {
    Channel,
    Balanced,
}

impl Channels {
    const ALL: [Self; 2] = [Self::Channel, Self::Balanced];

    fn name(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Balanced => "balanced(1)",
        }
    }
}

async fn volley_server() -> Address {
    let handle = Server::builder()
        .unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
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

async fn connect(server: &Address, system: Channels) -> Conn {
    match system {
        Channels::Channel => Conn::VolleyChannel(Channel::builder().connect(server).await.expect("connect channel")),
        Channels::Balanced => {
            let channel = BalancedChannel::builder().build([server.clone()]).expect("balanced channel");
            Conn::VolleyBalanced(channel)
        }
    }
}

async fn run_once(server: &Address, scenario: &scenarios::Scenario, system: Channels, warmup: Duration, duration: Duration) -> Figures {
    let Kind::Unary { size, in_flight, .. } = scenario.kind else {
        unreachable!("checked: unary scenarios only")
    };
    let conn = connect(server, system).await;
    let data = Bytes::from(vec![0x5a; size]);
    let window = Window::starting_now(warmup, duration);
    let tasks: Vec<_> = (0..in_flight)
        .map(|_| tokio::spawn(scenarios::unary_worker(conn.clone(), data.clone(), window)))
        .collect();
    let sample = scenarios::collect(tasks, duration).await;
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
    let (server, _thread) = ServerThread::spawn_on(|| Runtime::CurrentThread.build(), volley_server);
    let mut runs: Vec<Vec<Vec<Figures>>> = selected
        .iter()
        .map(|_| Channels::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    for repeat in 0..repeats {
        for (s, scenario) in selected.iter().enumerate() {
            for (y, system) in Channels::ALL.iter().enumerate() {
                let figures = runtime.block_on(run_once(&server, scenario, *system, warmup, duration));
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
    writeln!(out, "{repeats} repeat(s) of {duration:?} each, runs interleaved; medians\n")?;
    writeln!(
        out,
        "{:<14} {:<12} {:>12} {:>10} {:>10}",
        "scenario", "system", "calls/s", "p50 us", "p99 us"
    )?;
    let med = |s: usize, y: usize, f: fn(&Figures) -> f64| median(runs[s][y].iter().map(f).collect());
    for (s, scenario) in selected.iter().enumerate() {
        for (y, system) in Channels::ALL.iter().enumerate() {
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
    let (plain, balanced) = (0, 1);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    for (s, scenario) in selected.iter().enumerate() {
        let p50_cost = med(s, balanced, |f| f.p50) / med(s, plain, |f| f.p50) - 1.0;
        let rate = med(s, balanced, |f| f.rate) / med(s, plain, |f| f.rate);
        writeln!(
            out,
            "{:<14} balanced(1) adds {:+.1} % to p50; rate = {rate:.3}x channel",
            scenario.name,
            p50_cost * 100.0
        )?;
        match scenario.name {
            "unary_64B_1" => writeln!(out, "  goal: <= 5 % on the 1-in-flight p50: {}", verdict(p50_cost <= 0.05))?,
            "unary_64B_128" => writeln!(out, "  goal: >= 0.95x the rate at 128 in flight: {}", verdict(rate >= 0.95))?,
            _ => {}
        }
    }
    Ok(())
}
