//! The order engine: pre-trade risk checks, order and account state, and a price-time priority
//! limit order book per symbol.
//!
//! The engine is pure: no IO, no async, no clock reads (the throttle's `now` is passed in), and
//! it never panics, whatever a command carries. It has two entry points:
//!
//! - [`Engine::check`] runs on the live path before a command is journaled: it validates the
//!   command against the current state and every [`Limits`] check and charges the account's
//!   throttle. `Ok` means [`Engine::apply`] would accept the command now.
//! - [`Engine::apply`] executes a command, live after `check` or from the journal on replay. It
//!   re-runs only the structural checks (unknown symbol or order, invalid side, duplicate
//!   ClOrdID…), never the limits, which may have changed between runs; a command failing one
//!   gets a reject report and changes nothing. Applying the same commands in the same order
//!   gives the same state, reports and market data: order ids and trade ids are counters.
//!
//! ```
//! use std::time::Instant;
//!
//! use gateway::engine::{Engine, Limits, SymbolSpec};
//! use gateway::proto::journal::record::Command;
//! use gateway::proto::{ExecType, NewOrderRequest, OrderType, Side};
//!
//! let acme = SymbolSpec { name: "ACME".into(), tick_size: 1, reference_price: 10_000 };
//! let mut engine = Engine::new(vec![acme], Limits::default());
//! let order = NewOrderRequest {
//!     account: "alice".into(),
//!     cl_ord_id: "1".into(),
//!     symbol: "ACME".into(),
//!     side: Side::Buy as i32,
//!     order_type: OrderType::Limit as i32,
//!     price: 10_000,
//!     quantity: 5,
//!     ..NewOrderRequest::default()
//! };
//! let command = Command::NewOrder(order);
//! assert_eq!(engine.check(1, &command, Instant::now()), Ok(()));
//! let outcome = engine.apply(1, 1, &command);
//! assert_eq!(outcome.response.exec_type, ExecType::Ack as i32);
//! assert_eq!(engine.top_of_book("ACME").map(|top| top.bid_quantity), Some(5));
//! ```
//!
//! # Decisions
//!
//! - **Market orders** are always immediate-or-cancel and ignore the request's price; their
//!   notional uses the reference price and they have no band. `check` refuses one against an
//!   empty opposite side with `NO_LIQUIDITY` (nothing is journaled). If the side empties between
//!   `check` and `apply`, the order is accepted and cancelled at once: the response is an ACK
//!   with status CANCELLED, leaves 0, cumulative 0 and a text saying why, so the ClOrdID is taken.
//!   An IOC limit order's unfilled rest is cancelled the same way (status CANCELLED, or FILLED).
//! - **Self-trade** is allowed: an account's order may trade against its own resting order.
//! - **Replace** sets the new *total* quantity; the new open quantity is `quantity - cumulative`.
//!   A new quantity at or below the cumulative filled quantity is refused with INVALID_QUANTITY
//!   (cancel the order instead). Lowering the quantity at the same price keeps time priority;
//!   a price change or a quantity increase goes to the back of the (new) level and may trade at
//!   once. A replace's ClOrdID becomes the order's; every ClOrdID the order carried still finds it.
//!   A replace that does not raise the open quantity skips the position check.
//! - **Cancel and replace** name the order by any ClOrdID it carried (`orig_cl_ord_id`). A
//!   cancel's own ClOrdID is taken and also finds the order afterwards.
//! - **Max open orders** counts resting orders, and only limit DAY orders are checked against it
//!   (IOC and market orders never rest, so an account at its maximum can still flatten).
//! - **Position limit** is directional: a buy is checked against `position + open buys + qty <= limit`,
//!   a sell against `position - open sells - qty >= -limit`; a reducing order always passes.
//! - **Kill switch**: an empty account engages the global switch. Engaging cancels the working
//!   orders it covers (each with a CANCELLED report, text "cancelled by the kill switch"). While
//!   engaged, new orders are refused unless they only reduce the position (opposite side, and
//!   with the open orders on their side at most the position), replaces are refused if they
//!   raise the open quantity, and cancels pass. The global and the per-account switches are independent.
//! - **Credit**: an account's open notional (price × open quantity over its resting orders) plus
//!   the order checked may not exceed `credit_limit` (CREDIT_LIMIT).
//! - An unknown `time_in_force` is refused as INVALID_ORDER_TYPE (the proto has no reason of its own for it).
//! - **SessionClosed / SessionsReset** cancel the open cancel-on-disconnect orders of the session
//!   (of every session), by order id; each gets a CANCELLED report in [`Outcome::reports`]. The
//!   response is a summary ACK with no account and a text ("session 7 closed: 2 cancel-on-disconnect
//!   orders cancelled"); it is not in `reports`. KillSwitch is answered the same way.
//!
//! # Memory
//!
//! The engine keeps every order, final ones included, for queries and so that a ClOrdID is never
//! executed twice (the journal replay rebuilds them after a restart): about 150 bytes per order
//! plus its ClOrdIDs, growing with the journal. Fine for a demo; a real gateway would roll
//! final orders off at the end of a trading day. The throttle forgets idle accounts.

mod book;
mod config;
mod execute;
mod orders;
mod report;
mod risk;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Instant;

use book::Book;
use orders::Orders;
use risk::{KillSwitches, Runaway, Throttle};

pub use config::{
    ConfigError, DEFAULT_BURST, DEFAULT_CREDIT_LIMIT, DEFAULT_MAX_ID_LEN, DEFAULT_MAX_NOTIONAL, DEFAULT_MAX_OPEN_ORDERS,
    DEFAULT_MAX_ORDER_QUANTITY, DEFAULT_ORDERS_PER_SECOND, DEFAULT_POSITION_LIMIT, DEFAULT_PRICE_BAND_PERCENT, DEFAULT_RUNAWAY_MESSAGES,
    DEFAULT_RUNAWAY_WINDOW_MS, Limits, SymbolSpec, validate_config,
};

use crate::proto::journal::record::Command;
use crate::proto::{ExecType, ExecutionReport, MarketDataUpdate, RejectReason};

/// The order engine: every book, order and account, the limits and the throttle. See the [module docs](self).
#[derive(Debug)]
pub struct Engine {
    limits: Limits,
    symbols: Vec<Symbol>,
    symbol_index: HashMap<String, usize>,
    orders: Orders,
    kill_switches: KillSwitches,
    throttle: Throttle,
    runaway: Runaway,
    /// The last trade id handed out.
    trade_id: u64,
}

/// A symbol's spec, book and the sequence of its last market-data update.
#[derive(Debug)]
struct Symbol {
    spec: SymbolSpec,
    book: Book,
    sequence: u64,
}

impl Symbol {
    /// The band's centre: the last trade price, or the configured reference before the first trade.
    fn reference_price(&self) -> i64 {
        self.book.last_trade_price().unwrap_or(self.spec.reference_price)
    }
}

/// Why a command was refused: the reason and a text a trader understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text} ({})", reason.as_str_name())]
pub struct Reject {
    /// The proto's reason code.
    pub reason: RejectReason,
    /// What was wrong, with the values involved ("price 10150 is outside the 5% band around 10000 (9500..=10500)").
    pub text: String,
}

impl Reject {
    /// A reject with this reason and text.
    pub fn new(reason: RejectReason, text: impl Into<String>) -> Self {
        Self { reason, text: text.into() }
    }

    /// The EXEC_TYPE_REJECT report of `command`: its account, cl_ord_id (and orig_cl_ord_id,
    /// symbol, side, price where it has them), status REJECTED, order id 0 and sequence 0 (a
    /// command refused by `check` is not journaled; `apply` sets the sequence of its rejects).
    pub fn into_report(self, command: &Command) -> ExecutionReport {
        report::reject(command, self.reason, self.text)
    }
}

/// What applying a command caused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// The answer to the command's sender: the ACK, CANCELLED or REPLACED report of the order
    /// (with the fills this command caused it), a REJECT, or a summary for the other commands.
    pub response: ExecutionReport,
    /// Every order report this command caused, for the account report streams: for a new order,
    /// cancel or replace the response first, then one FILL report per resting order that traded
    /// (for its own account); for SessionClosed and SessionsReset one CANCELLED report per order.
    pub reports: Vec<ExecutionReport>,
    /// One update per symbol whose top of book or last trade changed, by symbol as configured.
    pub market_data: Vec<MarketDataUpdate>,
}

impl Engine {
    /// An engine with these symbols (a repeated name: the first wins) and limits, and no orders.
    pub fn new(symbols: Vec<SymbolSpec>, limits: Limits) -> Self {
        let mut symbol_index = HashMap::new();
        let mut kept = Vec::with_capacity(symbols.len());
        for spec in symbols {
            if !symbol_index.contains_key(&spec.name) {
                symbol_index.insert(spec.name.clone(), kept.len());
                kept.push(Symbol {
                    spec,
                    book: Book::default(),
                    sequence: 0,
                });
            }
        }
        Self {
            limits,
            symbols: kept,
            symbol_index,
            orders: Orders::default(),
            kill_switches: KillSwitches::default(),
            throttle: Throttle::default(),
            runaway: Runaway::default(),
            trade_id: 0,
        }
    }

    /// Like [`new`](Self::new), but first checks the config with [`validate_config`].
    pub fn try_new(symbols: Vec<SymbolSpec>, limits: Limits) -> Result<Self, ConfigError> {
        validate_config(&symbols, &limits)?;
        Ok(Self::new(symbols, limits))
    }

    /// Live path, before journaling: validates `command` against the current state and limits.
    /// `Ok` means [`apply`](Self::apply) will accept it. The account's throttle is charged only
    /// on `Ok`, and only for new orders and replaces. `now` is the caller's clock.
    pub fn check(&mut self, session: u64, command: &Command, now: Instant) -> Result<(), Reject> {
        let _ = session; // No limit depends on the session.
        match command {
            Command::NewOrder(request) => {
                self.check_new(request)?;
                self.throttle
                    .try_acquire(&request.account, now, self.limits.orders_per_second, self.limits.burst)
            }
            Command::Replace(request) => {
                self.check_replace(request)?;
                self.throttle
                    .try_acquire(&request.account, now, self.limits.orders_per_second, self.limits.burst)
            }
            Command::Cancel(request) => self.check_cancel(request).map(|_| ()),
            Command::KillSwitch(request) if request.account.is_empty() => Ok(()),
            Command::KillSwitch(request) => risk::check_id(risk::IdKind::Account, &request.account, self.limits.max_id_len),
            Command::SessionClosed(_) | Command::SessionsReset(_) => Ok(()),
        }
    }

    /// Applies a command: after [`check`](Self::check) (live) or from the journal (replay).
    /// Deterministic; runs only the structural checks, answering a failure with a REJECT
    /// response (carrying `sequence`) and no state change. Every report and update carries `sequence`.
    pub fn apply(&mut self, sequence: u64, session: u64, command: &Command) -> Outcome {
        let outcome = match command {
            Command::NewOrder(request) => self.apply_new(sequence, session, request),
            Command::Cancel(request) => self.apply_cancel(sequence, request),
            Command::Replace(request) => self.apply_replace(sequence, request),
            Command::KillSwitch(request) => self.apply_kill_switch(sequence, request),
            Command::SessionClosed(_) => self.apply_session_closed(sequence, Some(session)),
            Command::SessionsReset(_) => self.apply_session_closed(sequence, None),
        };
        outcome.unwrap_or_else(|reject| {
            let response = ExecutionReport {
                sequence,
                ..reject.into_report(command)
            };
            Outcome {
                reports: vec![response.clone()],
                response,
                market_data: Vec::new(),
            }
        })
    }

    /// Counts a command from `account` (new order, cancel or replace; before its checks) at
    /// `now`, the caller's clock. `true` once the account goes over `runaway_messages` in the
    /// current window while not halted yet: the caller then journals a kill switch for it (a
    /// `KillSwitch` command, so replay halts it too). Not journaled itself, like the throttle.
    pub fn is_runaway(&mut self, command: &Command, now: Instant) -> bool {
        let account = match command {
            Command::NewOrder(request) => &request.account,
            Command::Cancel(request) => &request.account,
            Command::Replace(request) => &request.account,
            Command::KillSwitch(_) | Command::SessionClosed(_) | Command::SessionsReset(_) => return false,
        };
        // Malformed accounts are refused by `check` anyway and get no kill switch of their own.
        if self.limits.runaway_messages == 0 || risk::check_id(risk::IdKind::Account, account, self.limits.max_id_len).is_err() {
            return false;
        }
        let window = std::time::Duration::from_millis(u64::from(self.limits.runaway_window_ms));
        self.runaway.count(account, now, window, self.limits.runaway_messages) && !self.kill_switches.is_engaged(account)
    }

    /// The answer to a new order flagged `possible_resend` whose ClOrdID the account already
    /// used: the order's current state, as [`query`](Self::query) gives it, with a text saying
    /// so. `None` for any other command (it goes through `check` and `apply` as usual; a resend
    /// never seen is a new order). Nothing changes and nothing is journaled.
    pub fn resend_answer(&self, command: &Command) -> Option<ExecutionReport> {
        let Command::NewOrder(request) = command else { return None };
        if !request.possible_resend {
            return None;
        }
        let report = self.query(&request.account, &request.cl_ord_id)?;
        Some(ExecutionReport {
            text: "possible resend of a known order: its current state, nothing new entered".into(),
            ..report
        })
    }

    /// The journal sequence of the newest state a check of `command` reads: the last command that
    /// changed its account (any of the account's orders, ClOrdIDs, positions or throttle-charging
    /// commands), its symbol's book top or last trade, or a kill switch. A reject of `command` is
    /// true after a crash only once the journal is durable up to this sequence, so the gateway
    /// answers a reject no earlier. 0 when the checks read no journaled state (the absence of an
    /// order or ClOrdID is durable as soon as it is seen: a crash only ever loses a tail).
    pub fn state_sequence(&self, command: &Command) -> u64 {
        let symbol_sequence = |index: Option<usize>| index.and_then(|i| self.symbols.get(i)).map_or(0, |s| s.sequence);
        match command {
            Command::NewOrder(request) => self
                .orders
                .account_sequence(&request.account)
                .max(symbol_sequence(self.symbol_index.get(&request.symbol).copied()))
                .max(self.kill_switches.sequence()),
            Command::Replace(request) => {
                let order = self.orders.lookup(&request.account, &request.orig_cl_ord_id);
                let symbol = order.and_then(|id| self.orders.get(id)).map(|order| order.symbol);
                self.orders
                    .account_sequence(&request.account)
                    .max(symbol_sequence(symbol))
                    .max(self.kill_switches.sequence())
            }
            Command::Cancel(request) => self.orders.account_sequence(&request.account),
            Command::KillSwitch(_) | Command::SessionClosed(_) | Command::SessionsReset(_) => 0,
        }
    }

    /// The journal sequence a reject of `command` for `reason` depends on: 0 for a reason that
    /// only looks at the command itself (a malformed field, an unknown symbol) or at the absence
    /// of an order; the account's last change for the checks that come first and read only the
    /// account's ClOrdIDs and orders (duplicate, order final); else, conservatively,
    /// [`state_sequence`](Self::state_sequence) (a later check's reject also says that every
    /// earlier check passed).
    pub fn reject_sequence(&self, command: &Command, reason: RejectReason) -> u64 {
        let account = match command {
            Command::NewOrder(request) => request.account.as_str(),
            Command::Cancel(request) => request.account.as_str(),
            Command::Replace(request) => request.account.as_str(),
            Command::KillSwitch(_) | Command::SessionClosed(_) | Command::SessionsReset(_) => "",
        };
        if matches!(reason, RejectReason::DuplicateClOrdId | RejectReason::OrderFinal) {
            return self.orders.account_sequence(account);
        }
        let from_the_command_alone = match reason {
            RejectReason::UnknownOrder
            | RejectReason::InvalidAccount
            | RejectReason::InvalidClOrdId
            | RejectReason::UnknownSymbol
            | RejectReason::InvalidSide
            | RejectReason::InvalidOrderType
            | RejectReason::InvalidPrice
            | RejectReason::PriceOffTick
            | RejectReason::MaxQuantity => true,
            // A replace's quantity is also checked against what the order filled.
            RejectReason::InvalidQuantity => matches!(command, Command::NewOrder(_)),
            _ => false,
        };
        if from_the_command_alone { 0 } else { self.state_sequence(command) }
    }

    /// The order's current state as an ACK report (status, leaves, cumulative; no fills), looked
    /// up by any ClOrdID it carried; its `sequence` is that of the last command that changed it.
    pub fn query(&self, account: &str, cl_ord_id: &str) -> Option<ExecutionReport> {
        let order = self.orders.get(self.orders.lookup(account, cl_ord_id)?)?;
        let symbol = self.symbols.get(order.symbol)?;
        Some(report::order_report(order, &symbol.spec.name, ExecType::Ack, order.sequence))
    }

    /// The current top of book and last trade of a symbol (for a new market-data subscriber);
    /// `sequence` is that of the symbol's last update, 0 before any.
    pub fn top_of_book(&self, symbol: &str) -> Option<MarketDataUpdate> {
        let symbol = self.symbols.get(*self.symbol_index.get(symbol)?)?;
        Some(report::market_data(&symbol.spec.name, symbol.book.top(), symbol.sequence))
    }

    /// Whether orders may name this symbol.
    pub fn is_known_symbol(&self, symbol: &str) -> bool {
        self.symbol_index.contains_key(symbol)
    }

    /// The configured symbols, in config order.
    pub fn symbols(&self) -> impl Iterator<Item = &SymbolSpec> {
        self.symbols.iter().map(|symbol| &symbol.spec)
    }

    /// The limits `check` applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Replaces the limits (for example on a config reload); the state is kept.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// How many open (resting) orders the account has.
    pub fn open_orders(&self, account: &str) -> usize {
        self.orders.open_orders(account)
    }

    /// The account's position on a symbol: bought minus sold (0 for an unknown account or symbol).
    pub fn position(&self, account: &str, symbol: &str) -> i64 {
        self.symbol_index
            .get(symbol)
            .map_or(0, |symbol| self.orders.exposure(account, *symbol).position)
    }

    /// How many orders (open and final) the engine holds.
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// How many trades there were, over all symbols.
    pub fn trade_count(&self) -> u64 {
        self.trade_id
    }

    /// Whether new orders and replaces of `account` are halted (by its own or the global kill switch).
    pub fn is_halted(&self, account: &str) -> bool {
        self.kill_switches.is_engaged(account)
    }
}
