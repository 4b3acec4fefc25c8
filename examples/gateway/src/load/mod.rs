//! The load generator: accounts sending a realistic order mix through the generated client, each
//! response checked, and every accepted command checked against the account's report stream (no
//! acknowledgement lost or duplicated).
//!
//! Each account has its own connection (its session). In [`EntryMode::Unary`] it has `in_flight`
//! lanes each making one call at a time; in [`EntryMode::Stream`] one `OrderStream` with up to
//! `in_flight` commands outstanding, answered in order. The mix: 70 % new orders (limit around a
//! moving mid, one in ten immediate-or-cancel), 20 % cancels and 10 % replaces of the account's
//! open orders. The generator follows its own orders through its report streams (a fill that
//! completes an order takes it off the list) and keeps at most 64 open per account, so its
//! commands are rarely rejected, unless a reject mix is asked for (`reject_percent`: that share of
//! commands are new orders of quantity 0). At a fixed rate, latency is
//! measured from when each command was due (so a stall counts against every command it delayed:
//! no coordinated omission); flat out, from when it was sent.

mod baseline;
mod lane;
mod reports;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use volley::net::Address;
use volley::{Client, Status};

use crate::engine::SymbolSpec;
use crate::proto::order_entry_client::OrderEntryClient;
use crate::proto::{ExecType, SubscribeReports};
pub use baseline::{BASELINE_CALLS, unary_after_fsync, unary_baseline};
use lane::{AccountBook, Lane, Mix};
use reports::ReportCollector;

/// How long the check waits for the report streams to catch up after the last command.
const REPORT_GRACE: Duration = Duration::from_secs(3);

/// Deadline of each command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Accounts, each on its own connection: `acct-0`, `acct-1`, ...
    pub accounts: usize,
    /// Commands in flight per account.
    pub in_flight: usize,
    /// How long to send.
    pub duration: Duration,
    /// Commands per second over all accounts, or `None` for flat out.
    pub rate: Option<u64>,
    /// The symbols to trade, with their reference prices.
    pub symbols: Vec<SymbolSpec>,
    /// Seed of the order mix.
    pub seed: u64,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// A prefix for every cl_ord_id, so runs against one journal never reuse ids.
    pub run_id: String,
    /// How commands are sent.
    pub mode: EntryMode,
    /// Percent of commands sent malformed on purpose (rejected INVALID_QUANTITY); 0 by default.
    pub reject_percent: u32,
}

/// How the load generator sends commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EntryMode {
    /// Unary `NewOrder`/`CancelOrder`/`ReplaceOrder` calls, `in_flight` at a time per account.
    #[default]
    Unary,
    /// One bidirectional `OrderStream` per account with `in_flight` commands outstanding.
    Stream,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            accounts: 8,
            in_flight: 4,
            duration: Duration::from_secs(5),
            rate: None,
            symbols: crate::config::default_symbols(),
            seed: 1,
            progress: false,
            mode: EntryMode::Unary,
            reject_percent: 0,
            run_id: format!("{:x}", std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap_or_default().as_millis()),
        }
    }
}

/// What a load run saw.
#[derive(Debug)]
pub struct LoadReport {
    /// Commands sent.
    pub commands: u64,
    /// Commands accepted (acknowledged durable).
    pub accepted: u64,
    /// New orders accepted (acknowledged durable).
    pub new_orders: u64,
    /// Rejects by reason.
    pub rejects: BTreeMap<&'static str, u64>,
    /// Calls that failed with a status (transport failure, journal failure, shutdown).
    pub errors: u64,
    /// The first such status.
    pub first_error: Option<Status>,
    /// Responses that did not answer the command sent (wrong account or cl_ord_id).
    pub mismatched: u64,
    /// Accepted commands whose report never came on the account's stream.
    pub lost: u64,
    /// Accepted commands whose report came more than once.
    pub duplicated: u64,
    /// Fills seen on the report streams.
    pub fills: u64,
    /// How long the sending took.
    pub elapsed: Duration,
    /// Command-to-acknowledgement latency, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Order-to-acknowledgement latency of the accepted new orders, in nanoseconds.
    pub order_latency: Histogram<u64>,
    /// Every new order acknowledged: (account, cl_ord_id).
    pub acknowledged_orders: Vec<(String, String)>,
}

impl LoadReport {
    /// Commands answered per second.
    pub fn commands_per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// New orders acknowledged per second.
    pub fn orders_per_second(&self) -> f64 {
        self.new_orders as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// All rejects.
    pub fn rejected(&self) -> u64 {
        self.rejects.values().sum()
    }

    /// Rejects per second.
    pub fn rejects_per_second(&self) -> f64 {
        self.rejected() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The share of commands rejected, from 0 to 1.
    pub fn reject_ratio(&self) -> f64 {
        self.rejected() as f64 / self.commands.max(1) as f64
    }

    /// The order-to-acknowledgement latency of accepted new orders at quantile `q`.
    pub fn order_latency_at(&self, q: f64) -> Duration {
        Duration::from_nanos(self.order_latency.value_at_quantile(q))
    }

    /// Whether every check passed: no mismatched, lost or duplicated acknowledgement.
    pub fn is_consistent(&self) -> bool {
        self.mismatched == 0 && self.lost == 0 && self.duplicated == 0
    }

    /// The latency at quantile `q`.
    pub fn latency_at(&self, q: f64) -> Duration {
        Duration::from_nanos(self.latency.value_at_quantile(q))
    }

    /// A human summary, several lines.
    pub fn summary(&self) -> String {
        let rejects: Vec<String> = self.rejects.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
        format!(
            "{} commands in {:.2?}: {:.0} commands/s; {} accepted, {} rejected ({}), {} errors{}\n\
             orders: {:.0} new orders/s acknowledged; rejects: {:.0}/s ({:.2} % of commands)\n\
             order-to-ack latency (new orders): p50 {:.1?}, p99 {:.1?}, p99.9 {:.1?}\n\
             command-to-ack latency (every command): p50 {:.1?}, p99 {:.1?}, p99.9 {:.1?}, max {:.1?}\n\
             checks: {} mismatched responses, {} lost and {} duplicated acknowledgements; {} fills reported",
            self.commands,
            self.elapsed,
            self.commands_per_second(),
            self.accepted,
            self.rejected(),
            if rejects.is_empty() {
                "none".to_owned()
            } else {
                rejects.join(", ")
            },
            self.errors,
            self.first_error.as_ref().map(|s| format!(" (first: {s})")).unwrap_or_default(),
            self.orders_per_second(),
            self.rejects_per_second(),
            self.reject_ratio() * 100.0,
            self.order_latency_at(0.5),
            self.order_latency_at(0.99),
            self.order_latency_at(0.999),
            self.latency_at(0.5),
            self.latency_at(0.99),
            self.latency_at(0.999),
            Duration::from_nanos(self.latency.max()),
            self.mismatched,
            self.lost,
            self.duplicated,
            self.fills,
        )
    }
}

/// A load run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// An account could not connect or subscribe.
    #[error("account {account} could not start: {reason}")]
    Start {
        /// The account.
        account: String,
        /// Why.
        reason: String,
    },
    /// Nothing to trade.
    #[error("no symbols to trade")]
    NoSymbols,
}

/// One account's tallies.
#[derive(Debug)]
struct Tally {
    commands: u64,
    accepted: u64,
    accepted_new: u64,
    rejects: BTreeMap<&'static str, u64>,
    errors: u64,
    first_error: Option<Status>,
    mismatched: u64,
    latency: Histogram<u64>,
    order_latency: Histogram<u64>,
    /// (account, cl_ord_id, journal sequence) of every accepted command.
    accepted_ids: Vec<(String, String, u64)>,
    acknowledged_orders: Vec<(String, String)>,
}

impl Tally {
    fn new() -> Self {
        // 3 significant figures up to 60 s: creation cannot fail with these bounds.
        let histogram = || Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"));
        Self {
            commands: 0,
            accepted: 0,
            accepted_new: 0,
            rejects: BTreeMap::new(),
            errors: 0,
            first_error: None,
            mismatched: 0,
            latency: histogram(),
            order_latency: histogram(),
            accepted_ids: Vec::new(),
            acknowledged_orders: Vec::new(),
        }
    }

    fn merge(&mut self, other: Self) {
        self.commands += other.commands;
        self.accepted += other.accepted;
        self.accepted_new += other.accepted_new;
        for (reason, n) in other.rejects {
            *self.rejects.entry(reason).or_default() += n;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.mismatched += other.mismatched;
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.order_latency.add(&other.order_latency);
        self.accepted_ids.extend(other.accepted_ids);
        self.acknowledged_orders.extend(other.acknowledged_orders);
    }
}

/// Runs the load against `target` and checks every answer.
pub async fn run(target: Address, options: LoadOptions) -> Result<LoadReport, LoadError> {
    if options.symbols.is_empty() {
        return Err(LoadError::NoSymbols);
    }
    let lanes_total = match options.mode {
        EntryMode::Unary => options.accounts * options.in_flight,
        EntryMode::Stream => options.accounts,
    }
    .max(1) as f64;
    let interval = options.rate.map(|rate| Duration::from_secs_f64(lanes_total / rate.max(1) as f64));

    let mut collectors = Vec::new();
    let mut lanes = Vec::new();
    for index in 0..options.accounts {
        let account = format!("acct-{index}");
        let start_error = |reason: String| LoadError::Start {
            account: account.clone(),
            reason,
        };
        let client = Client::connect(target.clone()).await.map_err(|err| start_error(err.to_string()))?;
        let orders = OrderEntryClient::new(client);
        let reports = orders
            .execution_reports(SubscribeReports {
                account: account.clone(),
                after_sequence: 0,
            })
            .await
            .map_err(|status| start_error(status.to_string()))?;
        let book = Arc::new(Mutex::new(AccountBook::default()));
        collectors.push(
            ReportCollector::start(account.clone(), reports, book.clone())
                .await
                .map_err(|status| start_error(status.to_string()))?,
        );
        let lanes_per_account = match options.mode {
            EntryMode::Unary => options.in_flight,
            EntryMode::Stream => 1,
        };
        for lane in 0..lanes_per_account {
            lanes.push(Lane {
                orders: orders.clone(),
                account: account.clone(),
                book: book.clone(),
                mix: Mix::new(options.seed ^ ((index as u64) << 20) ^ lane as u64),
                symbols: options.symbols.clone(),
                run_id: options.run_id.clone(),
                cod: index % 2 == 1,
                reject_percent: options.reject_percent.min(100),
                drift: vec![0; options.symbols.len()],
            });
        }
    }

    let progress = progress_bar(&options);
    let started = Instant::now();
    let until = started + options.duration;
    let mut running = JoinSet::new();
    for lane in lanes {
        running.spawn(lane.run(options.mode, options.in_flight, until, interval, progress.clone()));
    }
    let mut tally = Tally::new();
    while let Some(joined) = running.join_next().await {
        if let Ok(lane) = joined {
            tally.merge(lane);
        }
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();

    // Every accepted command must show up exactly once on its account's report stream.
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut fills = 0;
    for collector in collectors {
        let highest = tally
            .accepted_ids
            .iter()
            .filter(|(account, _, _)| *account == collector.account)
            .map(|(_, _, sequence)| *sequence)
            .max()
            .unwrap_or(0);
        for report in collector.finish(highest).await {
            if report.exec_type == ExecType::Fill as i32 {
                fills += 1;
            } else if report.exec_type != ExecType::Reject as i32 {
                *counts.entry(report.cl_ord_id).or_default() += 1;
            }
        }
    }
    let (mut lost, mut duplicated) = (0, 0);
    for (_, cl_ord_id, _) in &tally.accepted_ids {
        match counts.get(cl_ord_id).copied().unwrap_or(0) {
            0 => {
                lost += 1;
                tracing::warn!(cl_ord_id, "an accepted command never showed up on its account's report stream");
            }
            1 => {}
            _ => duplicated += 1,
        }
    }
    Ok(LoadReport {
        commands: tally.commands,
        accepted: tally.accepted,
        new_orders: tally.accepted_new,
        rejects: tally.rejects,
        errors: tally.errors,
        first_error: tally.first_error,
        mismatched: tally.mismatched,
        lost,
        duplicated,
        fills,
        elapsed,
        latency: tally.latency,
        order_latency: tally.order_latency,
        acknowledged_orders: tally.acknowledged_orders,
    })
}

fn progress_bar(options: &LoadOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.duration.as_millis() as u64);
    if let Ok(style) = ProgressStyle::with_template("{spinner} load [{bar:30}] {elapsed}/{duration} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
