//! The trading order gateway: an example of a real service on Volley.
//!
//! Orders come in through the generated `OrderEntry` service (unary calls or a bidirectional
//! stream), pass the pre-trade [`engine`] risk checks, are appended to the [`journal`] and
//! matched in a price-time priority book per symbol; execution reports and market data stream
//! back to subscribers. On start the journal is replayed to rebuild every book and order.

pub mod app;
pub mod config;
pub mod engine;
pub mod fanout;
pub mod gateway;
pub mod history;
pub mod journal;
pub mod load;
pub mod metrics;
pub mod proto;
pub mod service;
pub mod shard;
