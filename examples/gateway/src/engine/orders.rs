//! Order and account state: every order (open and final), each account's seen ClOrdIDs, open
//! order count, positions and open quantity per symbol and side, and the cancel-on-disconnect index.
//!
//! Every change of an order goes through a method here so that the account aggregates stay in
//! step with the orders. Orders are never dropped: final ones answer queries and keep their
//! ClOrdIDs taken, across restarts too (the journal replays them). An order costs about 150 bytes
//! plus its ClOrdIDs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::book::BookSide;
use crate::proto::OrderStatus;

/// The gateway's id for an order: 1, 2, 3… in the order the journal accepted them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct OrderId(pub(crate) u64);

/// One order and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub(crate) id: OrderId,
    pub(crate) account: Arc<str>,
    /// The current ClOrdID (the last replace's, or the original).
    pub(crate) cl_ord_id: String,
    /// Index into the engine's symbols.
    pub(crate) symbol: usize,
    pub(crate) side: BookSide,
    /// 0 for a market order.
    pub(crate) price: i64,
    /// The total quantity (after the last replace).
    pub(crate) quantity: i64,
    pub(crate) leaves: i64,
    pub(crate) cumulative: i64,
    pub(crate) status: OrderStatus,
    /// The session that entered the order.
    pub(crate) session: u64,
    pub(crate) cancel_on_disconnect: bool,
    /// The book's time key while the order rests; `None` once final (or before it rests).
    pub(crate) resting: Option<u64>,
    /// The sequence of the last command that changed the order.
    pub(crate) sequence: u64,
}

impl Order {
    /// Whether the order is still open (resting on the book).
    pub(crate) fn is_open(&self) -> bool {
        self.resting.is_some()
    }
}

/// One account's position and open quantity on one symbol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Exposure {
    /// Bought minus sold, saturating.
    pub(crate) position: i64,
    /// Open quantity of resting buys (`i128`: exact for any number of orders).
    pub(crate) open_buy: i128,
    /// Open quantity of resting sells.
    pub(crate) open_sell: i128,
}

impl Exposure {
    /// The open quantity on `side`.
    pub(crate) fn open(&self, side: BookSide) -> i128 {
        match side {
            BookSide::Buy => self.open_buy,
            BookSide::Sell => self.open_sell,
        }
    }

    fn open_mut(&mut self, side: BookSide) -> &mut i128 {
        match side {
            BookSide::Buy => &mut self.open_buy,
            BookSide::Sell => &mut self.open_sell,
        }
    }
}

#[derive(Debug, Default)]
struct Account {
    /// Every accepted ClOrdID (new order, cancel or replace) → the order it concerns.
    cl_ord_ids: HashMap<String, OrderId>,
    open_orders: usize,
    /// Symbol index → exposure; a `BTreeMap` keeps iteration deterministic.
    exposures: BTreeMap<usize, Exposure>,
    /// The sequence of the last command that changed the account or any of its orders.
    sequence: u64,
    /// Σ price × open quantity over the account's resting orders.
    open_notional: i128,
}

impl Account {
    /// Records that the command `sequence` changed the account or one of its orders.
    fn touch(&mut self, sequence: u64) {
        self.sequence = self.sequence.max(sequence);
    }
}

/// All orders and accounts.
#[derive(Debug, Default)]
pub(crate) struct Orders {
    /// Order `n` is at index `n - 1`.
    orders: Vec<Order>,
    accounts: HashMap<Arc<str>, Account>,
    /// (session, order) of every open cancel-on-disconnect order.
    cancel_on_disconnect: BTreeSet<(u64, OrderId)>,
}

impl Orders {
    /// The id the next inserted order gets.
    pub(crate) fn next_id(&self) -> OrderId {
        OrderId(self.orders.len() as u64 + 1)
    }

    /// How many orders (open and final) the engine holds.
    pub(crate) fn len(&self) -> usize {
        self.orders.len()
    }

    /// Adds a new order (not yet resting, `id` from [`next_id`](Self::next_id)) and takes its ClOrdID.
    pub(crate) fn insert(&mut self, account: &str, mut order: Order) -> OrderId {
        let id = self.next_id();
        order.id = id;
        order.resting = None;
        let account = match self.accounts.get_key_value(account) {
            Some((name, _)) => Arc::clone(name),
            None => {
                let name: Arc<str> = Arc::from(account);
                self.accounts.insert(Arc::clone(&name), Account::default());
                name
            }
        };
        order.account = Arc::clone(&account);
        if let Some(entry) = self.accounts.get_mut(&account) {
            entry.cl_ord_ids.insert(order.cl_ord_id.clone(), id);
            entry.touch(order.sequence);
        }
        self.orders.push(order);
        id
    }

    /// The order an account's ClOrdID (any it used for the order) names.
    pub(crate) fn lookup(&self, account: &str, cl_ord_id: &str) -> Option<OrderId> {
        self.accounts.get(account)?.cl_ord_ids.get(cl_ord_id).copied()
    }

    /// Whether the account already used this ClOrdID.
    pub(crate) fn is_seen(&self, account: &str, cl_ord_id: &str) -> bool {
        self.lookup(account, cl_ord_id).is_some()
    }

    /// The order with this id.
    pub(crate) fn get(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(index(id)?)
    }

    /// Takes a cancel's or replace's ClOrdID for `id` (by the command `sequence`); a replace's
    /// becomes the order's current one.
    pub(crate) fn take_cl_ord_id(&mut self, id: OrderId, cl_ord_id: &str, becomes_current: bool, sequence: u64) {
        let Some(order) = slot(&mut self.orders, id) else { return };
        if let Some(account) = self.accounts.get_mut(&order.account) {
            account.cl_ord_ids.insert(cl_ord_id.to_owned(), id);
            account.touch(sequence);
        }
        if becomes_current {
            order.cl_ord_id = cl_ord_id.to_owned();
        }
    }

    /// Records that the order now rests on the book under `time`.
    pub(crate) fn rest(&mut self, id: OrderId, time: u64, sequence: u64) {
        let Some(order) = slot(&mut self.orders, id) else { return };
        if order.resting.is_some() || order.leaves <= 0 {
            return;
        }
        order.resting = Some(time);
        order.sequence = sequence;
        if let Some(account) = self.accounts.get_mut(&order.account) {
            account.touch(sequence);
            account.open_notional += notional(order.price, order.leaves);
            account.open_orders += 1;
            *account.exposures.entry(order.symbol).or_default().open_mut(order.side) += i128::from(order.leaves);
        }
        if order.cancel_on_disconnect {
            self.cancel_on_disconnect.insert((order.session, id));
        }
    }

    /// A trade of `quantity` (clamped to the open quantity): moves leaves, cumulative, status,
    /// the position and, for a resting order, the open quantity; a filled order stops resting.
    pub(crate) fn trade(&mut self, id: OrderId, quantity: i64, sequence: u64) {
        let Some(order) = slot(&mut self.orders, id) else { return };
        let quantity = quantity.clamp(0, order.leaves.max(0));
        order.leaves -= quantity;
        order.cumulative = order.cumulative.saturating_add(quantity);
        order.sequence = sequence;
        let Some(account) = self.accounts.get_mut(&order.account) else {
            return;
        };
        account.touch(sequence);
        let exposure = account.exposures.entry(order.symbol).or_default();
        exposure.position = exposure.position.saturating_add(order.side.sign().saturating_mul(quantity));
        if order.resting.is_some() {
            *exposure.open_mut(order.side) -= i128::from(quantity);
            account.open_notional -= notional(order.price, quantity);
        }
        if order.leaves > 0 {
            order.status = OrderStatus::PartiallyFilled;
        } else {
            order.status = OrderStatus::Filled;
            if order.resting.take().is_some() {
                account.open_orders = account.open_orders.saturating_sub(1);
                self.cancel_on_disconnect.remove(&(order.session, id));
            }
        }
    }

    /// Takes the order off the book in the order state (the caller removes it from the book):
    /// its open quantity no longer counts. Leaves and status are unchanged.
    pub(crate) fn unrest(&mut self, id: OrderId) {
        let Some(order) = slot(&mut self.orders, id) else { return };
        if order.resting.take().is_none() {
            return;
        }
        if let Some(account) = self.accounts.get_mut(&order.account) {
            account.open_orders = account.open_orders.saturating_sub(1);
            account.open_notional -= notional(order.price, order.leaves);
            *account.exposures.entry(order.symbol).or_default().open_mut(order.side) -= i128::from(order.leaves);
        }
        self.cancel_on_disconnect.remove(&(order.session, id));
    }

    /// Cancels what is left of the order: off the book, leaves 0, status CANCELLED.
    pub(crate) fn cancel(&mut self, id: OrderId, sequence: u64) {
        self.unrest(id);
        if let Some(order) = slot(&mut self.orders, id) {
            order.leaves = 0;
            order.status = OrderStatus::Cancelled;
            order.sequence = sequence;
            if let Some(account) = self.accounts.get_mut(&order.account) {
                account.touch(sequence);
            }
        }
    }

    /// A replace: sets the new price and total quantity; leaves become `quantity - cumulative`.
    /// A resting order's open quantity is adjusted in place (the caller keeps it on the book only
    /// if that keeps its priority; otherwise it calls [`unrest`](Self::unrest) first).
    pub(crate) fn amend(&mut self, id: OrderId, price: i64, quantity: i64, sequence: u64) {
        let Some(order) = slot(&mut self.orders, id) else { return };
        let leaves = quantity.saturating_sub(order.cumulative).max(0);
        if let Some(account) = self.accounts.get_mut(&order.account) {
            account.touch(sequence);
            if order.resting.is_some() {
                *account.exposures.entry(order.symbol).or_default().open_mut(order.side) += i128::from(leaves) - i128::from(order.leaves);
                account.open_notional += notional(price, leaves) - notional(order.price, order.leaves);
            }
        }
        order.price = price;
        order.quantity = quantity;
        order.leaves = leaves;
        order.sequence = sequence;
        order.status = match (leaves, order.cumulative) {
            (0, _) => OrderStatus::Filled,
            (_, 0) => OrderStatus::New,
            _ => OrderStatus::PartiallyFilled,
        };
    }

    /// The open orders of `account` (of every account for `None`), by order id. Walks every
    /// order: for the rare kill switch, not for the order path.
    pub(crate) fn open_order_ids(&self, account: Option<&str>) -> Vec<OrderId> {
        self.orders
            .iter()
            .filter(|order| order.is_open() && account.is_none_or(|account| *order.account == *account))
            .map(|order| order.id)
            .collect()
    }

    /// The open cancel-on-disconnect orders of `session` (or of every session), by order id.
    pub(crate) fn cancel_on_disconnect_orders(&self, session: Option<u64>) -> Vec<OrderId> {
        let mut ids: Vec<OrderId> = match session {
            Some(session) => self
                .cancel_on_disconnect
                .range((session, OrderId(0))..=(session, OrderId(u64::MAX)))
                .map(|(_, id)| *id)
                .collect(),
            None => self.cancel_on_disconnect.iter().map(|(_, id)| *id).collect(),
        };
        ids.sort_unstable();
        ids
    }

    /// The sequence of the last command that changed the account or one of its orders (0: none).
    pub(crate) fn account_sequence(&self, account: &str) -> u64 {
        self.accounts.get(account).map_or(0, |a| a.sequence)
    }

    /// Σ price × open quantity over the account's resting orders.
    pub(crate) fn open_notional(&self, account: &str) -> i128 {
        self.accounts.get(account).map_or(0, |a| a.open_notional)
    }

    /// The account's open orders.
    pub(crate) fn open_orders(&self, account: &str) -> usize {
        self.accounts.get(account).map_or(0, |a| a.open_orders)
    }

    /// The account's position and open quantity on a symbol.
    pub(crate) fn exposure(&self, account: &str, symbol: usize) -> Exposure {
        self.accounts
            .get(account)
            .and_then(|a| a.exposures.get(&symbol))
            .copied()
            .unwrap_or_default()
    }

    /// Every order, in id order (for tests' consistency checks).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Order> {
        self.orders.iter()
    }
}

/// `price × quantity`, exact (`i128` holds any product of two `i64`).
pub(crate) fn notional(price: i64, quantity: i64) -> i128 {
    i128::from(price) * i128::from(quantity)
}

/// The vector index of an order id, if it can be one.
fn index(id: OrderId) -> Option<usize> {
    usize::try_from(id.0.checked_sub(1)?).ok()
}

/// The order with this id, borrowing only the orders (not the accounts).
fn slot(orders: &mut [Order], id: OrderId) -> Option<&mut Order> {
    orders.get_mut(index(id)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(cl_ord_id: &str, side: BookSide, quantity: i64, session: u64, cod: bool) -> Order {
        Order {
            id: OrderId(0),
            account: Arc::from(""),
            cl_ord_id: cl_ord_id.into(),
            symbol: 0,
            side,
            price: 100,
            quantity,
            leaves: quantity,
            cumulative: 0,
            status: OrderStatus::New,
            session,
            cancel_on_disconnect: cod,
            resting: None,
            sequence: 1,
        }
    }

    #[test]
    fn an_order_stays_small() {
        // The engine keeps every order for the life of the journal (see the module docs).
        assert!(std::mem::size_of::<Order>() <= 160, "{}", std::mem::size_of::<Order>());
    }

    #[test]
    fn insert_assigns_ids_and_takes_the_cl_ord_id() {
        let mut orders = Orders::default();
        assert_eq!(orders.insert("A", order("a1", BookSide::Buy, 10, 1, false)), OrderId(1));
        assert_eq!(orders.insert("A", order("a2", BookSide::Buy, 10, 1, false)), OrderId(2));
        assert_eq!(orders.lookup("A", "a2"), Some(OrderId(2)));
        assert!(orders.is_seen("A", "a1"));
        assert!(!orders.is_seen("B", "a1"));
        assert_eq!(orders.get(OrderId(2)).map(|o| &*o.account), Some("A"));
        assert_eq!(orders.get(OrderId(0)), None);
        assert_eq!(orders.get(OrderId(u64::MAX)), None);
    }

    #[test]
    fn rest_trade_and_cancel_keep_the_aggregates_in_step() {
        let mut orders = Orders::default();
        let id = orders.insert("A", order("a1", BookSide::Sell, 10, 1, false));
        orders.rest(id, 0, 2);
        assert_eq!(orders.open_orders("A"), 1);
        assert_eq!(orders.exposure("A", 0).open_sell, 10);
        orders.trade(id, 4, 3);
        assert_eq!(
            orders.exposure("A", 0),
            Exposure {
                position: -4,
                open_buy: 0,
                open_sell: 6
            }
        );
        assert_eq!(orders.get(id).map(|o| o.status), Some(OrderStatus::PartiallyFilled));
        orders.cancel(id, 4);
        assert_eq!(
            orders.exposure("A", 0),
            Exposure {
                position: -4,
                open_buy: 0,
                open_sell: 0
            }
        );
        assert_eq!(orders.open_orders("A"), 0);
        let cancelled = orders.get(id).cloned();
        assert_eq!(
            cancelled.map(|o| (o.status, o.leaves, o.cumulative)),
            Some((OrderStatus::Cancelled, 0, 4))
        );
    }

    #[test]
    fn a_filled_resting_order_stops_resting() {
        let mut orders = Orders::default();
        let id = orders.insert("A", order("a1", BookSide::Buy, 10, 1, true));
        orders.rest(id, 0, 2);
        orders.trade(id, 99, 3);
        let filled = orders.get(id).cloned();
        assert_eq!(
            filled.map(|o| (o.status, o.leaves, o.cumulative, o.is_open())),
            Some((OrderStatus::Filled, 0, 10, false))
        );
        assert_eq!(
            orders.exposure("A", 0),
            Exposure {
                position: 10,
                open_buy: 0,
                open_sell: 0
            }
        );
        assert!(orders.cancel_on_disconnect_orders(None).is_empty());
    }

    #[test]
    fn amend_recomputes_leaves_and_open_quantity() {
        let mut orders = Orders::default();
        let id = orders.insert("A", order("a1", BookSide::Buy, 10, 1, false));
        orders.rest(id, 0, 2);
        orders.trade(id, 3, 3);
        orders.amend(id, 100, 5, 4);
        assert_eq!(
            orders.get(id).map(|o| (o.leaves, o.status)),
            Some((2, OrderStatus::PartiallyFilled))
        );
        assert_eq!(orders.exposure("A", 0).open_buy, 2);
        orders.take_cl_ord_id(id, "a2", true, 5);
        assert_eq!(orders.lookup("A", "a1"), Some(id));
        assert_eq!(orders.lookup("A", "a2"), Some(id));
        assert_eq!(orders.get(id).map(|o| o.cl_ord_id.as_str()), Some("a2"));
    }

    #[test]
    fn cancel_on_disconnect_orders_are_per_session_and_sorted() {
        let mut orders = Orders::default();
        for (n, (session, cod)) in [(7, true), (8, true), (7, false), (7, true)].into_iter().enumerate() {
            let id = orders.insert("A", order(&format!("o{n}"), BookSide::Buy, 1, session, cod));
            orders.rest(id, n as u64, 1);
        }
        assert_eq!(orders.cancel_on_disconnect_orders(Some(7)), vec![OrderId(1), OrderId(4)]);
        assert_eq!(orders.cancel_on_disconnect_orders(Some(9)), vec![]);
        assert_eq!(orders.cancel_on_disconnect_orders(None), vec![OrderId(1), OrderId(2), OrderId(4)]);
    }
}
