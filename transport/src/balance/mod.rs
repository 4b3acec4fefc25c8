//! Balanced channels: one client over many replicas of a service, with discovery, retries and
//! hedging. See `docs/scale-out.md`.
//!
//! A [`BalancedChannel`] keeps an [`Endpoint set`](BalancedChannel::endpoints) from a
//! [`Resolver`] (a fixed list, [`DnsResolver`], or your own) and sends each call to the less
//! loaded of two endpoints drawn at random (power of two choices) on a load signal of calls in
//! flight times a decaying latency average, raised by the server's own report
//! ([`LOAD_METADATA_KEY`]). Endpoints connect lazily, back off and are ejected after repeated
//! failures ([`EjectionPolicy`]), then readmitted by a half-open probe; a GoAway drains an
//! endpoint without failing calls. Calls are sent again only when safe: never started (free),
//! or idempotent and failed with UNAVAILABLE (within a [`RetryBudget`]); idempotent calls may
//! be hedged ([`HedgePolicy`]). Generated clients take a `BalancedChannel` unchanged.
//!
//! ```no_run
//! use volley::balance::BalancedChannel;
//! use volley::{CallOptions, Channel, Method, Request, Server, Status};
//!
//! const SAY: Method<String, String> = Method::new("/echo.Echo/Say");
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! for address in ["127.0.0.1:7001", "127.0.0.2:7001"] {
//!     Server::builder()
//!         .unary(SAY, |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
//!         .build()?
//!         .serve(address)
//!         .await?;
//! }
//! let channel = Channel::balance_list(["127.0.0.1:7001", "127.0.0.2:7001"])?;
//! let reply = channel.unary(SAY, &"hi".to_owned(), CallOptions::new().idempotent(true)).await?;
//! assert_eq!(reply, "hi");
//! # Ok(()) }
//! ```

mod attempt;
mod budget;
mod builder;
mod caller;
mod channel;
mod endpoint;
mod hedge;
mod lifecycle;
mod load;
mod maintain;
mod picker;
mod resolver;
mod set;
mod stats;

pub use budget::{DEFAULT_MIN_RETRIES_PER_SECOND, DEFAULT_RETRY_RATIO, RetryBudget};
pub use builder::BalancedChannelBuilder;
pub use channel::{BalancedChannel, MAX_RETRIES};
pub use hedge::{DEFAULT_HEDGE_PERCENTILE, DEFAULT_MIN_HEDGE_DELAY, HedgePolicy};
pub use lifecycle::{DEFAULT_BASE_EJECTION, DEFAULT_EJECT_AFTER, DEFAULT_MAX_EJECTION, EjectionPolicy, Phase};
pub use load::{DEFAULT_DECAY, LOAD_METADATA_KEY};
pub use maintain::DEFAULT_RESOLVE_INTERVAL;
pub use resolver::{DnsResolver, Resolution, ResolveError, Resolver, StaticResolver};
pub use stats::EndpointSnapshot;
