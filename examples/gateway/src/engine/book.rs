//! A price-time priority limit order book for one symbol.
//!
//! The book knows resting orders only by [`OrderId`] and open quantity; the order's other state
//! lives in [`Orders`](super::orders::Orders) and the engine keeps the two in step. Each side is a
//! `BTreeMap` from price to a [`Level`], and a level is a `BTreeMap` from a time key (a per-book
//! counter, so a smaller key came first) to the resting order: the best level, the first order
//! at a level and the removal of any order are all `O(log n)`.

use std::collections::BTreeMap;

use super::orders::OrderId;
use crate::proto::Side;

/// The side of a valid order (the proto's `Side` without `UNSPECIFIED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum BookSide {
    /// Bids.
    Buy,
    /// Offers.
    Sell,
}

impl BookSide {
    /// The side a proto `side` field names, if it names one.
    pub(crate) fn from_proto(side: i32) -> Option<Self> {
        match Side::try_from(side) {
            Ok(Side::Buy) => Some(Self::Buy),
            Ok(Side::Sell) => Some(Self::Sell),
            Ok(Side::Unspecified) | Err(_) => None,
        }
    }

    /// The proto enum value.
    pub(crate) fn as_proto(self) -> Side {
        match self {
            Self::Buy => Side::Buy,
            Self::Sell => Side::Sell,
        }
    }

    /// The other side.
    pub(crate) fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }

    /// `+1` for a buy, `-1` for a sell: how a fill moves the position.
    pub(crate) fn sign(self) -> i64 {
        match self {
            Self::Buy => 1,
            Self::Sell => -1,
        }
    }
}

/// One trade of an incoming order against a resting one, at the resting order's price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Match {
    /// The resting (passive) order.
    pub(crate) maker: OrderId,
    /// The resting order's price.
    pub(crate) price: i64,
    /// The quantity traded.
    pub(crate) quantity: i64,
}

/// The best bid and offer (aggregate quantity at the best level) and the last trade; zeros where absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Top {
    /// Best bid price, 0 without bids.
    pub(crate) bid_price: i64,
    /// Total open quantity at the best bid.
    pub(crate) bid_quantity: i64,
    /// Best offer price, 0 without offers.
    pub(crate) ask_price: i64,
    /// Total open quantity at the best offer.
    pub(crate) ask_quantity: i64,
    /// Price of the last trade, 0 before the first.
    pub(crate) last_trade_price: i64,
    /// Quantity of the last trade, 0 before the first.
    pub(crate) last_trade_quantity: i64,
}

/// The orders resting at one price, in time priority.
#[derive(Debug, Default)]
struct Level {
    /// Time key → resting order.
    orders: BTreeMap<u64, Resting>,
    /// The sum of the orders' open quantity; `i128` so that no sum of `i64`s overflows.
    total: i128,
}

#[derive(Clone, Copy, Debug)]
struct Resting {
    order: OrderId,
    leaves: i64,
}

/// One symbol's book.
#[derive(Debug, Default)]
pub(crate) struct Book {
    bids: BTreeMap<i64, Level>,
    asks: BTreeMap<i64, Level>,
    /// The next time key. A `u64` incremented once per insert does not wrap in practice; it
    /// wraps rather than panics if it ever did.
    next_time: u64,
    last_trade: Option<(i64, i64)>,
    /// Trades so far: tells a trade at an unchanged price and quantity from no trade.
    trades: u64,
}

impl Book {
    /// Rests `leaves` of `order` at the back of its price level; returns its time key.
    pub(crate) fn insert(&mut self, side: BookSide, price: i64, order: OrderId, leaves: i64) -> u64 {
        let time = self.next_time;
        self.next_time = self.next_time.wrapping_add(1);
        let level = self.side_mut(side).entry(price).or_default();
        level.orders.insert(time, Resting { order, leaves });
        level.total += i128::from(leaves);
        time
    }

    /// Takes the order with this key off the book; returns the open quantity it had.
    pub(crate) fn remove(&mut self, side: BookSide, price: i64, time: u64) -> Option<i64> {
        let levels = self.side_mut(side);
        let level = levels.get_mut(&price)?;
        let resting = level.orders.remove(&time)?;
        level.total -= i128::from(resting.leaves);
        if level.orders.is_empty() {
            levels.remove(&price);
        }
        Some(resting.leaves)
    }

    /// Lowers a resting order's open quantity to `leaves`, keeping its time priority. Refuses
    /// (returns false) a rise or a non-positive quantity: those are a remove and an insert.
    pub(crate) fn reduce(&mut self, side: BookSide, price: i64, time: u64, leaves: i64) -> bool {
        let Some(level) = self.side_mut(side).get_mut(&price) else {
            return false;
        };
        let Some(resting) = level.orders.get_mut(&time) else { return false };
        if leaves <= 0 || leaves > resting.leaves {
            return false;
        }
        level.total -= i128::from(resting.leaves - leaves);
        resting.leaves = leaves;
        true
    }

    /// Matches an incoming order of `quantity` on `side` against the other side, best price
    /// first and oldest first within a price, up to `limit` (`None`: a market order, any price).
    /// Filled resting orders leave the book. Returns the trades in the order they happened.
    pub(crate) fn execute(&mut self, side: BookSide, limit: Option<i64>, quantity: i64) -> Vec<Match> {
        let mut matches = Vec::new();
        let mut remaining = quantity;
        let levels = match side {
            BookSide::Buy => &mut self.asks,
            BookSide::Sell => &mut self.bids,
        };
        while remaining > 0 {
            let best = match side {
                BookSide::Buy => levels.first_entry(),
                BookSide::Sell => levels.last_entry(),
            };
            let Some(mut entry) = best else { break };
            let price = *entry.key();
            let crosses = match (side, limit) {
                (_, None) => true,
                (BookSide::Buy, Some(limit)) => price <= limit,
                (BookSide::Sell, Some(limit)) => price >= limit,
            };
            if !crosses {
                break;
            }
            let level = entry.get_mut();
            while remaining > 0 {
                let Some(mut first) = level.orders.first_entry() else { break };
                let resting = first.get_mut();
                let traded = remaining.min(resting.leaves);
                resting.leaves -= traded;
                level.total -= i128::from(traded);
                remaining -= traded;
                if traded > 0 {
                    matches.push(Match {
                        maker: resting.order,
                        price,
                        quantity: traded,
                    });
                }
                if resting.leaves <= 0 {
                    first.remove();
                }
            }
            if level.orders.is_empty() {
                entry.remove();
            }
        }
        if let Some(last) = matches.last() {
            self.last_trade = Some((last.price, last.quantity));
            self.trades = self.trades.wrapping_add(matches.len() as u64);
        }
        matches
    }

    /// Whether `side` has any resting order.
    pub(crate) fn has_orders(&self, side: BookSide) -> bool {
        match side {
            BookSide::Buy => !self.bids.is_empty(),
            BookSide::Sell => !self.asks.is_empty(),
        }
    }

    /// The price of the last trade, if there was one.
    pub(crate) fn last_trade_price(&self) -> Option<i64> {
        self.last_trade.map(|(price, _)| price)
    }

    /// How many trades the book has seen.
    pub(crate) fn trades(&self) -> u64 {
        self.trades
    }

    /// The best bid and offer and the last trade.
    pub(crate) fn top(&self) -> Top {
        let (bid_price, bid_quantity) = self
            .bids
            .last_key_value()
            .map_or((0, 0), |(price, level)| (*price, clamp(level.total)));
        let (ask_price, ask_quantity) = self
            .asks
            .first_key_value()
            .map_or((0, 0), |(price, level)| (*price, clamp(level.total)));
        let (last_trade_price, last_trade_quantity) = self.last_trade.unwrap_or((0, 0));
        Top {
            bid_price,
            bid_quantity,
            ask_price,
            ask_quantity,
            last_trade_price,
            last_trade_quantity,
        }
    }

    /// Every level of `side`, best first, each with its orders in time priority.
    #[cfg(test)]
    pub(crate) fn levels(&self, side: BookSide) -> Vec<(i64, Vec<(OrderId, i64)>)> {
        let level = |(price, level): (&i64, &Level)| (*price, level.orders.values().map(|r| (r.order, r.leaves)).collect());
        match side {
            BookSide::Buy => self.bids.iter().rev().map(level).collect(),
            BookSide::Sell => self.asks.iter().map(level).collect(),
        }
    }

    fn side_mut(&mut self, side: BookSide) -> &mut BTreeMap<i64, Level> {
        match side {
            BookSide::Buy => &mut self.bids,
            BookSide::Sell => &mut self.asks,
        }
    }
}

/// An aggregate quantity as a proto `int64`, saturating (only a replayed journal without limits could exceed it).
fn clamp(total: i128) -> i64 {
    i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> OrderId {
        OrderId(n)
    }

    #[test]
    fn buy_matches_lowest_offer_first_then_oldest() {
        let mut book = Book::default();
        book.insert(BookSide::Sell, 101, id(1), 10);
        book.insert(BookSide::Sell, 100, id(2), 10);
        book.insert(BookSide::Sell, 100, id(3), 10);
        let matches = book.execute(BookSide::Buy, Some(101), 25);
        assert_eq!(
            matches,
            vec![
                Match {
                    maker: id(2),
                    price: 100,
                    quantity: 10
                },
                Match {
                    maker: id(3),
                    price: 100,
                    quantity: 10
                },
                Match {
                    maker: id(1),
                    price: 101,
                    quantity: 5
                },
            ]
        );
        assert_eq!(book.levels(BookSide::Sell), vec![(101, vec![(id(1), 5)])]);
        assert_eq!(book.top().last_trade_price, 101);
        assert_eq!(book.top().last_trade_quantity, 5);
    }

    #[test]
    fn sell_matches_highest_bid_first_and_stops_at_its_limit() {
        let mut book = Book::default();
        book.insert(BookSide::Buy, 99, id(1), 10);
        book.insert(BookSide::Buy, 100, id(2), 10);
        let matches = book.execute(BookSide::Sell, Some(100), 30);
        assert_eq!(
            matches,
            vec![Match {
                maker: id(2),
                price: 100,
                quantity: 10
            }]
        );
        assert_eq!(book.levels(BookSide::Buy), vec![(99, vec![(id(1), 10)])]);
    }

    #[test]
    fn market_order_sweeps_every_level() {
        let mut book = Book::default();
        book.insert(BookSide::Buy, 99, id(1), 10);
        book.insert(BookSide::Buy, 98, id(2), 10);
        let matches = book.execute(BookSide::Sell, None, 100);
        assert_eq!(matches.iter().map(|m| m.quantity).sum::<i64>(), 20);
        assert!(!book.has_orders(BookSide::Buy));
        assert_eq!(book.trades(), 2);
    }

    #[test]
    fn execute_on_an_empty_side_trades_nothing() {
        let mut book = Book::default();
        book.insert(BookSide::Buy, 99, id(1), 10);
        assert!(book.execute(BookSide::Buy, None, 10).is_empty());
        assert_eq!(book.last_trade_price(), None);
        assert_eq!(book.trades(), 0);
    }

    #[test]
    fn top_aggregates_the_best_level() {
        let mut book = Book::default();
        book.insert(BookSide::Buy, 99, id(1), 10);
        book.insert(BookSide::Buy, 99, id(2), 7);
        book.insert(BookSide::Buy, 98, id(3), 100);
        book.insert(BookSide::Sell, 101, id(4), 4);
        let top = book.top();
        assert_eq!((top.bid_price, top.bid_quantity, top.ask_price, top.ask_quantity), (99, 17, 101, 4));
        assert_eq!(Book::default().top(), Top::default());
    }

    #[test]
    fn reduce_keeps_priority_and_refuses_a_rise() {
        let mut book = Book::default();
        let first = book.insert(BookSide::Buy, 99, id(1), 10);
        book.insert(BookSide::Buy, 99, id(2), 10);
        assert!(book.reduce(BookSide::Buy, 99, first, 4));
        assert!(!book.reduce(BookSide::Buy, 99, first, 5));
        assert!(!book.reduce(BookSide::Buy, 99, first, 0));
        assert!(!book.reduce(BookSide::Buy, 98, first, 1));
        assert_eq!(book.levels(BookSide::Buy), vec![(99, vec![(id(1), 4), (id(2), 10)])]);
        assert_eq!(book.top().bid_quantity, 14);
    }

    #[test]
    fn remove_drops_empty_levels_and_unknown_keys_are_none() {
        let mut book = Book::default();
        let time = book.insert(BookSide::Sell, 101, id(1), 10);
        assert_eq!(book.remove(BookSide::Sell, 101, time + 1), None);
        assert_eq!(book.remove(BookSide::Buy, 101, time), None);
        assert_eq!(book.remove(BookSide::Sell, 101, time), Some(10));
        assert!(!book.has_orders(BookSide::Sell));
        assert_eq!(book.remove(BookSide::Sell, 101, time), None);
    }

    #[test]
    fn aggregate_quantity_saturates_instead_of_overflowing() {
        let mut book = Book::default();
        book.insert(BookSide::Buy, 1, id(1), i64::MAX);
        book.insert(BookSide::Buy, 1, id(2), i64::MAX);
        assert_eq!(book.top().bid_quantity, i64::MAX);
        let matches = book.execute(BookSide::Sell, None, i64::MAX);
        assert_eq!(
            matches,
            vec![Match {
                maker: id(1),
                price: 1,
                quantity: i64::MAX
            }]
        );
        assert_eq!(book.top().bid_quantity, i64::MAX);
    }

    #[test]
    fn side_converts_from_proto_ints() {
        assert_eq!(BookSide::from_proto(1), Some(BookSide::Buy));
        assert_eq!(BookSide::from_proto(2), Some(BookSide::Sell));
        assert_eq!(BookSide::from_proto(0), None);
        assert_eq!(BookSide::from_proto(99), None);
        assert_eq!(BookSide::from_proto(i32::MIN), None);
        assert_eq!(BookSide::Sell.as_proto(), Side::Sell);
    }
}
