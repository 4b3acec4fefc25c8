//! Applying commands: matching, order state changes, reports and market data.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::book::Top;
use super::orders::{Order, OrderId};
use super::risk::shown;
use super::{Engine, Outcome, Reject, Symbol, report};
use crate::proto::{
    CancelOrderRequest, ExecType, ExecutionReport, Fill, KillSwitchRequest, MarketDataUpdate, NewOrderRequest, OrderStatus, RejectReason,
    ReplaceOrderRequest,
};

/// What entering an order on the book caused.
#[derive(Debug, Default)]
struct Entry {
    /// The entering order's fills.
    fills: Vec<Fill>,
    /// The FILL reports of the resting orders it traded with.
    passive: Vec<ExecutionReport>,
    /// Why the order stopped short of its quantity without resting, if it did.
    text: String,
}

/// The tops of the symbols a command touched, as they were before it.
#[derive(Debug, Default)]
struct Touched(BTreeMap<usize, (Top, u64)>);

impl Touched {
    fn touch(&mut self, symbols: &[Symbol], index: usize) {
        if let Some(symbol) = symbols.get(index) {
            self.0.entry(index).or_insert_with(|| (symbol.book.top(), symbol.book.trades()));
        }
    }

    /// One update per touched symbol whose top or last trade changed; records its sequence.
    fn updates(self, symbols: &mut [Symbol], sequence: u64) -> Vec<MarketDataUpdate> {
        let mut updates = Vec::new();
        for (index, (top, trades)) in self.0 {
            let Some(symbol) = symbols.get_mut(index) else { continue };
            let now = symbol.book.top();
            if now != top || symbol.book.trades() != trades {
                symbol.sequence = sequence;
                updates.push(report::market_data(&symbol.spec.name, now, sequence));
            }
        }
        updates
    }
}

impl Engine {
    /// A new order: matches, then rests (limit DAY) or cancels (IOC, market) what is left.
    pub(super) fn apply_new(&mut self, sequence: u64, session: u64, request: &NewOrderRequest) -> Result<Outcome, Reject> {
        let plan = self.structural_new(request)?;
        let mut touched = Touched::default();
        touched.touch(&self.symbols, plan.symbol);
        let order = Order {
            id: OrderId(0),
            account: Arc::from(""),
            cl_ord_id: request.cl_ord_id.clone(),
            symbol: plan.symbol,
            side: plan.side,
            price: plan.price,
            quantity: plan.quantity,
            leaves: plan.quantity,
            cumulative: 0,
            status: OrderStatus::New,
            session,
            cancel_on_disconnect: request.cancel_on_disconnect,
            resting: None,
            sequence,
        };
        let id = self.orders.insert(&request.account, order);
        let entry = self.enter(sequence, id, plan.limit(), plan.may_rest());
        let response = self.order_report(id, ExecType::Ack, sequence, entry.fills, entry.text);
        Ok(self.outcome(response, entry.passive, touched, sequence))
    }

    /// A cancel: the response carries the cancel's ClOrdID and the order's as `orig_cl_ord_id`.
    pub(super) fn apply_cancel(&mut self, sequence: u64, request: &CancelOrderRequest) -> Result<Outcome, Reject> {
        let id = self.structural_cancel(request)?;
        let mut touched = Touched::default();
        let orig_cl_ord_id = self.cancel(id, sequence, &mut touched);
        self.orders.take_cl_ord_id(id, &request.cl_ord_id, false, sequence);
        let mut response = self.order_report(id, ExecType::Cancelled, sequence, Vec::new(), String::new());
        response.cl_ord_id.clone_from(&request.cl_ord_id);
        response.orig_cl_ord_id = orig_cl_ord_id;
        Ok(self.outcome(response, Vec::new(), touched, sequence))
    }

    /// A replace: in place if it keeps priority, else off the book and entered again at the new price.
    pub(super) fn apply_replace(&mut self, sequence: u64, request: &ReplaceOrderRequest) -> Result<Outcome, Reject> {
        let plan = self.structural_replace(request)?;
        let id = plan.order;
        let Some(order) = self.orders.get(id) else {
            return Err(Reject::new(RejectReason::UnknownOrder, "unknown order"));
        };
        let (symbol, side, price, leaves, resting) = (order.symbol, order.side, order.price, order.leaves, order.resting);
        let orig_cl_ord_id = order.cl_ord_id.clone();
        let new_leaves = plan.quantity.saturating_sub(order.cumulative);
        let mut touched = Touched::default();
        touched.touch(&self.symbols, symbol);
        self.orders.take_cl_ord_id(id, &request.cl_ord_id, true, sequence);
        let keeps_priority = plan.price == price && new_leaves <= leaves;
        let book = self.symbols.get_mut(symbol).map(|symbol| &mut symbol.book);
        let entry = match (book, resting) {
            (Some(book), Some(time)) if keeps_priority => {
                book.reduce(side, price, time, new_leaves);
                self.orders.amend(id, plan.price, plan.quantity, sequence);
                Entry::default()
            }
            (book, resting) => {
                if let (Some(book), Some(time)) = (book, resting) {
                    book.remove(side, price, time);
                }
                self.orders.unrest(id);
                self.orders.amend(id, plan.price, plan.quantity, sequence);
                self.enter(sequence, id, Some(plan.price), true)
            }
        };
        let mut response = self.order_report(id, ExecType::Replaced, sequence, entry.fills, entry.text);
        response.orig_cl_ord_id = orig_cl_ord_id;
        Ok(self.outcome(response, entry.passive, touched, sequence))
    }

    /// Engages or releases a kill switch; engaging cancels the working orders it covers (the
    /// account's, or every account's for the global switch), each with a CANCELLED report.
    pub(super) fn apply_kill_switch(&mut self, sequence: u64, request: &KillSwitchRequest) -> Result<Outcome, Reject> {
        self.kill_switches.set(&request.account, request.engaged, sequence);
        let mut touched = Touched::default();
        let mut reports = Vec::new();
        if request.engaged {
            let account = (!request.account.is_empty()).then_some(request.account.as_str());
            for id in self.orders.open_order_ids(account) {
                self.cancel(id, sequence, &mut touched);
                reports.push(self.order_report(
                    id,
                    ExecType::Cancelled,
                    sequence,
                    Vec::new(),
                    "cancelled by the kill switch".to_owned(),
                ));
            }
        }
        let what = if request.engaged {
            format!("engaged, {} working orders cancelled", reports.len())
        } else {
            "released".to_owned()
        };
        let text = if request.account.is_empty() {
            format!("global kill switch {what}")
        } else {
            format!("kill switch for account {} {what}", shown(&request.account))
        };
        Ok(Outcome {
            response: report::summary(&request.account, text, sequence),
            reports,
            market_data: touched.updates(&mut self.symbols, sequence),
        })
    }

    /// Cancels the open cancel-on-disconnect orders of `session`, or of every session for `None`.
    pub(super) fn apply_session_closed(&mut self, sequence: u64, session: Option<u64>) -> Result<Outcome, Reject> {
        let ids = self.orders.cancel_on_disconnect_orders(session);
        let mut touched = Touched::default();
        let mut reports = Vec::with_capacity(ids.len());
        for id in &ids {
            self.cancel(*id, sequence, &mut touched);
            reports.push(self.order_report(*id, ExecType::Cancelled, sequence, Vec::new(), "cancelled on disconnect".to_owned()));
        }
        let text = match session {
            Some(session) => format!("session {session} closed: {} cancel-on-disconnect orders cancelled", ids.len()),
            None => format!("sessions reset: {} cancel-on-disconnect orders cancelled", ids.len()),
        };
        let market_data = touched.updates(&mut self.symbols, sequence);
        Ok(Outcome {
            response: report::summary("", text, sequence),
            reports,
            market_data,
        })
    }

    /// Matches the order's open quantity against the book up to `limit`, then rests what is left
    /// (if it may) or cancels it.
    fn enter(&mut self, sequence: u64, id: OrderId, limit: Option<i64>, may_rest: bool) -> Entry {
        let Some(order) = self.orders.get(id) else {
            return Entry::default();
        };
        let (index, side, price, quantity) = (order.symbol, order.side, order.price, order.leaves);
        let Some(symbol) = self.symbols.get_mut(index) else {
            return Entry::default();
        };
        let mut entry = Entry::default();
        for trade in symbol.book.execute(side, limit, quantity) {
            self.trade_id = self.trade_id.wrapping_add(1);
            let fill = Fill {
                price: trade.price,
                quantity: trade.quantity,
                trade_id: self.trade_id,
            };
            self.orders.trade(trade.maker, trade.quantity, sequence);
            self.orders.trade(id, trade.quantity, sequence);
            if let Some(maker) = self.orders.get(trade.maker) {
                entry.passive.push(report::fill_report(maker, &symbol.spec.name, fill, sequence));
            }
            entry.fills.push(fill);
        }
        let leaves = self.orders.get(id).map_or(0, |order| order.leaves);
        if leaves > 0 {
            if may_rest {
                let time = symbol.book.insert(side, price, id, leaves);
                self.orders.rest(id, time, sequence);
            } else {
                self.orders.cancel(id, sequence);
                entry.text = if limit.is_none() && entry.fills.is_empty() {
                    "no liquidity: the market order was cancelled".to_owned()
                } else {
                    format!("immediate or cancel: the unfilled {leaves} was cancelled")
                };
            }
        }
        entry
    }

    /// Takes an open order off its book and cancels it; returns its ClOrdID.
    fn cancel(&mut self, id: OrderId, sequence: u64, touched: &mut Touched) -> String {
        let Some(order) = self.orders.get(id) else { return String::new() };
        let cl_ord_id = order.cl_ord_id.clone();
        touched.touch(&self.symbols, order.symbol);
        if let (Some(symbol), Some(time)) = (self.symbols.get_mut(order.symbol), order.resting) {
            symbol.book.remove(order.side, order.price, time);
        }
        self.orders.cancel(id, sequence);
        cl_ord_id
    }

    fn order_report(&self, id: OrderId, exec_type: ExecType, sequence: u64, fills: Vec<Fill>, text: String) -> ExecutionReport {
        let Some(order) = self.orders.get(id) else {
            return ExecutionReport {
                sequence,
                ..ExecutionReport::default()
            };
        };
        let symbol = self.symbols.get(order.symbol).map_or("", |symbol| symbol.spec.name.as_str());
        ExecutionReport {
            fills,
            text,
            ..report::order_report(order, symbol, exec_type, sequence)
        }
    }

    /// The outcome of an order command: the response first in `reports`, then the passive fills.
    fn outcome(&mut self, response: ExecutionReport, passive: Vec<ExecutionReport>, touched: Touched, sequence: u64) -> Outcome {
        let mut reports = Vec::with_capacity(1 + passive.len());
        reports.push(response.clone());
        reports.extend(passive);
        Outcome {
            response,
            reports,
            market_data: touched.updates(&mut self.symbols, sequence),
        }
    }
}
