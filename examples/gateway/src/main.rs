//! `volley-gateway`: the trading order gateway, its load generator, and a demo of both.
//!
//! - `volley-gateway` (or `volley-gateway demo`): starts a gateway on loopback with a journal in a
//!   temporary directory, runs the load generator for a few seconds, prints the summary and the
//!   metrics address, and shuts down cleanly. Needs nothing else.
//! - `volley-gateway serve [--config gateway.toml] [--listen ..] [--journal ..] [--fsync ..]`:
//!   runs the gateway until SIGTERM or Ctrl-C, then shuts down gracefully.
//! - `volley-gateway load --target 127.0.0.1:7070 [--accounts ..] [--seconds ..] [--rate ..]`:
//!   runs the load generator against a running gateway.
//! - `volley-gateway demo --shards 3`: the same with the symbols sharded over three gateway
//!   processes (`serve --shards 3 --shard K`), each with its own journal, loaded through the shard
//!   map (docs/scale-out.md). `load --shards 3 --target A,B,C` loads running shards.
//! - `volley-gateway config --print [--config gateway.toml] [flags]`: prints the effective
//!   configuration (symbols, reference prices, ticks, limits…) as TOML.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gateway::app::RunningGateway;
use gateway::config::Config;
use gateway::journal::FsyncPolicy;
use gateway::load::{EntryMode, LoadOptions, LoadReport};
use gateway::shard::{ShardId, ShardPlan};
use tracing_subscriber::EnvFilter;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (feature `jemalloc`), read once at its start: a background thread purges
/// pages freed for 1 s and returns them to the kernel at once, so memory freed after a burst does
/// not stay resident while the gateway idles (the same settings `volley-soak` is measured with).
#[cfg(feature = "jemalloc")]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this NUL-terminated string, once, as its `malloc_conf`; nothing writes it.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[derive(Debug, Parser)]
#[command(
    name = "volley-gateway",
    version,
    about = "A trading order gateway on Volley, with its load generator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a gateway, load it for a few seconds, print the results, stop (the default).
    Demo(DemoArgs),
    /// Run the gateway until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Run the load generator against a running gateway.
    Load(LoadArgs),
    /// Show the configuration: `config --print` prints the effective TOML (defaults, then the
    /// file, then the flags), every key included.
    Config(ConfigArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Print the effective configuration as TOML (a file `--config` accepts).
    #[arg(long)]
    print: bool,
}

/// Flags shared by `serve` and `demo`: each overrides the config file.
#[derive(Debug, Args, Default)]
struct GatewayArgs {
    /// A TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Order-entry address: ip:port or unix:/path.
    #[arg(long)]
    listen: Option<String>,
    /// The journal file.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Journal fsync policy: `every`, `group` (group commit, the default), `group:<µs>` or `none`.
    #[arg(long)]
    fsync: Option<FsyncPolicy>,
    /// Keep the CPU busy during each fsync with an idle-priority spinner thread (a shorter
    /// order-to-ack for the CPU time of the fsync's wait).
    #[arg(long)]
    fsync_spin: bool,
    /// Prometheus endpoint address, or `off`.
    #[arg(long)]
    metrics: Option<String>,
    /// Shard the symbols over this many instances (docs/scale-out.md): `demo` starts them as
    /// processes; `serve` and `config` need `--shard` too.
    #[arg(long)]
    shards: Option<u32>,
    /// Run as this shard (from 0) of `--shards`: only its symbols, its share of account limits.
    #[arg(long, requires = "shards")]
    shard: Option<u32>,
}

impl GatewayArgs {
    fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path).map_err(|err| err.to_string())?,
            None => Config::default(),
        };
        if let Some(listen) = &self.listen {
            config.listen.clone_from(listen);
        }
        if let Some(journal) = &self.journal {
            config.journal.clone_from(journal);
        }
        if let Some(fsync) = self.fsync {
            config.fsync = fsync;
        }
        if self.fsync_spin {
            config.fsync_spin = true;
        }
        if let Some(metrics) = &self.metrics {
            config.metrics = (metrics != "off").then(|| metrics.clone());
        }
        if let (Some(shards), Some(shard)) = (self.shards, self.shard) {
            let plan = ShardPlan::new(&config.symbols, shards).map_err(|err| err.to_string())?;
            config = plan.shard_config(&config, ShardId(shard)).map_err(|err| err.to_string())?;
        }
        config.validate().map_err(|err| err.to_string())?;
        Ok(config)
    }

    /// `serve` and `config` run one instance: with `--shards`, `--shard` must say which.
    fn one_instance(&self) -> Result<(), String> {
        if self.shards.is_some() && self.shard.is_none() {
            return Err("--shards needs --shard K to say which shard this instance is (from 0)".into());
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, Args)]
struct LoadFlags {
    /// Accounts, each on its own connection.
    #[arg(long, default_value_t = 8)]
    accounts: usize,
    /// Commands in flight per account.
    #[arg(long, default_value_t = 4)]
    in_flight: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Commands per second over all accounts; flat out when left out.
    #[arg(long)]
    rate: Option<u64>,
    /// Seed of the order mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `unary` calls, or one `stream` (OrderStream) per account.
    #[arg(long, value_enum, default_value_t = EntryMode::Unary)]
    mode: EntryMode,
    /// Percent of commands sent malformed on purpose (rejected), to load the reject path.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    reject_percent: u32,
}

impl LoadFlags {
    fn options(&self, config: &Config) -> LoadOptions {
        LoadOptions {
            accounts: self.accounts.max(1),
            in_flight: self.in_flight.max(1),
            duration: Duration::from_secs_f64(self.seconds.clamp(0.1, 3600.0)),
            rate: self.rate,
            symbols: config.symbols.clone(),
            seed: self.seed,
            mode: self.mode,
            reject_percent: self.reject_percent,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ..LoadOptions::default()
        }
    }
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    gateway: GatewayArgs,
    #[command(flatten)]
    load: LoadFlags,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// The gateway's order-entry address; with `--shards N`, N addresses in shard order, comma-separated.
    #[arg(long, default_value = gateway::config::DEFAULT_LISTEN)]
    target: String,
    /// The gateway is sharded over this many instances: each shard's symbols go to its address.
    #[arg(long)]
    shards: Option<u32>,
    /// A config file naming the symbols to trade (the defaults otherwise).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    load: LoadFlags,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, never into a file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            demo(DemoArgs {
                gateway: GatewayArgs::default(),
                load: LoadFlags::parse_default(),
            })
            .await
        }
        Some(Command::Demo(args)) => demo(args).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Load(args)) => load(args).await,
        Some(Command::Config(args)) => print_config(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("volley-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

impl LoadFlags {
    /// The defaults of the flags, for the bare `volley-gateway` command.
    fn parse_default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            load: LoadFlags,
        }
        Defaults::parse_from(["volley-gateway"]).load
    }
}

/// The demo: a gateway on a port of its own and a journal in a fresh temporary directory.
async fn demo(args: DemoArgs) -> Result<(), String> {
    let mut config = args.gateway.config()?;
    let scratch = std::env::temp_dir().join(format!("volley-gateway-demo-{}", std::process::id()));
    if args.gateway.listen.is_none() {
        config.listen = "127.0.0.1:0".into();
    }
    if args.gateway.journal.is_none() {
        std::fs::create_dir_all(&scratch).map_err(|err| format!("cannot create {}: {err}", scratch.display()))?;
        config.journal = scratch.join("gateway.journal");
    }
    if args.gateway.metrics.is_none()
        && let Some(address) = &config.metrics
        && std::net::TcpListener::bind(address.as_str()).is_err()
    {
        // Another program has the usual metrics port: the demo takes any free one instead.
        config.metrics = Some("127.0.0.1:0".into());
    }
    if args.gateway.config.is_none() {
        // The demo is a benchmark: lift the per-account throttle and runaway halt so it
        // measures the gateway.
        config.limits.orders_per_second = 1_000_000;
        config.limits.burst = 100_000;
        config.limits.runaway_messages = 0;
    }
    let options = args.load.options(&config);
    if let Some(shards) = args.gateway.shards {
        return demo_sharded(&args, &config, shards, options, &scratch).await;
    }
    let running = start(&config).await?;
    println!(
        "load: {} accounts × {} in flight ({:?}), {} for {:.1?}, symbols {}",
        options.accounts,
        options.in_flight,
        options.mode,
        options.rate.map_or("flat out".to_owned(), |rate| format!("{rate} commands/s")),
        options.duration,
        config.symbols.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    // The unary round trip on the same gateway and placement, to compare order-to-ack with.
    let unary = gateway::load::unary_baseline(running.local_addr().clone(), gateway::load::BASELINE_CALLS)
        .await
        .map_err(|err| err.to_string())?;
    let unary_p50 = Duration::from_nanos(unary.value_at_quantile(0.5));
    // The bound of issue #19 is about one order at a time.
    let lone_order = options.accounts == 1 && options.in_flight == 1;
    // With fsyncs, the same round trip made right after one, as a lone order's transport runs.
    let unary_after_fsync = if lone_order && config.fsync != FsyncPolicy::Never {
        let scratch = config.journal.with_extension(format!("unary-after-fsync-{}", std::process::id()));
        let after = gateway::load::unary_after_fsync(running.local_addr().clone(), gateway::load::BASELINE_CALLS, &scratch)
            .await
            .map_err(|err| err.to_string())?;
        Some(after)
    } else {
        None
    };
    let report = gateway::load::run(running.local_addr().clone(), options)
        .await
        .map_err(|err| err.to_string())?;
    print_report(&report);
    println!(
        "unary round trip (QueryOrder of an unknown order, 1 in flight, before the load): p50 {unary_p50:.1?}, p99 {:.1?}; \
         order-to-ack p50 is {:.1}x it",
        Duration::from_nanos(unary.value_at_quantile(0.99)),
        report.order_latency_at(0.5).as_secs_f64() / unary_p50.as_secs_f64().max(1e-9)
    );
    if let Some(address) = running.metrics_addr() {
        let scrape = scrape(address).await;
        println!("metrics were at http://{address}/metrics ({scrape})");
    }
    let journal = running.gateway().journal_stats();
    let fsync_latency = running.gateway().fsync_latency();
    let fsync_p50 = (journal.fsyncs > 0).then(|| Duration::from_nanos(fsync_latency.value_at_quantile(0.5)));
    let syncs = match fsync_p50 {
        None => "no fsync".to_owned(),
        Some(p50) => format!(
            "{} fsyncs: p50 {p50:.1?}, p99 {:.1?}, mean {:.1?}; {:.1} records each",
            journal.fsyncs,
            Duration::from_nanos(fsync_latency.value_at_quantile(0.99)),
            journal.fsync_time / u32::try_from(journal.fsyncs).unwrap_or(u32::MAX),
            journal.records_written as f64 / journal.fsyncs as f64
        ),
    };
    println!(
        "journal: {} records, {} bytes, {syncs}",
        journal.records_written, journal.bytes_written
    );
    if lone_order {
        println!("{}", latency_bound(report.order_latency_at(0.5), unary_p50, fsync_p50));
    }
    if let (Some(after), Some(fsync_p50)) = (&unary_after_fsync, fsync_p50) {
        println!(
            "{}",
            like_for_like(
                report.order_latency_at(0.5),
                fsync_p50,
                Duration::from_nanos(after.value_at_quantile(0.5))
            )
        );
    }
    let stats = running.server_stats();
    println!(
        "transport (server): {} calls, {} write syscalls, {:.1} frames per write",
        stats.calls_started,
        stats.write_syscalls,
        stats.frames_per_write()
    );
    running.shutdown().await.map_err(|err| err.to_string())?;
    if args.gateway.journal.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
        println!("gateway stopped cleanly; its temporary journal is removed (keep one with --journal PATH)");
    } else {
        println!("gateway stopped cleanly; journal at {}", config.journal.display());
    }
    if report.is_consistent() {
        Ok(())
    } else {
        Err("the load's checks failed (see above)".into())
    }
}

/// `demo --shards N`: N shard processes of this program, loaded through the shard map.
async fn demo_sharded(args: &DemoArgs, config: &Config, shards: u32, options: LoadOptions, scratch: &Path) -> Result<(), String> {
    if args.gateway.shard.is_some() {
        return Err("demo --shards starts every shard itself: leave out --shard".into());
    }
    std::fs::create_dir_all(scratch).map_err(|err| format!("cannot create {}: {err}", scratch.display()))?;
    let program = std::env::current_exe().map_err(|err| format!("cannot find this program to start the shards: {err}"))?;
    let report = gateway::shard::run_demo(&program, config, shards, options, scratch).await;
    // The scratch directory holds the shards' config file, and their journals unless --journal.
    let _ = std::fs::remove_dir_all(scratch);
    if args.gateway.journal.is_none() {
        println!("the shards' temporary journals are removed (keep them with --journal PATH)");
    } else {
        println!("the shards' journals are at {}.shard-K", config.journal.display());
    }
    let report = report.map_err(|err| err.to_string())?;
    if report.is_consistent() {
        Ok(())
    } else {
        Err("the load's checks failed (see above)".into())
    }
}

/// The bound's allowance compared like for like: a lone order's latency beyond its fsync against
/// twice the unary round trip made right after an fsync (as the order's transport half runs), not
/// back to back. A diagnostic next to [`latency_bound`], not the bound.
fn like_for_like(order_p50: Duration, fsync_p50: Duration, unary_after_fsync_p50: Duration) -> String {
    let beyond = order_p50.saturating_sub(fsync_p50);
    let allowance = 2 * unary_after_fsync_p50;
    format!(
        "like for like: order-to-ack p50 − fsync p50 = {beyond:.1?} against 2 × unary p50 right after an fsync {unary_after_fsync_p50:.1?} = {allowance:.1?} ({:.0} %)",
        100.0 * beyond.as_secs_f64() / allowance.as_secs_f64().max(1e-9)
    )
}

/// Issue #19's bound on a lone order's (one account, one in flight) order-to-ack p50, checked: at most twice the unary p50
/// without fsyncs, and the fsync p50 plus twice the unary p50 with them (all from one run).
fn latency_bound(order_p50: Duration, unary_p50: Duration, fsync_p50: Option<Duration>) -> String {
    let (bound, formula) = match fsync_p50 {
        None => (2 * unary_p50, format!("2 × unary p50 {unary_p50:.1?}")),
        Some(fsync) => (
            fsync + 2 * unary_p50,
            format!("fsync p50 {fsync:.1?} + 2 × unary p50 {unary_p50:.1?}"),
        ),
    };
    let verdict = if order_p50 <= bound { "met" } else { "MISSED" };
    format!(
        "latency bound: order-to-ack p50 {order_p50:.1?} ≤ {formula} = {bound:.1?}: {verdict} ({:.0} % of the bound)",
        100.0 * order_p50.as_secs_f64() / bound.as_secs_f64().max(1e-9)
    )
}

/// `config --print`: the effective configuration as TOML on standard output.
fn print_config(args: &ConfigArgs) -> Result<(), String> {
    if !args.print {
        return Err("say what to do with the configuration: `volley-gateway config --print`".into());
    }
    args.gateway.one_instance()?;
    let config = args.gateway.config()?;
    print!("{}", config.to_toml().map_err(|err| err.to_string())?);
    Ok(())
}

async fn start(config: &Config) -> Result<RunningGateway, String> {
    let running = RunningGateway::start(config).await.map_err(|err| err.to_string())?;
    let replay = running.replay();
    println!(
        "gateway listening on {} (journal {}, fsync {}, {} records replayed{})",
        running.local_addr(),
        config.journal.display(),
        config.fsync,
        replay.records,
        if replay.truncated_bytes > 0 {
            format!(", torn tail of {} bytes cut", replay.truncated_bytes)
        } else {
            String::new()
        }
    );
    if let Some(address) = running.metrics_addr() {
        println!("metrics at http://{address}/metrics");
    }
    Ok(running)
}

/// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
async fn serve(args: ServeArgs) -> Result<(), String> {
    args.gateway.one_instance()?;
    let config = args.gateway.config()?;
    let running = start(&config).await?;
    wait_for_signal().await?;
    println!("shutting down: draining calls and flushing the journal");
    running.shutdown().await.map_err(|err| err.to_string())?;
    println!("gateway stopped cleanly");
    Ok(())
}

async fn wait_for_signal() -> Result<(), String> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| format!("cannot listen for SIGTERM: {err}"))?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn load(args: LoadArgs) -> Result<(), String> {
    let config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|err| err.to_string())?,
        None => Config::default(),
    };
    if let Some(shards) = args.shards {
        let plan = ShardPlan::new(&config.symbols, shards).map_err(|err| err.to_string())?;
        let targets = args
            .target
            .split(',')
            .map(|target| target.trim().parse())
            .collect::<Result<Vec<_>, volley::net::AddressParseError>>()
            .map_err(|err| err.to_string())?;
        let report = gateway::shard::run_sharded(&plan, &targets, args.load.options(&config))
            .await
            .map_err(|err| err.to_string())?;
        println!("{}", report.summary());
        return if report.is_consistent() {
            Ok(())
        } else {
            Err("the load's checks failed (see above)".into())
        };
    }
    let target = args.target.parse().map_err(|err: volley::net::AddressParseError| err.to_string())?;
    let report = gateway::load::run(target, args.load.options(&config))
        .await
        .map_err(|err| err.to_string())?;
    print_report(&report);
    if report.is_consistent() {
        Ok(())
    } else {
        Err("the load's checks failed (see above)".into())
    }
}

fn print_report(report: &LoadReport) {
    println!("{}", report.summary());
}

/// Scrapes the metrics endpoint once, to show it works: how many lines it served.
async fn scrape(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: gateway\r\n\r\n").await?;
        let mut body = String::new();
        stream.read_to_string(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(body)) => {
            let accepted = body
                .lines()
                .filter(|line| line.starts_with("gateway_commands_accepted_total"))
                .collect::<Vec<_>>()
                .join("; ");
            format!("{} lines; {accepted}", body.lines().count())
        }
        Ok(Err(err)) => format!("scrape failed: {err}"),
        Err(_) => "scrape timed out".into(),
    }
}
