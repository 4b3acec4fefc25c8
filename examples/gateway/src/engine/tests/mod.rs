//! Scenario tests of the whole engine: a [`Harness`] runs commands through `check` and `apply`
//! with a simulated clock, like the live path, and checks the engine's invariants after each.

mod durability;
mod fix_semantics;
mod lifecycle;
mod matching;
mod risk_checks;
mod robustness;

use std::time::{Duration, Instant};

use super::book::BookSide;
use super::*;
use crate::proto::journal::{SessionClosed, SessionsReset};
use crate::proto::{
    CancelOrderRequest, ExecType, KillSwitchRequest, NewOrderRequest, OrderStatus, OrderType, ReplaceOrderRequest, Side, TimeInForce,
};

/// Tick 5, reference 10 000.
const ACME: &str = "ACME";
/// Tick 1, reference 2 000.
const BOLT: &str = "BOLT";

fn symbols() -> Vec<SymbolSpec> {
    vec![
        SymbolSpec {
            name: ACME.into(),
            tick_size: 5,
            reference_price: 10_000,
        },
        SymbolSpec {
            name: BOLT.into(),
            tick_size: 1,
            reference_price: 2_000,
        },
    ]
}

fn limits() -> Limits {
    Limits {
        price_band_percent: 10,
        max_order_quantity: 1_000,
        max_notional: 5_000_000,
        max_open_orders: 5,
        credit_limit: 1_000_000_000,
        position_limit: 2_000,
        orders_per_second: 1_000,
        burst: 1_000,
        max_id_len: 16,
        runaway_messages: 1_000_000,
        runaway_window_ms: 1_000,
    }
}

/// The engine plus the journal's sequence counter and a simulated clock.
struct Harness {
    engine: Engine,
    sequence: u64,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        Self::with_limits(limits())
    }

    fn with_limits(limits: Limits) -> Self {
        Self {
            engine: Engine::new(symbols(), limits),
            sequence: 0,
            now: Instant::now(),
        }
    }

    /// The live path: `check`, then `apply` if it passed.
    fn submit(&mut self, session: u64, command: Command) -> Result<Outcome, Reject> {
        self.engine.check(session, &command, self.now)?;
        let outcome = self.apply(session, command);
        assert_ne!(
            outcome.response.exec_type,
            ExecType::Reject as i32,
            "apply refused what check passed: {outcome:?}"
        );
        Ok(outcome)
    }

    /// `apply` alone, as on replay.
    fn apply(&mut self, session: u64, command: Command) -> Outcome {
        self.sequence += 1;
        let outcome = self.engine.apply(self.sequence, session, &command);
        assert_consistent(&self.engine);
        assert!(outcome.reports.iter().all(|r| r.sequence == self.sequence));
        assert!(outcome.market_data.iter().all(|m| m.sequence == self.sequence));
        assert_eq!(outcome.response.sequence, self.sequence);
        outcome
    }

    /// The reason `check` refuses `command` with; panics if it passes.
    fn refused(&mut self, command: Command) -> RejectReason {
        match self.engine.check(1, &command, self.now) {
            Ok(()) => panic!("check passed {command:?}"),
            Err(reject) => {
                assert!(!reject.text.is_empty());
                reject.reason
            }
        }
    }

    /// Submits a new order that must pass `check`; returns its response.
    fn order(&mut self, request: NewOrderRequest) -> ExecutionReport {
        match self.submit(1, Command::NewOrder(request)) {
            Ok(outcome) => outcome.response,
            Err(reject) => panic!("refused: {reject}"),
        }
    }

    fn buy(&mut self, account: &str, cl_ord_id: &str, price: i64, quantity: i64) -> ExecutionReport {
        self.order(limit(account, cl_ord_id, Side::Buy, price, quantity))
    }

    fn sell(&mut self, account: &str, cl_ord_id: &str, price: i64, quantity: i64) -> ExecutionReport {
        self.order(limit(account, cl_ord_id, Side::Sell, price, quantity))
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The resting orders of a side of ACME as (cl_ord_id, leaves), best first.
    fn book(&self, side: BookSide) -> Vec<(String, i64)> {
        let Some(symbol) = self.engine.symbols.first() else {
            return Vec::new();
        };
        symbol
            .book
            .levels(side)
            .into_iter()
            .flat_map(|(_, orders)| orders)
            .map(|(id, leaves)| (self.engine.orders.get(id).map(|o| o.cl_ord_id.clone()).unwrap_or_default(), leaves))
            .collect()
    }
}

/// A DAY limit order on ACME.
fn limit(account: &str, cl_ord_id: &str, side: Side, price: i64, quantity: i64) -> NewOrderRequest {
    NewOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        symbol: ACME.into(),
        side: side as i32,
        order_type: OrderType::Limit as i32,
        time_in_force: TimeInForce::Day as i32,
        price,
        quantity,
        cancel_on_disconnect: false,
        possible_resend: false,
    }
}

fn ioc(account: &str, cl_ord_id: &str, side: Side, price: i64, quantity: i64) -> NewOrderRequest {
    NewOrderRequest {
        time_in_force: TimeInForce::Ioc as i32,
        ..limit(account, cl_ord_id, side, price, quantity)
    }
}

fn market(account: &str, cl_ord_id: &str, side: Side, quantity: i64) -> NewOrderRequest {
    NewOrderRequest {
        order_type: OrderType::Market as i32,
        price: 0,
        ..limit(account, cl_ord_id, side, 0, quantity)
    }
}

fn new_order(request: NewOrderRequest) -> Command {
    Command::NewOrder(request)
}

fn cancel(account: &str, cl_ord_id: &str, orig_cl_ord_id: &str) -> Command {
    Command::Cancel(CancelOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        orig_cl_ord_id: orig_cl_ord_id.into(),
    })
}

fn replace(account: &str, cl_ord_id: &str, orig_cl_ord_id: &str, price: i64, quantity: i64) -> Command {
    Command::Replace(ReplaceOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        orig_cl_ord_id: orig_cl_ord_id.into(),
        price,
        quantity,
    })
}

fn kill_switch(account: &str, engaged: bool) -> Command {
    Command::KillSwitch(KillSwitchRequest {
        account: account.into(),
        engaged,
    })
}

fn session_closed() -> Command {
    Command::SessionClosed(SessionClosed {})
}

fn sessions_reset() -> Command {
    Command::SessionsReset(SessionsReset {})
}

fn status(report: &ExecutionReport) -> OrderStatus {
    OrderStatus::try_from(report.status).unwrap_or(OrderStatus::Unspecified)
}

fn exec_type(report: &ExecutionReport) -> ExecType {
    ExecType::try_from(report.exec_type).unwrap_or(ExecType::Unspecified)
}

fn reject_reason(report: &ExecutionReport) -> RejectReason {
    RejectReason::try_from(report.reject_reason).unwrap_or(RejectReason::Unspecified)
}

/// The book and the order state agree: every open order rests with its leaves, and each
/// account's open-order count and open quantity per side are the sums over its open orders.
fn assert_consistent(engine: &Engine) {
    let mut resting = std::collections::BTreeMap::new();
    for (index, symbol) in engine.symbols.iter().enumerate() {
        for side in [BookSide::Buy, BookSide::Sell] {
            for (price, orders) in symbol.book.levels(side) {
                for (id, leaves) in orders {
                    assert!(leaves > 0, "empty order {id:?} rests");
                    resting.insert(id, (index, side, price, leaves));
                }
            }
        }
    }
    let mut open = std::collections::HashMap::<(String, usize), (usize, i128, i128)>::new();
    for order in engine.orders.iter() {
        assert!(order.cumulative + order.leaves <= order.quantity, "{order:?}");
        let entry = open.entry((order.account.to_string(), order.symbol)).or_default();
        let Some(&(index, side, price, leaves)) = resting.get(&order.id) else {
            assert!(!order.is_open(), "open order {order:?} is not on the book");
            continue;
        };
        assert!(order.is_open(), "final order {order:?} is on the book");
        assert_eq!((index, side, price, leaves), (order.symbol, order.side, order.price, order.leaves));
        entry.0 += 1;
        match side {
            BookSide::Buy => entry.1 += i128::from(leaves),
            BookSide::Sell => entry.2 += i128::from(leaves),
        }
    }
    assert_eq!(resting.len(), engine.orders.iter().filter(|o| o.is_open()).count());
    for ((account, symbol), (_, buys, sells)) in &open {
        let exposure = engine.orders.exposure(account, *symbol);
        assert_eq!((exposure.open_buy, exposure.open_sell), (*buys, *sells), "{account} on {symbol}");
    }
    let mut notional = std::collections::HashMap::<&str, i128>::new();
    for order in engine.orders.iter().filter(|o| o.is_open()) {
        *notional.entry(&order.account).or_default() += i128::from(order.price) * i128::from(order.leaves);
    }
    for order in engine.orders.iter() {
        let expected = notional.get(&*order.account).copied().unwrap_or(0);
        assert_eq!(engine.orders.open_notional(&order.account), expected, "{}", order.account);
    }
    let mut per_account = std::collections::HashMap::<&str, usize>::new();
    for ((account, _), (count, _, _)) in &open {
        *per_account.entry(account).or_default() += count;
    }
    for (account, count) in per_account {
        assert_eq!(engine.open_orders(account), count, "{account}");
    }
}
