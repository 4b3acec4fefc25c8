//! The load generator: accounts sending a realistic order mix through the generated client, each
//! response checked, and every accepted command checked against the account's report stream (no
//! acknowledgement lost or duplicated).
//!
//! Each account has its own connection (its session). In [`EntryMode::Unary`] it has `in_flight`
//! lanes each making one call at a time; in [`EntryMode::Stream`] one `OrderStream` with up to
//! `in_flight` commands outstanding, answered in order. The mix: 70 % new orders (limit around a
//! moving mid, one in ten immediate-or-cancel), 20 % cancels and 10 % replaces of the account's
//! open orders. At a fixed rate, latency is
//! measured from when each command was due (so a stall counts against every command it delayed:
//! no coordinated omission); flat out, from when it was sent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use volley::net::Address;
use volley::{CallOptions, Client, Status};

use crate::engine::SymbolSpec;
use crate::proto::order_entry_client::OrderEntryClient;
use crate::proto::{
    CancelOrderRequest, ExecType, ExecutionReport, NewOrderRequest, OrderCommand, OrderStatus, OrderType, RejectReason,
    ReplaceOrderRequest, Side, SubscribeReports, TimeInForce, order_command,
};

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
    /// Every new order acknowledged: (account, cl_ord_id).
    pub acknowledged_orders: Vec<(String, String)>,
}

impl LoadReport {
    /// Commands answered per second.
    pub fn commands_per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
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
             command-to-ack latency: p50 {:.1?}, p99 {:.1?}, p99.9 {:.1?}, max {:.1?}\n\
             checks: {} mismatched responses, {} lost and {} duplicated acknowledgements; {} fills reported",
            self.commands,
            self.elapsed,
            self.commands_per_second(),
            self.accepted,
            self.rejects.values().sum::<u64>(),
            if rejects.is_empty() {
                "none".to_owned()
            } else {
                rejects.join(", ")
            },
            self.errors,
            self.first_error.as_ref().map(|s| format!(" (first: {s})")).unwrap_or_default(),
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

/// A small deterministic generator for the order mix (xorshift64*).
#[derive(Clone, Debug)]
struct Mix(u64);

impl Mix {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// An open order of an account, as the generator remembers it.
#[derive(Clone, Debug)]
struct OpenOrder {
    cl_ord_id: String,
    price: i64,
    quantity: i64,
}

/// What one account's lanes share.
#[derive(Debug, Default)]
struct AccountBook {
    open: Vec<OpenOrder>,
    next_id: u64,
}

/// One account's tallies.
#[derive(Debug)]
struct Tally {
    commands: u64,
    accepted: u64,
    rejects: BTreeMap<&'static str, u64>,
    errors: u64,
    first_error: Option<Status>,
    mismatched: u64,
    latency: Histogram<u64>,
    /// (account, cl_ord_id, journal sequence) of every accepted command.
    accepted_ids: Vec<(String, String, u64)>,
    acknowledged_orders: Vec<(String, String)>,
}

impl Tally {
    fn new() -> Self {
        Self {
            commands: 0,
            accepted: 0,
            rejects: BTreeMap::new(),
            errors: 0,
            first_error: None,
            mismatched: 0,
            // 3 significant figures up to 60 s: creation cannot fail with these bounds.
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds")),
            accepted_ids: Vec::new(),
            acknowledged_orders: Vec::new(),
        }
    }

    fn merge(&mut self, other: Self) {
        self.commands += other.commands;
        self.accepted += other.accepted;
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
            .execution_reports(SubscribeReports { account: account.clone() })
            .await
            .map_err(|status| start_error(status.to_string()))?;
        collectors.push(
            ReportCollector::start(account.clone(), reports)
                .await
                .map_err(|status| start_error(status.to_string()))?,
        );
        let book = Arc::new(Mutex::new(AccountBook::default()));
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
        rejects: tally.rejects,
        errors: tally.errors,
        first_error: tally.first_error,
        mismatched: tally.mismatched,
        lost,
        duplicated,
        fills,
        elapsed,
        latency: tally.latency,
        acknowledged_orders: tally.acknowledged_orders,
    })
}

/// Reads one account's report stream in the background.
struct ReportCollector {
    account: String,
    reports: Arc<Mutex<Vec<ExecutionReport>>>,
    highest: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ReportCollector {
    /// Starts reading once the gateway has confirmed the subscription, so no report of a command
    /// sent after this returns can be missed.
    async fn start(account: String, mut stream: volley::Streaming<ExecutionReport>) -> Result<Self, Status> {
        match tokio::time::timeout(COMMAND_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(_confirmation))) => {}
            Ok(Ok(None)) => return Err(Status::unavailable("the report stream ended before confirming the subscription")),
            Ok(Err(status)) => return Err(status),
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "the report stream did not confirm the subscription in time",
                ));
            }
        }
        let reports: Arc<Mutex<Vec<ExecutionReport>>> = Arc::default();
        let highest: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let task = tokio::spawn({
            let (reports, highest) = (reports.clone(), highest.clone());
            async move {
                while let Ok(Some(report)) = stream.message().await {
                    highest.fetch_max(report.sequence, std::sync::atomic::Ordering::Release);
                    reports.lock().unwrap_or_else(PoisonError::into_inner).push(report);
                }
            }
        });
        Ok(Self {
            account,
            reports,
            highest,
            task,
        })
    }

    /// Waits (at most [`REPORT_GRACE`]) until the stream has reached `sequence`, then stops
    /// and gives everything received.
    async fn finish(self, sequence: u64) -> Vec<ExecutionReport> {
        let give_up = Instant::now() + REPORT_GRACE;
        while self.highest.load(std::sync::atomic::Ordering::Acquire) < sequence && Instant::now() < give_up && !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.task.abort();
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(PoisonError::into_inner))
    }
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

/// One lane: sends one command at a time for one account until `until`.
#[derive(Debug)]
struct Lane {
    orders: OrderEntryClient<Client>,
    account: String,
    book: Arc<Mutex<AccountBook>>,
    mix: Mix,
    symbols: Vec<SymbolSpec>,
    run_id: String,
    cod: bool,
    /// How far each symbol's mid has walked from its reference.
    drift: Vec<i64>,
}

/// The command a lane sends next.
#[derive(Clone, Debug)]
enum Next {
    New(NewOrderRequest),
    Cancel(CancelOrderRequest),
    Replace(ReplaceOrderRequest),
}

impl Next {
    fn cl_ord_id(&self) -> &str {
        match self {
            Self::New(order) => &order.cl_ord_id,
            Self::Cancel(cancel) => &cancel.cl_ord_id,
            Self::Replace(replace) => &replace.cl_ord_id,
        }
    }

    fn into_command(self) -> OrderCommand {
        OrderCommand {
            command: Some(match self {
                Self::New(order) => order_command::Command::NewOrder(order),
                Self::Cancel(cancel) => order_command::Command::Cancel(cancel),
                Self::Replace(replace) => order_command::Command::Replace(replace),
            }),
        }
    }
}

/// Stop a lane after this many failed calls: the gateway is failing or gone.
const MAX_LANE_ERRORS: u64 = 100;

impl Lane {
    async fn run(self, mode: EntryMode, in_flight: usize, until: Instant, interval: Option<Duration>, progress: ProgressBar) -> Tally {
        match mode {
            EntryMode::Unary => self.run_unary(until, interval, progress).await,
            EntryMode::Stream => self.run_stream(in_flight, until, interval, progress).await,
        }
    }

    /// One unary call at a time.
    async fn run_unary(mut self, until: Instant, interval: Option<Duration>, progress: ProgressBar) -> Tally {
        let mut tally = Tally::new();
        let started = Instant::now();
        let options = CallOptions::new().timeout(COMMAND_TIMEOUT);
        let mut due = started;
        while tally.errors <= MAX_LANE_ERRORS {
            if let Some(interval) = interval {
                due += interval;
                tokio::time::sleep_until(due.into()).await;
            } else {
                due = Instant::now();
            }
            if Instant::now() >= until {
                break;
            }
            let next = self.next_command();
            let result = match &next {
                Next::New(order) => self.orders.new_order_with(order.clone(), options.clone()).await,
                Next::Cancel(cancel) => self.orders.cancel_order_with(cancel.clone(), options.clone()).await,
                Next::Replace(replace) => self.orders.replace_order_with(replace.clone(), options.clone()).await,
            };
            // Latency from when the command was due: at a fixed rate a stall counts for every
            // command it held up.
            self.record(&mut tally, &next, result, due.elapsed());
            if tally.commands.is_multiple_of(64) {
                progress.set_position(started.elapsed().as_millis() as u64);
            }
        }
        tally
    }

    /// One `OrderStream` with up to `window` commands in flight, answered in order.
    async fn run_stream(mut self, window: usize, until: Instant, interval: Option<Duration>, progress: ProgressBar) -> Tally {
        let mut tally = Tally::new();
        let started = Instant::now();
        let (mut commands, mut reports) = match self.orders.order_stream().await {
            Ok(stream) => stream,
            Err(status) => {
                tally.errors += 1;
                tally.first_error = Some(status);
                return tally;
            }
        };
        let mut outstanding: VecDeque<(Instant, Next)> = VecDeque::with_capacity(window);
        let mut due = started;
        let mut sending = true;
        loop {
            while sending && outstanding.len() < window.max(1) {
                if let Some(interval) = interval {
                    due += interval;
                    if due > Instant::now() && !outstanding.is_empty() {
                        // Not due yet and answers to read: read first.
                        due -= interval;
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else {
                    due = Instant::now();
                }
                if Instant::now() >= until || tally.errors > MAX_LANE_ERRORS {
                    sending = false;
                    commands.close();
                    break;
                }
                let next = self.next_command();
                let command = Next::into_command(next.clone());
                if let Err(status) = commands.send(&command).await {
                    tally.errors += 1;
                    tally.first_error.get_or_insert(status);
                    sending = false;
                    break;
                }
                outstanding.push_back((due, next));
            }
            let Some((sent_at, next)) = outstanding.pop_front() else {
                break;
            };
            let result = match tokio::time::timeout(COMMAND_TIMEOUT, reports.message()).await {
                Ok(Ok(Some(report))) => Ok(report),
                Ok(Ok(None)) => Err(Status::unavailable("the order stream ended before answering every command")),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(Status::deadline_exceeded("no answer on the order stream in time")),
            };
            let failed = result.is_err();
            self.record(&mut tally, &next, result, sent_at.elapsed());
            if failed {
                // The stream is broken: what is still outstanding will not be answered.
                tally.errors += outstanding.len() as u64;
                break;
            }
            if tally.commands.is_multiple_of(64) {
                progress.set_position(started.elapsed().as_millis() as u64);
            }
        }
        tally
    }

    /// Checks and counts the answer to `next`.
    fn record(&self, tally: &mut Tally, next: &Next, result: Result<ExecutionReport, Status>, latency: Duration) {
        tally.commands += 1;
        match result {
            Ok(report) => {
                let _ = tally.latency.record(latency.as_nanos().max(1) as u64);
                if report.cl_ord_id != next.cl_ord_id() || report.account != self.account {
                    tally.mismatched += 1;
                }
                if report.exec_type == ExecType::Reject as i32 {
                    let reason = RejectReason::try_from(report.reject_reason).unwrap_or_default();
                    *tally.rejects.entry(reason.as_str_name()).or_default() += 1;
                } else {
                    tally.accepted += 1;
                    tally
                        .accepted_ids
                        .push((self.account.clone(), report.cl_ord_id.clone(), report.sequence));
                    self.remember(next, &report);
                    if let Next::New(_) = next {
                        tally.acknowledged_orders.push((self.account.clone(), report.cl_ord_id));
                    }
                }
            }
            Err(status) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(status);
            }
        }
    }

    fn next_command(&mut self) -> Next {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        book.next_id += 1;
        let cl_ord_id = format!("{}-{}-{}", self.run_id, self.account, book.next_id);
        let roll = self.mix.below(100);
        if roll >= 70 && !book.open.is_empty() {
            let pick = self.mix.below(book.open.len() as u64) as usize;
            let target = book.open.swap_remove(pick);
            if roll < 90 {
                return Next::Cancel(CancelOrderRequest {
                    account: self.account.clone(),
                    cl_ord_id,
                    orig_cl_ord_id: target.cl_ord_id,
                });
            }
            let tick = self.symbols.first().map_or(1, |s| s.tick_size.max(1));
            let price = target.price + tick * (self.mix.below(3) as i64 - 1);
            let quantity = (target.quantity + self.mix.below(20) as i64 - 10).max(1);
            return Next::Replace(ReplaceOrderRequest {
                account: self.account.clone(),
                cl_ord_id,
                orig_cl_ord_id: target.cl_ord_id,
                price,
                quantity,
            });
        }
        drop(book);
        let index = self.mix.below(self.symbols.len() as u64) as usize;
        // The mid walks a tick at a time, staying within 2 % of the reference.
        let symbol = &self.symbols[index];
        let bound = (symbol.reference_price / 50).max(symbol.tick_size);
        let step = (self.mix.below(3) as i64 - 1) * symbol.tick_size;
        self.drift[index] = (self.drift[index] + step).clamp(-bound, bound);
        let mid = symbol.reference_price + self.drift[index];
        let side = if self.mix.below(2) == 0 { Side::Buy } else { Side::Sell };
        let offset = self.mix.below(10) as i64 * symbol.tick_size;
        // Buyers bid a little under the mid and sellers ask a little over, with some crossing.
        let price = match side {
            Side::Buy => mid - offset + 3 * symbol.tick_size,
            _ => mid + offset - 3 * symbol.tick_size,
        };
        let price = (price / symbol.tick_size).max(1) * symbol.tick_size;
        let ioc = self.mix.below(10) == 0;
        Next::New(NewOrderRequest {
            account: self.account.clone(),
            cl_ord_id,
            symbol: symbol.name.clone(),
            side: side as i32,
            order_type: OrderType::Limit as i32,
            time_in_force: if ioc { TimeInForce::Ioc } else { TimeInForce::Day } as i32,
            price,
            quantity: 1 + self.mix.below(100) as i64,
            cancel_on_disconnect: self.cod,
        })
    }

    /// Keeps what is still open after an accepted command, for later cancels and replaces.
    fn remember(&self, sent: &Next, report: &ExecutionReport) {
        let open = report.status == OrderStatus::New as i32 || report.status == OrderStatus::PartiallyFilled as i32;
        if !open || report.leaves_quantity <= 0 {
            return;
        }
        let price = match sent {
            Next::New(order) => order.price,
            Next::Replace(replace) => replace.price,
            Next::Cancel(_) => return,
        };
        self.book.lock().unwrap_or_else(PoisonError::into_inner).open.push(OpenOrder {
            cl_ord_id: report.cl_ord_id.clone(),
            price,
            quantity: report.leaves_quantity + report.cumulative_quantity,
        });
    }
}
