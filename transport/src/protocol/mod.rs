//! The protocol core: a sans-IO state machine for one connection.
//!
//! Like quinn-proto, [`Connection`] does no IO, reads no clock and spawns nothing: drivers feed
//! it bytes-turned-frames, commands and the current time, and carry out what it yields. That
//! keeps every protocol rule testable without sockets (see `transport/tests/protocol.rs`).

mod budget;
mod calls;
mod chunks;
mod config;
mod connection;
mod error;
mod event;
mod flow;

pub use budget::RateBudget;
#[cfg(feature = "quic")]
pub(crate) use calls::CallIdHasher;
#[cfg(loom)]
pub(crate) use calls::CallState;
pub(crate) use calls::CallTable;
pub use calls::{CallRecord, Kept};
pub use chunks::Reassembly;
pub use config::{
    ConnectionConfig, DEFAULT_CANCEL_BUDGET, DEFAULT_ERROR_BUDGET, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_MAX_PING_STRIKES, DEFAULT_PARTIAL_FRAME_TIMEOUT,
    DEFAULT_SMALL_FRAME_BUDGET, FREE_CREDITS_PER_MESSAGE, MAX_FLOW_VIOLATIONS, METADATA_ABUSE_FACTOR, SMALL_FRAME_PAYLOAD,
};
pub(crate) use connection::{Answer, encode_reserved_message, frame_too_large};
pub use connection::{Connection, ReadProgress, Role};
pub use error::{ConnectionError, ConnectionErrorReason};
pub use event::Event;
#[cfg(loom)]
pub(crate) use flow::{ConnectionWindows, credit_call};
