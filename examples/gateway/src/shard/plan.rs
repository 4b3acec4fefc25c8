//! The shard plan: which instance trades which symbol, and what each instance's configuration is.
//!
//! Symbols go to shards round-robin in the order the configuration lists them (the first symbol
//! to shard 0, the second to shard 1, ...), so every instance, router and load generator that
//! reads the same configuration and the same shard count agrees on the map without talking to
//! anyone. Account-wide limits (the throttle, the credit limit, the open-order count and the
//! runaway halt span every symbol of an account) are divided evenly between the shards, rounded
//! down, so the shards together never allow an account more than one instance would.

use std::collections::HashMap;

use crate::config::Config;
use crate::engine::{Limits, SymbolSpec};

/// Most shards a plan may have (64): far more instances than the demo's symbols, and a bound
/// on the connections a router opens per client.
pub const MAX_SHARDS: u32 = 64;

/// A shard's index, from 0 to the shard count minus one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u32);

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {}", self.0)
    }
}

/// A plan that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// The shard count is 0 or above [`MAX_SHARDS`]; use 1 to [`MAX_SHARDS`] shards.
    #[error("{shards} shards: use 1 to {MAX_SHARDS}")]
    Count {
        /// The count asked for.
        shards: u32,
    },
    /// Fewer symbols than shards: some shard would trade nothing. Use fewer shards.
    #[error("{symbols} symbols cannot fill {shards} shards: every shard needs at least one symbol")]
    TooFewSymbols {
        /// Symbols configured.
        symbols: usize,
        /// Shards asked for.
        shards: u32,
    },
    /// The shard index is not below the shard count; shards are numbered from 0.
    #[error("{shard} does not exist in a plan of {shards} shards (they are numbered from 0)")]
    NoSuchShard {
        /// The shard asked for.
        shard: ShardId,
        /// The shard count.
        shards: u32,
    },
    /// An account-wide limit is too small to give every shard a share; raise it or use fewer shards.
    #[error("limits.{name} = {value} cannot be split between {shards} shards (each would get 0); raise it or use fewer shards")]
    LimitTooSmall {
        /// The limit's key in the config.
        name: &'static str,
        /// Its configured value.
        value: i64,
        /// The shard count.
        shards: u32,
    },
    /// A symbol no shard trades (the router was asked for a symbol the configuration does not list).
    #[error("no shard trades `{symbol}`")]
    UnknownSymbol {
        /// The symbol.
        symbol: String,
    },
}

/// The symbol → shard map shared by every instance, router and load generator.
///
/// ```
/// use gateway::config::Config;
/// use gateway::shard::{ShardId, ShardPlan};
///
/// let config = Config::default(); // AAPL, MSFT, NVDA, TSLA
/// let plan = ShardPlan::new(&config.symbols, 3)?;
/// assert_eq!(plan.shard_of("MSFT")?, ShardId(1));
/// assert_eq!(plan.shard_of("TSLA")?, ShardId(0));
/// let shard_one = plan.shard_config(&config, ShardId(1))?;
/// assert_eq!(shard_one.symbols.len(), 1);
/// assert_eq!(shard_one.limits.burst, config.limits.burst / 3);
/// # Ok::<_, gateway::shard::ShardError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    shards: u32,
    /// Each symbol's shard.
    by_symbol: HashMap<String, ShardId>,
    /// Each shard's symbols, in configuration order.
    symbols: Vec<Vec<String>>,
}

impl ShardPlan {
    /// The plan for `symbols` over `shards` instances.
    pub fn new(symbols: &[SymbolSpec], shards: u32) -> Result<Self, ShardError> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(ShardError::Count { shards });
        }
        if symbols.len() < shards as usize {
            return Err(ShardError::TooFewSymbols {
                symbols: symbols.len(),
                shards,
            });
        }
        let mut by_symbol = HashMap::with_capacity(symbols.len());
        let mut per_shard = vec![Vec::new(); shards as usize];
        for (index, symbol) in symbols.iter().enumerate() {
            let shard = index % shards as usize;
            by_symbol.insert(symbol.name.clone(), ShardId(shard as u32));
            per_shard[shard].push(symbol.name.clone());
        }
        Ok(Self {
            shards,
            by_symbol,
            symbols: per_shard,
        })
    }

    /// How many shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// Every shard, in order.
    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> + use<> {
        (0..self.shards).map(ShardId)
    }

    /// The shard that trades `symbol`.
    pub fn shard_of(&self, symbol: &str) -> Result<ShardId, ShardError> {
        self.by_symbol
            .get(symbol)
            .copied()
            .ok_or_else(|| ShardError::UnknownSymbol { symbol: symbol.to_owned() })
    }

    /// The symbols `shard` trades, in configuration order.
    pub fn symbols_of(&self, shard: ShardId) -> Result<&[String], ShardError> {
        self.symbols
            .get(shard.0 as usize)
            .map(Vec::as_slice)
            .ok_or(ShardError::NoSuchShard {
                shard,
                shards: self.shards,
            })
    }

    /// The configuration instance `shard` runs with: `base` with only its symbols and its share
    /// of every account-wide limit ([`split_account_limits`]). Listen address, metrics address
    /// and journal stay as in `base`: each instance is given its own by its flags or its pod.
    pub fn shard_config(&self, base: &Config, shard: ShardId) -> Result<Config, ShardError> {
        let names = self.symbols_of(shard)?;
        let symbols = base.symbols.iter().filter(|symbol| names.contains(&symbol.name)).cloned().collect();
        Ok(Config {
            symbols,
            limits: split_account_limits(&base.limits, self.shards)?,
            ..base.clone()
        })
    }
}

/// `limits` with every account-wide limit divided between `shards` instances (rounded down):
/// the throttle's rate and burst, the credit limit, the open-order count and the runaway halt
/// (0, never halt, stays 0). Per-order and per-symbol limits (price band, order quantity and
/// notional, position per symbol, id length) are enforced whole where the symbol trades.
pub fn split_account_limits(limits: &Limits, shards: u32) -> Result<Limits, ShardError> {
    if shards == 0 || shards > MAX_SHARDS {
        return Err(ShardError::Count { shards });
    }
    let share = |name: &'static str, value: i64| {
        let part = value / i64::from(shards);
        if part > 0 {
            Ok(part)
        } else {
            Err(ShardError::LimitTooSmall { name, value, shards })
        }
    };
    // The shares are at most the u32 originals, so converting back cannot fail.
    let share32 = |name, value: u32| share(name, i64::from(value)).map(|part| u32::try_from(part).unwrap_or(value));
    Ok(Limits {
        orders_per_second: share32("orders_per_second", limits.orders_per_second)?,
        burst: share32("burst", limits.burst)?,
        credit_limit: share("credit_limit", limits.credit_limit)?,
        max_open_orders: share32("max_open_orders", limits.max_open_orders)?,
        runaway_messages: match limits.runaway_messages {
            0 => 0,
            messages => share32("runaway_messages", messages)?,
        },
        ..limits.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(names: &[&str]) -> Vec<SymbolSpec> {
        names
            .iter()
            .map(|name| SymbolSpec {
                name: (*name).to_owned(),
                tick_size: 1,
                reference_price: 100,
            })
            .collect()
    }

    #[test]
    fn every_symbol_has_exactly_one_shard_assigned_round_robin() {
        let plan = ShardPlan::new(&symbols(&["A", "B", "C", "D", "E"]), 3).unwrap();
        let ids: Vec<u32> = ["A", "B", "C", "D", "E"].iter().map(|s| plan.shard_of(s).unwrap().0).collect();
        assert_eq!(ids, [0, 1, 2, 0, 1]);
        let total: usize = plan.shard_ids().map(|shard| plan.symbols_of(shard).unwrap().len()).sum();
        assert_eq!(total, 5);
        assert_eq!(plan.symbols_of(ShardId(0)).unwrap(), ["A", "D"]);
        assert_eq!(plan.shard_of("Z"), Err(ShardError::UnknownSymbol { symbol: "Z".into() }));
    }

    #[test]
    fn a_plan_refuses_zero_shards_too_many_shards_and_empty_shards() {
        assert_eq!(ShardPlan::new(&symbols(&["A"]), 0), Err(ShardError::Count { shards: 0 }));
        assert_eq!(
            ShardPlan::new(&symbols(&["A"]), MAX_SHARDS + 1),
            Err(ShardError::Count { shards: MAX_SHARDS + 1 })
        );
        assert_eq!(
            ShardPlan::new(&symbols(&["A", "B"]), 3),
            Err(ShardError::TooFewSymbols { symbols: 2, shards: 3 })
        );
        let plan = ShardPlan::new(&symbols(&["A", "B"]), 2).unwrap();
        assert!(matches!(
            plan.shard_config(&Config::default(), ShardId(2)),
            Err(ShardError::NoSuchShard { .. })
        ));
    }

    #[test]
    fn the_shares_of_account_limits_add_up_to_at_most_the_whole() {
        let whole = Limits {
            orders_per_second: 100,
            burst: 10,
            credit_limit: 1_000,
            max_open_orders: 7,
            runaway_messages: 50,
            ..Limits::default()
        };
        for shards in 1..=7 {
            let part = split_account_limits(&whole, shards).unwrap();
            assert!(part.orders_per_second * shards <= whole.orders_per_second);
            assert!(part.burst * shards <= whole.burst);
            assert!(part.credit_limit * i64::from(shards) <= whole.credit_limit);
            assert!(part.max_open_orders * shards <= whole.max_open_orders);
            assert!(part.runaway_messages * shards <= whole.runaway_messages);
            // Per-order and per-symbol limits stay whole.
            assert_eq!(part.position_limit, whole.position_limit);
            assert_eq!(part.max_notional, whole.max_notional);
        }
        assert_eq!(
            split_account_limits(&whole, 8),
            Err(ShardError::LimitTooSmall {
                name: "max_open_orders",
                value: 7,
                shards: 8
            })
        );
        let never_halt = Limits {
            runaway_messages: 0,
            ..whole
        };
        assert_eq!(split_account_limits(&never_halt, 3).unwrap().runaway_messages, 0);
    }

    #[test]
    fn a_shard_config_keeps_its_symbols_and_everything_else_of_the_base() {
        let base = Config::default();
        let plan = ShardPlan::new(&base.symbols, 3).unwrap();
        let zero = plan.shard_config(&base, ShardId(0)).unwrap();
        let names: Vec<&str> = zero.symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["AAPL", "TSLA"]);
        assert_eq!(zero.listen, base.listen);
        assert_eq!(zero.drain_timeout, base.drain_timeout);
        assert!(zero.validate().is_ok());
    }
}
