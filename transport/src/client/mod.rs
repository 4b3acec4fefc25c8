//! The client side: [`Client`] over one connection, [`Channel`] that reconnects.

mod caller;
mod channel;
mod client;
mod connect;
mod options;

pub use caller::Caller;
pub use channel::{Backoff, Channel, ChannelBuilder};
pub use client::{Client, ClientBuilder};
pub use options::CallOptions;
