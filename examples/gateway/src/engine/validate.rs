//! Which checks a command gets: the structural ones (run by `check` and by `apply`, they depend
//! only on the state) and the limits (run by `check` only, they depend on the config).
//!
//! Order for a new order: identifiers, duplicate ClOrdID (so a retried order always answers
//! DUPLICATE), symbol, side, type, time in force, quantity, price, then the kill switch and
//! the limits from the cheapest on; the throttle comes last (the caller charges it).

use super::book::BookSide;
use super::orders::{OrderId, notional};
use super::risk::{self, IdKind, shown};
use super::{Engine, Reject, Symbol};
use crate::proto::{CancelOrderRequest, NewOrderRequest, OrderType, RejectReason, ReplaceOrderRequest, TimeInForce};

/// A new order that passed the structural checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewPlan {
    pub(crate) symbol: usize,
    pub(crate) side: BookSide,
    pub(crate) market: bool,
    pub(crate) immediate_or_cancel: bool,
    /// 0 for a market order.
    pub(crate) price: i64,
    pub(crate) quantity: i64,
}

impl NewPlan {
    /// Whether what does not trade at once rests on the book (limit DAY orders).
    pub(crate) fn may_rest(&self) -> bool {
        !self.market && !self.immediate_or_cancel
    }

    /// The price the order may trade up (or down) to; `None` for a market order.
    pub(crate) fn limit(&self) -> Option<i64> {
        (!self.market).then_some(self.price)
    }
}

/// A replace that passed the structural checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReplacePlan {
    pub(crate) order: OrderId,
    pub(crate) price: i64,
    pub(crate) quantity: i64,
}

impl Engine {
    /// Every check of a new order but the throttle.
    pub(super) fn check_new(&self, request: &NewOrderRequest) -> Result<NewPlan, Reject> {
        self.check_ids(&request.account, &request.cl_ord_id)?;
        let plan = self.structural_new(request)?;
        if let Err(halted) = self.kill_switches.check(&request.account) {
            // A halted account may still reduce its position.
            let exposure = self.orders.exposure(&request.account, plan.symbol);
            if !risk::reduces_position(plan.side, exposure, plan.quantity) {
                return Err(halted);
            }
        }
        let symbol = self.symbol(plan.symbol)?;
        let reference = symbol.reference_price();
        if !plan.market {
            risk::check_tick(plan.price, symbol.spec.tick_size)?;
            risk::check_band(plan.price, reference, self.limits.price_band_percent)?;
        }
        risk::check_max_quantity(plan.quantity, self.limits.max_order_quantity)?;
        let price = if plan.market { reference } else { plan.price };
        risk::check_notional(price, plan.quantity, self.limits.max_notional)?;
        risk::check_credit(
            self.orders.open_notional(&request.account),
            notional(price, plan.quantity),
            self.limits.credit_limit,
        )?;
        if plan.may_rest() {
            risk::check_open_orders(self.orders.open_orders(&request.account), self.limits.max_open_orders)?;
        }
        let exposure = self.orders.exposure(&request.account, plan.symbol);
        risk::check_position(plan.side, exposure, plan.quantity, self.limits.position_limit, &symbol.spec.name)?;
        if plan.market && !symbol.book.has_orders(plan.side.opposite()) {
            return Err(Reject::new(
                RejectReason::NoLiquidity,
                format!("no liquidity: the other side of {} is empty", shown(&symbol.spec.name)),
            ));
        }
        Ok(plan)
    }

    /// Every check of a replace but the throttle.
    pub(super) fn check_replace(&self, request: &ReplaceOrderRequest) -> Result<ReplacePlan, Reject> {
        self.check_ids(&request.account, &request.cl_ord_id)?;
        let plan = self.structural_replace(request)?;
        let order = self.orders.get(plan.order).ok_or_else(|| unknown_order(&request.orig_cl_ord_id))?;
        let symbol = self.symbol(order.symbol)?;
        risk::check_tick(plan.price, symbol.spec.tick_size)?;
        risk::check_band(plan.price, symbol.reference_price(), self.limits.price_band_percent)?;
        risk::check_max_quantity(plan.quantity, self.limits.max_order_quantity)?;
        risk::check_notional(plan.price, plan.quantity, self.limits.max_notional)?;
        let new_leaves = plan.quantity.saturating_sub(order.cumulative);
        let added = notional(plan.price, new_leaves) - notional(order.price, order.leaves);
        if added > 0 {
            risk::check_credit(self.orders.open_notional(&request.account), added, self.limits.credit_limit)?;
        }
        // Structural checks guarantee quantity > cumulative, so the new open quantity is positive.
        let added = plan.quantity.saturating_sub(order.cumulative).saturating_sub(order.leaves);
        if added > 0 {
            // A halted account may lower an order, not raise it.
            self.kill_switches.check(&request.account)?;
            let exposure = self.orders.exposure(&request.account, order.symbol);
            risk::check_position(order.side, exposure, added, self.limits.position_limit, &symbol.spec.name)?;
        }
        Ok(plan)
    }

    /// Every check of a cancel.
    pub(super) fn check_cancel(&self, request: &CancelOrderRequest) -> Result<OrderId, Reject> {
        self.check_ids(&request.account, &request.cl_ord_id)?;
        self.structural_cancel(request)
    }

    /// Structural checks of a new order: those that do not depend on the limits.
    pub(super) fn structural_new(&self, request: &NewOrderRequest) -> Result<NewPlan, Reject> {
        self.check_unused(&request.account, &request.cl_ord_id)?;
        let symbol = *self
            .symbol_index
            .get(&request.symbol)
            .ok_or_else(|| Reject::new(RejectReason::UnknownSymbol, format!("unknown symbol {}", shown(&request.symbol))))?;
        let side = BookSide::from_proto(request.side).ok_or_else(|| {
            Reject::new(
                RejectReason::InvalidSide,
                format!("side {} is neither BUY (1) nor SELL (2)", request.side),
            )
        })?;
        let market = match OrderType::try_from(request.order_type) {
            Ok(OrderType::Limit) => false,
            Ok(OrderType::Market) => true,
            Ok(OrderType::Unspecified) | Err(_) => {
                let text = format!("order type {} is neither LIMIT (1) nor MARKET (2)", request.order_type);
                return Err(Reject::new(RejectReason::InvalidOrderType, text));
            }
        };
        let immediate_or_cancel = match TimeInForce::try_from(request.time_in_force) {
            Ok(TimeInForce::Day) => market,
            Ok(TimeInForce::Ioc) => true,
            Err(_) => {
                let text = format!("time in force {} is neither DAY (0) nor IOC (1)", request.time_in_force);
                return Err(Reject::new(RejectReason::InvalidOrderType, text));
            }
        };
        check_quantity(request.quantity)?;
        if !market {
            check_price(request.price)?;
        }
        let price = if market { 0 } else { request.price };
        Ok(NewPlan {
            symbol,
            side,
            market,
            immediate_or_cancel,
            price,
            quantity: request.quantity,
        })
    }

    /// Structural checks of a replace.
    pub(super) fn structural_replace(&self, request: &ReplaceOrderRequest) -> Result<ReplacePlan, Reject> {
        self.check_unused(&request.account, &request.cl_ord_id)?;
        let order = self.open_order(&request.account, &request.orig_cl_ord_id)?;
        let Some(current) = self.orders.get(order) else {
            return Err(unknown_order(&request.orig_cl_ord_id));
        };
        check_quantity(request.quantity)?;
        if request.quantity <= current.cumulative {
            return Err(Reject::new(
                RejectReason::InvalidQuantity,
                format!(
                    "quantity {} is not above the {} already filled; the new quantity is the order's total, or cancel the order",
                    request.quantity, current.cumulative
                ),
            ));
        }
        check_price(request.price)?;
        Ok(ReplacePlan {
            order,
            price: request.price,
            quantity: request.quantity,
        })
    }

    /// Structural checks of a cancel: returns the order to cancel.
    pub(super) fn structural_cancel(&self, request: &CancelOrderRequest) -> Result<OrderId, Reject> {
        self.check_unused(&request.account, &request.cl_ord_id)?;
        self.open_order(&request.account, &request.orig_cl_ord_id)
    }

    /// The symbol at `index` (always there for an index from `symbol_index`).
    pub(super) fn symbol(&self, index: usize) -> Result<&Symbol, Reject> {
        self.symbols
            .get(index)
            .ok_or_else(|| Reject::new(RejectReason::UnknownSymbol, "unknown symbol"))
    }

    fn check_ids(&self, account: &str, cl_ord_id: &str) -> Result<(), Reject> {
        risk::check_id(IdKind::Account, account, self.limits.max_id_len)?;
        risk::check_id(IdKind::ClOrdId, cl_ord_id, self.limits.max_id_len)
    }

    fn check_unused(&self, account: &str, cl_ord_id: &str) -> Result<(), Reject> {
        if self.orders.is_seen(account, cl_ord_id) {
            return Err(Reject::new(
                RejectReason::DuplicateClOrdId,
                format!("cl_ord_id {} was already used by this account", shown(cl_ord_id)),
            ));
        }
        Ok(())
    }

    /// The open order an account's `orig_cl_ord_id` names.
    fn open_order(&self, account: &str, orig_cl_ord_id: &str) -> Result<OrderId, Reject> {
        let id = self
            .orders
            .lookup(account, orig_cl_ord_id)
            .ok_or_else(|| unknown_order(orig_cl_ord_id))?;
        let order = self.orders.get(id).ok_or_else(|| unknown_order(orig_cl_ord_id))?;
        if !order.is_open() {
            let status = order.status.as_str_name().trim_start_matches("ORDER_STATUS_").to_lowercase();
            return Err(Reject::new(
                RejectReason::OrderFinal,
                format!("order {} is already {status}", shown(orig_cl_ord_id)),
            ));
        }
        Ok(id)
    }
}

fn unknown_order(orig_cl_ord_id: &str) -> Reject {
    Reject::new(
        RejectReason::UnknownOrder,
        format!("this account has no order {}", shown(orig_cl_ord_id)),
    )
}

fn check_quantity(quantity: i64) -> Result<(), Reject> {
    if quantity <= 0 {
        return Err(Reject::new(
            RejectReason::InvalidQuantity,
            format!("quantity must be positive, got {quantity}"),
        ));
    }
    Ok(())
}

fn check_price(price: i64) -> Result<(), Reject> {
    if price <= 0 {
        return Err(Reject::new(
            RejectReason::InvalidPrice,
            format!("a limit price must be positive, got {price}"),
        ));
    }
    Ok(())
}
