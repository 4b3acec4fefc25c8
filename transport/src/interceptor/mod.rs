//! Interceptors: async hooks around every call, on the server and on the client.
//!
//! An interceptor sees the call head before anything else happens (the method, the metadata,
//! the deadline), may change it or refuse the call with a [`Status`](crate::Status), and
//! observes how the call ended ([`CallOutcome`]: the code and the time taken).
//!
//! - On a server, a [`ServerInterceptor`] runs before the handler, on the handler's task:
//!   install it with [`ServerBuilder::interceptor`](crate::server::ServerBuilder::interceptor).
//!   A refusal answers the call at once; the handler never runs.
//! - On a client, a [`ClientInterceptor`] runs before the request is written: install it with
//!   [`ChannelBuilder::interceptor`](crate::client::ChannelBuilder::interceptor). A refusal
//!   fails the call before anything reaches the wire.
//!
//! Ready ones: [`BearerAuth`] and [`BearerToken`] (token authentication), [`RateLimit`]
//! (token buckets per peer and per method). A plain closure over the call head is an
//! interceptor too, like tonic's `fn(Request<()>) -> Result<Request<()>, Status>`.
//!
//! ```
//! use volley::interceptor::InboundCall;
//! use volley::{Request, Server, Status};
//!
//! let server = Server::builder()
//!     .interceptor(|call: &mut InboundCall| match call.metadata().get("x-tenant") {
//!         Some(_) => Ok(()),
//!         None => Err(Status::invalid_argument("set the x-tenant metadata")),
//!     })
//!     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
//!     .build()?;
//! # let _ = server;
//! # Ok::<(), volley::Error>(())
//! ```
//!
//! With none installed nothing of this runs: a server keeps the handlers as registered and a
//! channel's call checks one empty list. See `docs/middleware.md` for costs and for tower.

mod auth;
mod client;
mod rate_limit;
mod server;

use std::time::Duration;

pub use auth::{AUTHORIZATION, BearerAuth, BearerToken, PlaintextCredentialsError};
pub use client::{ClientInterceptor, OutboundCall, Target};
pub(crate) use client::{
    ClientInterceptors, intercept_bidi_streaming, intercept_client_streaming, intercept_server_streaming, intercept_unary,
};
pub use rate_limit::{DEFAULT_MAX_TRACKED_PEERS, Quota, RateLimit, RateLimitBuilder, TokenBucket};
pub(crate) use server::intercepted;
pub use server::{InboundCall, ServerInterceptor};

use crate::status::Code;

/// How a call ended, as an interceptor observes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    /// The status code: `Ok`, the handler's or the transport's error, or the refusal of an
    /// interceptor.
    pub code: Code,
    /// From the first interceptor seeing the call to its end.
    pub elapsed: Duration,
}
