//! Building the proto messages the engine answers with: execution reports and market data.

use super::book::Top;
use super::orders::Order;
use crate::proto::journal::record::Command;
use crate::proto::{ExecType, ExecutionReport, Fill, MarketDataUpdate, OrderStatus, OrderType, RejectReason};

/// A report of an order's current state.
pub(crate) fn order_report(order: &Order, symbol: &str, exec_type: ExecType, sequence: u64) -> ExecutionReport {
    ExecutionReport {
        account: order.account.to_string(),
        cl_ord_id: order.cl_ord_id.clone(),
        order_id: order.id.0,
        exec_type: exec_type as i32,
        status: order.status as i32,
        symbol: symbol.to_owned(),
        side: order.side.as_proto() as i32,
        price: order.price,
        leaves_quantity: order.leaves,
        cumulative_quantity: order.cumulative,
        sequence,
        ..ExecutionReport::default()
    }
}

/// The FILL report of a resting order that traded.
pub(crate) fn fill_report(order: &Order, symbol: &str, fill: Fill, sequence: u64) -> ExecutionReport {
    ExecutionReport {
        fills: vec![fill],
        ..order_report(order, symbol, ExecType::Fill, sequence)
    }
}

/// A report for a command that is not about one order (kill switch, session events).
pub(crate) fn summary(account: &str, text: String, sequence: u64) -> ExecutionReport {
    ExecutionReport {
        account: account.to_owned(),
        exec_type: ExecType::Ack as i32,
        text,
        sequence,
        ..ExecutionReport::default()
    }
}

/// A REJECT report for `command`, echoing its identifying fields.
pub(crate) fn reject(command: &Command, reason: RejectReason, text: String) -> ExecutionReport {
    let mut report = ExecutionReport {
        exec_type: ExecType::Reject as i32,
        status: OrderStatus::Rejected as i32,
        reject_reason: reason as i32,
        text,
        ..ExecutionReport::default()
    };
    match command {
        Command::NewOrder(request) => {
            report.account.clone_from(&request.account);
            report.cl_ord_id.clone_from(&request.cl_ord_id);
            report.symbol.clone_from(&request.symbol);
            report.side = request.side;
            report.price = if request.order_type == OrderType::Market as i32 {
                0
            } else {
                request.price
            };
        }
        Command::Cancel(request) => {
            report.account.clone_from(&request.account);
            report.cl_ord_id.clone_from(&request.cl_ord_id);
            report.orig_cl_ord_id.clone_from(&request.orig_cl_ord_id);
        }
        Command::Replace(request) => {
            report.account.clone_from(&request.account);
            report.cl_ord_id.clone_from(&request.cl_ord_id);
            report.orig_cl_ord_id.clone_from(&request.orig_cl_ord_id);
            report.price = request.price;
        }
        Command::KillSwitch(request) => report.account.clone_from(&request.account),
        Command::SessionClosed(_) | Command::SessionsReset(_) => {}
    }
    report
}

/// The market-data update of a book's top.
pub(crate) fn market_data(symbol: &str, top: Top, sequence: u64) -> MarketDataUpdate {
    MarketDataUpdate {
        symbol: symbol.to_owned(),
        bid_price: top.bid_price,
        bid_quantity: top.bid_quantity,
        ask_price: top.ask_price,
        ask_quantity: top.ask_quantity,
        last_trade_price: top.last_trade_price,
        last_trade_quantity: top.last_trade_quantity,
        sequence,
    }
}
