//! The gateway across instances: each shard is a whole gateway (its own process, journal and
//! metrics endpoint) trading a fixed set of symbols; clients route by symbol.
//!
//! - [`ShardPlan`] (`plan.rs`): the symbol → shard map, derived from the configuration's symbol
//!   order and the shard count, and each shard's configuration (its symbols, its share of every
//!   account-wide limit).
//! - [`ShardRouter`] (`router.rs`): the client-side router, one channel per shard; the kill
//!   switch goes to every shard.
//! - [`run_sharded`] (`load.rs`): the load generator over every shard at once.
//! - [`ShardProcess`] (`process.rs`): a shard as a child process, for the demo and the tests.
//! - [`run_demo`] (`demo.rs`): `volley-gateway demo --shards N`.
//! - [`termination_grace_period`] (`deploy.rs`): what a deployment must allow for a shutdown.
//!
//! Why a client-side router and not a routing service: an order's path stays one hop (a routing
//! service would add a loopback or network round trip to every command, and be one more process
//! to keep up), and every party derives the same map from the configuration it already reads.
//!
//! Account-wide limits stay correct without any shared service: the throttle, the credit limit,
//! the open-order count and the runaway halt are divided evenly between the shards
//! ([`split_account_limits`]), so the shards together never allow more than one instance would;
//! no order waits for another shard. The price is headroom: an account trading on one shard
//! only gets that shard's share. The kill switch is fanned out by the router to every shard
//! ([`ShardRouter::set_kill_switch`]) and confirmed only when every shard has it durable.
//! docs/scale-out.md ("The sharded gateway") has the details and the measured costs.

mod demo;
mod deploy;
mod load;
mod plan;
mod process;
mod router;

pub use demo::{DemoError, run_demo};
pub use deploy::{SHUTDOWN_FLUSH_MARGIN, termination_grace_period};
pub use load::{ShardedLoadError, ShardedLoadReport, run_sharded};
pub use plan::{MAX_SHARDS, ShardError, ShardId, ShardPlan, split_account_limits};
pub use process::{ProcessError, SHARD_START_TIMEOUT, ShardProcess};
pub use router::{RouteError, ShardRouter};
