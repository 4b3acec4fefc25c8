//! The client side: [`Client`] over one connection, [`Channel`] that reconnects.

mod builder;
mod busy_poll;
mod caller;
mod channel;
mod connect;
mod connection;
mod options;
#[cfg(all(feature = "quic", not(loom)))]
mod quic;
mod streaming;

pub use builder::ClientBuilder;
pub use caller::Caller;
pub use channel::{Backoff, Channel, ChannelBuilder, MAX_TRANSPARENT_RETRIES};
pub use connection::Client;
pub(crate) use connection::{decode_response, decode_response_parts};
pub use options::CallOptions;
