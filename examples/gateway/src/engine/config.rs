//! The engine's configuration: the tradable symbols and the pre-trade limits.
//!
//! Both come from the gateway's TOML config; [`SymbolSpec::validate`] and [`Limits::validate`] say
//! what a config must satisfy to be useful. The engine itself never panics on a bad config: a
//! `tick_size` ≤ 0 counts as 1, and a zero `burst` or `max_id_len` simply refuses every order.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Default price band: 10 % either side of the reference, wide enough for a demo's random walk.
pub const DEFAULT_PRICE_BAND_PERCENT: u32 = 10;
/// Default largest order: 100 000 units, far above what a demo client sends by hand.
pub const DEFAULT_MAX_ORDER_QUANTITY: i64 = 100_000;
/// Default largest notional per order: 10^10 price units (100 M at a price in cents).
pub const DEFAULT_MAX_NOTIONAL: i64 = 10_000_000_000;
/// Default open orders per account: enough for a market maker quoting a few symbols in depth.
pub const DEFAULT_MAX_OPEN_ORDERS: u32 = 1_000;
/// Default position limit per account and symbol: ten maximal orders.
pub const DEFAULT_POSITION_LIMIT: i64 = 1_000_000;
/// Default credit per account, the most aggregate open notional (price × open quantity over its
/// resting orders, plus the order checked): ten orders of the maximal notional.
pub const DEFAULT_CREDIT_LIMIT: i64 = 100_000_000_000;
/// Default order rate per account: far above a person, low enough to stop a runaway algorithm.
pub const DEFAULT_ORDERS_PER_SECOND: u32 = 5_000;
/// Default throttle bucket: one fifth of a second's rate may arrive at once.
pub const DEFAULT_BURST: u32 = 1_000;
/// Default runaway limit: an account sending more than this many commands (accepted or not)
/// within one [`DEFAULT_RUNAWAY_WINDOW_MS`] window is halted (its kill switch engaged): ten
/// times the throttle's rate, so only a client looping out of control reaches it.
pub const DEFAULT_RUNAWAY_MESSAGES: u32 = 50_000;
/// Default runaway window: one second.
pub const DEFAULT_RUNAWAY_WINDOW_MS: u32 = 1_000;
/// Default longest account, cl_ord_id or symbol: 64 bytes, like most venues' ClOrdID fields.
pub const DEFAULT_MAX_ID_LEN: usize = 64;

/// One tradable symbol.
///
/// ```
/// use gateway::engine::SymbolSpec;
///
/// let acme = SymbolSpec { name: "ACME".into(), tick_size: 5, reference_price: 10_000 };
/// assert!(acme.validate().is_ok());
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymbolSpec {
    /// The name orders carry, e.g. `"ACME"`.
    pub name: String,
    /// The price step: a limit price must be a positive multiple of it. Must be positive.
    pub tick_size: i64,
    /// The centre of the price band until the symbol's first trade (then the last trade price is). Must be positive.
    pub reference_price: i64,
}

/// Pre-trade limits, the same for every account.
///
/// Every field has a default (`DEFAULT_*`), so a config may name only the ones it changes.
///
/// ```
/// use gateway::engine::Limits;
///
/// let limits = Limits { max_open_orders: 10, ..Limits::default() };
/// assert!(limits.validate().is_ok());
/// ```
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A limit price must satisfy `|price - reference| <= reference * band / 100` (rounded down).
    pub price_band_percent: u32,
    /// The largest quantity of one order (the new total quantity for a replace).
    pub max_order_quantity: i64,
    /// The largest `price * quantity` of one order; market orders use the reference price.
    pub max_notional: i64,
    /// The account's credit: the most aggregate open notional it may have, the sum of
    /// `price × open quantity` over its resting orders plus the order checked (its whole
    /// notional; a replace's increase), so many small orders cannot add up past it.
    pub credit_limit: i64,
    /// The most open (resting) orders one account may have; only orders that may rest (limit, DAY) count against it.
    pub max_open_orders: u32,
    /// The largest position an account may reach on one symbol, in the order's direction, if all
    /// its open orders on that side filled along with this one.
    pub position_limit: i64,
    /// Throttle refill rate per account, in orders per second (new orders and replaces count, cancels do not).
    pub orders_per_second: u32,
    /// Throttle bucket size: how many orders an account may send at once after a quiet spell.
    pub burst: u32,
    /// The longest account, cl_ord_id or symbol accepted, in bytes.
    pub max_id_len: usize,
    /// More commands than this from one account (new orders, cancels, replaces; accepted or
    /// rejected) within one `runaway_window_ms` window halt the account: the gateway engages its
    /// kill switch (journaled), logs it and counts it in `gateway_runaway_halts_total`. 0: never.
    pub runaway_messages: u32,
    /// The runaway window, in milliseconds.
    pub runaway_window_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            price_band_percent: DEFAULT_PRICE_BAND_PERCENT,
            max_order_quantity: DEFAULT_MAX_ORDER_QUANTITY,
            max_notional: DEFAULT_MAX_NOTIONAL,
            max_open_orders: DEFAULT_MAX_OPEN_ORDERS,
            credit_limit: DEFAULT_CREDIT_LIMIT,
            position_limit: DEFAULT_POSITION_LIMIT,
            orders_per_second: DEFAULT_ORDERS_PER_SECOND,
            burst: DEFAULT_BURST,
            max_id_len: DEFAULT_MAX_ID_LEN,
            runaway_messages: DEFAULT_RUNAWAY_MESSAGES,
            runaway_window_ms: DEFAULT_RUNAWAY_WINDOW_MS,
        }
    }
}

/// A config the engine would run with but that would refuse every order (or a symbol's orders).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A symbol's tick size is zero or negative; make it the smallest price step, at least 1.
    #[error("symbol {symbol:?}: tick_size must be positive, got {value}")]
    TickSize {
        /// The symbol's name.
        symbol: String,
        /// The configured tick size.
        value: i64,
    },
    /// A symbol's reference price is zero or negative; set it near where the symbol trades.
    #[error("symbol {symbol:?}: reference_price must be positive, got {value}")]
    ReferencePrice {
        /// The symbol's name.
        symbol: String,
        /// The configured reference price.
        value: i64,
    },
    /// A symbol's name is empty or longer than `max_id_len`; no order could name it.
    #[error("symbol {symbol:?}: the name must be 1 to max_id_len ({max_id_len}) bytes long")]
    SymbolName {
        /// The symbol's name.
        symbol: String,
        /// The configured `max_id_len`.
        max_id_len: usize,
    },
    /// Two symbols have the same name; remove one.
    #[error("symbol {0:?} is configured twice")]
    DuplicateSymbol(String),
    /// A limit that must be positive is not; every order would be refused. Raise it.
    #[error("limit {name} must be positive, got {value}")]
    NotPositive {
        /// The limit's field name.
        name: &'static str,
        /// The configured value.
        value: i64,
    },
}

impl SymbolSpec {
    /// Checks that the tick size and reference price are positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tick_size <= 0 {
            return Err(ConfigError::TickSize {
                symbol: self.name.clone(),
                value: self.tick_size,
            });
        }
        if self.reference_price <= 0 {
            return Err(ConfigError::ReferencePrice {
                symbol: self.name.clone(),
                value: self.reference_price,
            });
        }
        Ok(())
    }
}

impl Limits {
    /// Checks that no limit refuses every order: quantities, notional, burst and id length must be positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("max_order_quantity", self.max_order_quantity),
            ("max_notional", self.max_notional),
            ("credit_limit", self.credit_limit),
            ("position_limit", self.position_limit),
            ("burst", i64::from(self.burst)),
            ("max_id_len", i64::try_from(self.max_id_len).unwrap_or(i64::MAX)),
        ];
        for (name, value) in positive {
            if value <= 0 {
                return Err(ConfigError::NotPositive { name, value });
            }
        }
        Ok(())
    }
}

/// Checks a whole config: every symbol, the limits, unique symbol names that fit `max_id_len`.
pub fn validate_config(symbols: &[SymbolSpec], limits: &Limits) -> Result<(), ConfigError> {
    limits.validate()?;
    let mut seen = HashSet::new();
    for symbol in symbols {
        symbol.validate()?;
        if symbol.name.is_empty() || symbol.name.len() > limits.max_id_len {
            return Err(ConfigError::SymbolName {
                symbol: symbol.name.clone(),
                max_id_len: limits.max_id_len,
            });
        }
        if !seen.insert(symbol.name.as_str()) {
            return Err(ConfigError::DuplicateSymbol(symbol.name.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> SymbolSpec {
        SymbolSpec {
            name: "ACME".into(),
            tick_size: 5,
            reference_price: 10_000,
        }
    }

    #[test]
    fn default_limits_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
        assert_eq!(validate_config(&[acme()], &Limits::default()), Ok(()));
    }

    #[test]
    fn validate_rejects_non_positive_tick_and_reference() {
        let tick = SymbolSpec { tick_size: 0, ..acme() };
        assert!(matches!(tick.validate(), Err(ConfigError::TickSize { value: 0, .. })));
        let reference = SymbolSpec {
            reference_price: -1,
            ..acme()
        };
        assert!(matches!(reference.validate(), Err(ConfigError::ReferencePrice { value: -1, .. })));
    }

    #[test]
    fn validate_rejects_zero_burst_and_duplicate_symbols() {
        let limits = Limits {
            burst: 0,
            ..Limits::default()
        };
        assert_eq!(limits.validate(), Err(ConfigError::NotPositive { name: "burst", value: 0 }));
        assert_eq!(
            validate_config(&[acme(), acme()], &Limits::default()),
            Err(ConfigError::DuplicateSymbol("ACME".into()))
        );
        let long = SymbolSpec {
            name: "X".repeat(65),
            ..acme()
        };
        assert!(matches!(
            validate_config(&[long], &Limits::default()),
            Err(ConfigError::SymbolName { .. })
        ));
    }

    #[test]
    fn limits_deserialize_with_defaults_for_missing_fields() {
        // serde's derive is exercised through the `Deserialize` impl; a TOML loader lives elsewhere.
        let limits: Limits = serde::de::Deserialize::deserialize(serde::de::value::MapDeserializer::<_, serde::de::value::Error>::new(
            [("max_open_orders", 7u32)].into_iter(),
        ))
        .unwrap();
        assert_eq!(
            limits,
            Limits {
                max_open_orders: 7,
                ..Limits::default()
            }
        );
    }
}
