//! `volley-bench tls` (feature `tls`): Volley with TLS against Volley in plaintext and tonic with
//! TLS (`tls-ring`), same run, same placement, runs interleaved: 64 B at 1 and 128 in flight and
//! 1 MiB at 1, one connection each. Certificates are made at start with rcgen (a CA and a
//! `localhost` leaf), so nothing secret is on disk.
//!
//! ```sh
//! cargo run -p volley-benches --release --features tls --bin volley-bench -- tls --repeats 5
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use volley::net::Address;
use volley::tls::{ClientTls, ServerTls};
use volley::{Client, Request, Server, Status};
use volley_benches::{ECHO, Payload, ServerThread};

use crate::callers::{Callers, Method};
use crate::report::Figures;
use crate::scenarios::{self, Kind, Window};
use crate::systems::{Conn, Runtime, pb};

/// Options of the TLS comparison.
#[derive(Debug, clap::Args)]
pub(crate) struct TlsArgs {
    /// Comma-separated scenarios (unary ones): the default are the three of issue 17.
    #[arg(long, value_delimiter = ',', default_value = "unary_64B_1,unary_64B_128,unary_1MiB_1")]
    scenarios: Vec<String>,
}

/// The systems compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TlsSystem {
    Volley,
    VolleyTls,
    TonicTls,
}

impl TlsSystem {
    const ALL: [Self; 3] = [Self::Volley, Self::VolleyTls, Self::TonicTls];

    fn name(self) -> &'static str {
        match self {
            Self::Volley => "volley",
            Self::VolleyTls => "volley+tls",
            Self::TonicTls => "tonic+tls",
        }
    }
}

/// A CA and a `localhost` leaf (DNS name and 127.0.0.1), in PEM.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

pub(crate) fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "volley-bench CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The three servers, each on its own thread and current-thread runtime.
struct TlsServers {
    volley: Address,
    volley_tls: Address,
    tonic_tls: SocketAddr,
    pki: Pki,
    _threads: Vec<ServerThread>,
}

async fn volley_server(tls: Option<ServerTls>) -> Address {
    let builder = Server::builder().unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()));
    let builder = match tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    };
    let handle = builder.build().expect("valid server").serve("127.0.0.1:0").await.expect("bind");
    let address = handle.local_addr().clone();
    // The server lives as long as its thread's runtime.
    std::mem::forget(handle);
    address
}

fn start() -> TlsServers {
    let pki = pki();
    let build = || Runtime::CurrentThread.build();
    let (volley, plain_thread) = ServerThread::spawn_on(build, || volley_server(None));
    let server_tls = ServerTls::builder_from_pem(pki.cert_pem.as_bytes(), pki.key_pem.as_bytes())
        .expect("PEM")
        .build()
        .expect("server TLS");
    let (volley_tls, tls_thread) = ServerThread::spawn_on(build, move || volley_server(Some(server_tls)));
    let identity = tonic::transport::Identity::from_pem(&pki.cert_pem, &pki.key_pem);
    let (tonic_tls, tonic_thread) = ServerThread::spawn_on(build, move || async move {
        let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind")
            .with_nodelay(Some(true));
        let addr = incoming.local_addr().expect("address");
        let server = tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .expect("tonic TLS config")
            .add_service(pb::echo_server::EchoServer::new(crate::systems::TonicEcho))
            .serve_with_incoming(incoming);
        tokio::spawn(server);
        addr
    });
    TlsServers {
        volley,
        volley_tls,
        tonic_tls,
        pki,
        _threads: vec![plain_thread, tls_thread, tonic_thread],
    }
}

async fn connect(servers: &TlsServers, system: TlsSystem) -> Conn {
    match system {
        TlsSystem::Volley => Conn::Volley(Client::connect(&servers.volley).await.expect("connect volley")),
        TlsSystem::VolleyTls => {
            let tls = ClientTls::builder()
                .ca_pem(servers.pki.ca_pem.as_bytes())
                .expect("CA PEM")
                .server_name("localhost")
                .build()
                .expect("client TLS");
            Conn::Volley(
                Client::builder()
                    .tls(tls)
                    .connect(&servers.volley_tls)
                    .await
                    .expect("connect volley+tls"),
            )
        }
        TlsSystem::TonicTls => {
            let tls = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&servers.pki.ca_pem))
                .domain_name("localhost");
            let channel = tonic::transport::Endpoint::from_shared(format!("https://{}", servers.tonic_tls))
                .expect("endpoint")
                .tls_config(tls)
                .expect("tonic TLS config")
                .tcp_nodelay(true)
                .connect()
                .await
                .expect("connect tonic+tls");
            Conn::Tonic(pb::echo_client::EchoClient::new(channel))
        }
    }
}

/// One run's figures, and for Volley with TLS its client's TLS records and writes per call.
struct Run {
    figures: Figures,
    records_per_call: Option<f64>,
    writes_per_call: Option<f64>,
}

async fn run_once(servers: &TlsServers, scenario: &scenarios::Scenario, system: TlsSystem, warmup: Duration, duration: Duration) -> Run {
    let Kind::Unary { size, in_flight, .. } = scenario.kind else {
        unreachable!("checked: unary scenarios only")
    };
    let conn = connect(servers, system).await;
    let before = match &conn {
        Conn::Volley(client) => Some(client.stats()),
        _ => None,
    };
    let data = Bytes::from(vec![0x5a; size]);
    let window = Window::starting_now(warmup, duration);
    let callers = Callers::spawn((0..in_flight).map(|_| conn.clone()), &data, Method::Echo, window);
    let sample = callers.collect(duration).await;
    let (records_per_call, writes_per_call) = match (&conn, before) {
        (Conn::Volley(client), Some(before)) if system == TlsSystem::VolleyTls => {
            let after = client.stats();
            let calls = (after.calls_started - before.calls_started).max(1) as f64;
            (
                Some((after.tls_records_out - before.tls_records_out) as f64 / calls),
                Some((after.write_syscalls - before.write_syscalls) as f64 / calls),
            )
        }
        _ => (None, None),
    };
    Run {
        figures: Figures::of(&sample, scenario),
        records_per_call,
        writes_per_call,
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

/// Runs the comparison and prints the table, the ratios and the goals of issue 17.
pub(crate) fn run(
    args: &TlsArgs,
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
    let servers = start();
    let mut runs: Vec<Vec<Vec<Run>>> = selected
        .iter()
        .map(|_| TlsSystem::ALL.iter().map(|_| Vec::new()).collect())
        .collect();
    for repeat in 0..repeats {
        for (s, scenario) in selected.iter().enumerate() {
            for (y, system) in TlsSystem::ALL.iter().enumerate() {
                let run = runtime.block_on(run_once(&servers, scenario, *system, warmup, duration));
                eprintln!(
                    "repeat {} {} {}: {:.0}/s p50 {:.1} us p99 {:.1} us",
                    repeat + 1,
                    scenario.name,
                    system.name(),
                    run.figures.rate,
                    run.figures.p50,
                    run.figures.p99
                );
                if let Some(file) = json.as_mut() {
                    writeln!(
                        file,
                        "{{\"tls\":true,\"scenario\":\"{}\",\"system\":\"{}\",\"repeat\":{repeat},\"rate\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2}}}",
                        scenario.name,
                        system.name(),
                        run.figures.rate,
                        run.figures.p50,
                        run.figures.p99
                    )?;
                }
                runs[s][y].push(run);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nplacement: {}", Runtime::CurrentThread.placement())?;
    writeln!(out, "{repeats} repeat(s) of {duration:?} each, runs interleaved; medians\n")?;
    writeln!(
        out,
        "{:<14} {:<11} {:>12} {:>10} {:>10} {:>13} {:>12}",
        "scenario", "system", "calls/s", "p50 us", "p99 us", "records/call", "writes/call"
    )?;
    let med = |s: usize, y: usize, f: fn(&Run) -> f64| median(runs[s][y].iter().map(f).collect());
    for (s, scenario) in selected.iter().enumerate() {
        for (y, system) in TlsSystem::ALL.iter().enumerate() {
            let optional = |f: fn(&Run) -> Option<f64>| {
                let values: Vec<f64> = runs[s][y].iter().filter_map(f).collect();
                if values.is_empty() {
                    "-".to_owned()
                } else {
                    format!("{:.3}", median(values))
                }
            };
            writeln!(
                out,
                "{:<14} {:<11} {:>12.0} {:>10.1} {:>10.1} {:>13} {:>12}",
                scenario.name,
                system.name(),
                med(s, y, |r| r.figures.rate),
                med(s, y, |r| r.figures.p50),
                med(s, y, |r| r.figures.p99),
                optional(|r| r.records_per_call),
                optional(|r| r.writes_per_call),
            )?;
        }
    }
    writeln!(out)?;
    let (plain, tls, tonic) = (0, 1, 2);
    for (s, scenario) in selected.iter().enumerate() {
        let p50_cost = med(s, tls, |r| r.figures.p50) / med(s, plain, |r| r.figures.p50) - 1.0;
        let vs_plain = med(s, tls, |r| r.figures.rate) / med(s, plain, |r| r.figures.rate);
        let vs_tonic = med(s, tls, |r| r.figures.rate) / med(s, tonic, |r| r.figures.rate);
        writeln!(
            out,
            "{:<14} TLS adds {:+.1} % to p50; volley+tls rate = {vs_plain:.2}x volley, {vs_tonic:.1}x tonic+tls",
            scenario.name,
            p50_cost * 100.0
        )?;
        let verdict = |met: bool| if met { "met" } else { "MISSED" };
        match scenario.name {
            "unary_64B_1" => writeln!(
                out,
                "  goal: TLS adds <= 15 % to the 1-in-flight p50: {}",
                verdict(p50_cost <= 0.15)
            )?,
            "unary_64B_128" => {
                writeln!(
                    out,
                    "  goal: >= 0.8x the plaintext rate at 128 in flight: {}",
                    verdict(vs_plain >= 0.8)
                )?;
                writeln!(out, "  goal: >= 5x tonic+tls at 128 in flight: {}", verdict(vs_tonic >= 5.0))?;
            }
            _ => {}
        }
    }
    Ok(())
}
