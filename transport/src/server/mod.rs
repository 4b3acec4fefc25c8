//! The server side: a method table ([`ServerBuilder`]), handlers, and serving.

mod admission;
mod builder;
mod call;
mod connection_info;
mod handler;
mod load;
mod router;
mod serve;
mod streaming;
mod wrap;

pub use admission::{
    AdmissionConfig, AdmissionStats, DEFAULT_MAX_CONNECTIONS_PER_PEER, DEFAULT_MAX_HANDSHAKES_PER_PEER, PeerLimits, Refusal,
};
pub use builder::{DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Server, ServerBuilder};
pub use call::{CallContext, Request, ServerCall};
pub use connection_info::ConnectionInfo;
pub(crate) use handler::spawn_in_span;
pub use handler::{Handler, InlineUnaryHandler, UnaryHandler};
pub(crate) use load::LoadTicket;
pub use load::{LoadReports, PREENCODED_REPORTS};
pub use router::{Routes, Service};
pub use serve::ServerHandle;
pub use streaming::{BidiStreamingHandler, ClientStreamingHandler, ServerStreamingHandler};
