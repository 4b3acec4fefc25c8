//! Volley: a low-latency RPC transport for protobuf services over TCP and Unix sockets.
//!
//! A framed, pooled-buffer transport: a 16-byte header per frame ([`wire`]), a sans-IO protocol
//! core that enforces every rule and limit ([`protocol`]), and thin tokio drivers — one reader
//! and one writer task per connection — under [`Client`], [`Channel`] and [`Server`]. Volley
//! spawns tasks on the caller's tokio runtime and owns no runtime or thread.
//!
//! ```no_run
//! use bytes::Bytes;
//! use volley::{CallOptions, Channel, Method, Request, Server, Status};
//!
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Echo {
//!     #[prost(bytes = "bytes", tag = "1")]
//!     payload: Bytes,
//! }
//!
//! /// One constant for both sides: the compiler checks handler and call against its messages.
//! const SAY: Method<Echo, Echo> = Method::new("/echo.Echo/Say");
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .unary(SAY, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
//!     .build()?
//!     .serve("127.0.0.1:7000")
//!     .await?;
//! // A Channel reconnects when the server closes the connection (idle timeout, restart).
//! let channel = Channel::builder().connect("127.0.0.1:7000").await?;
//! let reply = channel.unary(SAY, &Echo { payload: Bytes::from_static(b"hi") }, CallOptions::default()).await?;
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Most services generate this code from `.proto` files with `volley-codegen` instead (see
//! `examples/hello`).
//!
//! With the `tls` feature, [`tls`] adds TLS 1.3 and mutual TLS over TCP (rustls), and handlers
//! see the peer's certificate identity; see `docs/security.md`.
//!
//! With the `metrics` feature, `metrics::Metrics` records calls, latencies and connections and
//! exposes them in the Prometheus text format; every call also has a debug-level `tracing` span
//! (`volley.call`). See `docs/observability.md`.
//!
//! Under `cfg(loom)` only the concurrency primitives and the pure layers are built, for the
//! model checks in `.ci/run`.

#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(loom))]
pub mod balance;
pub mod buf;
pub mod busy_poll;
#[cfg(not(loom))]
pub mod client;
#[cfg(not(loom))]
mod clock;
#[cfg(not(loom))]
#[doc(hidden)]
pub mod codegen;
pub mod driver;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
#[cfg(not(loom))]
pub mod interceptor;
#[cfg(not(loom))]
pub mod memory;
mod method;
#[cfg(all(feature = "metrics", not(loom)))]
pub mod metrics;
/// The metrics' per-thread shards alone, for their loom model.
#[cfg(loom)]
#[path = "metrics/shards.rs"]
mod metrics_shards;
pub mod net;
#[cfg(not(loom))]
mod observe;
pub mod protocol;
#[cfg(all(feature = "quic", not(loom)))]
pub mod quic;
#[cfg(not(loom))]
mod response;
#[cfg(not(loom))]
pub mod server;
pub mod stats;
pub mod status;
#[cfg(not(loom))]
pub mod streaming;
mod sync;
#[cfg(all(feature = "tls", not(loom)))]
pub mod tls;

/// The examples of `docs/security.md`, compiled as doctests so the guide cannot drift.
#[cfg(all(doctest, feature = "tls"))]
#[doc = include_str!("../../docs/security.md")]
pub struct SecurityGuide;
/// The example of `docs/latency.md`, compiled as a doctest so the guide cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../docs/latency.md")]
pub struct LatencyGuide;
#[cfg(all(feature = "tower", not(loom)))]
pub mod tower;
pub mod wire;

#[cfg(not(loom))]
pub use client::{CallOptions, Caller, Channel, Client};
pub use error::Error;
pub use method::{CallTarget, Method, MethodName};
#[cfg(not(loom))]
pub use response::{IntoResponse, Response};
#[cfg(not(loom))]
pub use server::{Request, Server, ServerHandle};
pub use status::{Code, Status};
#[cfg(not(loom))]
pub use streaming::{ClientStreamingCall, StreamSender, Streaming};
pub use wire::{Metadata, MethodId};
