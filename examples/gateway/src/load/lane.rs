//! One lane of the load: the order mix it sends and how it sends it (unary calls or an order
//! stream), with every answer checked and counted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use volley::{CallOptions, Client, Response, Status};

use super::{COMMAND_TIMEOUT, EntryMode, Tally};
use crate::engine::SymbolSpec;
use crate::proto::order_entry_client::OrderEntryClient;
use crate::proto::{
    CancelOrderRequest, ExecType, ExecutionReport, NewOrderRequest, OrderCommand, OrderStatus, OrderType, RejectReason,
    ReplaceOrderRequest, Side, TimeInForce, order_command,
};

/// A small deterministic generator for the order mix (xorshift64*).
#[derive(Clone, Debug)]
pub(super) struct Mix(u64);

impl Mix {
    pub(super) fn new(seed: u64) -> Self {
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

/// The generator keeps at most this many open orders per account (it cancels or replaces before
/// adding more), far below the gateway's max-open-orders limit, so that limit never rejects it.
const MAX_OPEN_PER_ACCOUNT: usize = 64;

/// Fills of orders not yet remembered (their fill report came before their acknowledgement)
/// are kept for at most this many orders.
const MAX_FILLED_UNSEEN: usize = 4_096;

/// What one account's lanes share: the open orders as the generator follows them, from the
/// acknowledgements and the fills on the account's report stream.
#[derive(Debug, Default)]
pub(super) struct AccountBook {
    open: Vec<OpenOrder>,
    /// Orders whose fill report came before their acknowledgement: never remembered as open.
    filled_unseen: std::collections::HashSet<String>,
    next_id: u64,
}

impl AccountBook {
    /// An order of the account filled completely (a FILL report with nothing left): no longer
    /// open, so the generator neither cancels nor replaces it.
    pub(super) fn filled(&mut self, cl_ord_id: &str) {
        if let Some(index) = self.open.iter().position(|order| order.cl_ord_id == cl_ord_id) {
            self.open.swap_remove(index);
        } else {
            if self.filled_unseen.len() >= MAX_FILLED_UNSEEN {
                self.filled_unseen.clear();
            }
            self.filled_unseen.insert(cl_ord_id.to_owned());
        }
    }
}

/// One lane: sends one command at a time for one account until `until`.
#[derive(Debug)]
pub(super) struct Lane {
    pub(super) orders: OrderEntryClient<Client>,
    pub(super) account: String,
    pub(super) book: Arc<Mutex<AccountBook>>,
    pub(super) mix: Mix,
    pub(super) symbols: Vec<SymbolSpec>,
    pub(super) run_id: String,
    pub(super) cod: bool,
    /// Percent of commands sent malformed on purpose (a new order of quantity 0), to load the
    /// reject path.
    pub(super) reject_percent: u32,
    /// How far each symbol's mid has walked from its reference.
    pub(super) drift: Vec<i64>,
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
    pub(super) async fn run(
        self,
        mode: EntryMode,
        in_flight: usize,
        until: Instant,
        interval: Option<Duration>,
        progress: ProgressBar,
    ) -> Tally {
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
            }
            .map(Response::into_inner);
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
                    if let Next::New(_) = next {
                        tally.accepted_new += 1;
                        let _ = tally.order_latency.record(latency.as_nanos().max(1) as u64);
                    }
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
        if self.reject_percent > 0 && self.mix.below(100) < u64::from(self.reject_percent) {
            drop(book);
            let symbol = self
                .symbols
                .first()
                .map(|s| (s.name.clone(), s.reference_price))
                .unwrap_or_default();
            return Next::New(NewOrderRequest {
                account: self.account.clone(),
                cl_ord_id,
                symbol: symbol.0,
                side: Side::Buy as i32,
                order_type: OrderType::Limit as i32,
                time_in_force: TimeInForce::Day as i32,
                price: symbol.1,
                quantity: 0, // INVALID_QUANTITY, on purpose.
                cancel_on_disconnect: false,
                possible_resend: false,
            });
        }
        let roll = self.mix.below(100);
        // At the cap, the next command works on an open order instead of adding one.
        let roll = if book.open.len() >= MAX_OPEN_PER_ACCOUNT {
            70 + roll % 30
        } else {
            roll
        };
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
            // Never below the order's quantity, so never at or below what it may have filled.
            let quantity = target.quantity + self.mix.below(10) as i64;
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
            possible_resend: false,
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
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        if book.filled_unseen.remove(&report.cl_ord_id) {
            return;
        }
        book.open.push(OpenOrder {
            cl_ord_id: report.cl_ord_id.clone(),
            price,
            quantity: report.leaves_quantity + report.cumulative_quantity,
        });
    }
}
