//! The tokio drivers: one reader task and one writer task per connection, around the sans-IO
//! [`crate::protocol::Connection`].
//!
//! Callers encode frames straight into the connection's [`write_queue`] under its lock; the
//! writer takes everything queued in one swap and writes it with one vectored write, so calls
//! batch under load and a lone call waits for nothing. The reader decodes frames from a pooled
//! buffer, feeds them to the state machine and hands outcomes to waiting calls.

mod calls;
#[cfg(not(loom))]
mod chunk_window;
mod config;
#[cfg(not(loom))]
mod connection;
#[cfg(not(loom))]
mod identity;
#[cfg(not(loom))]
mod interleave;
mod lane;
#[cfg(not(loom))]
mod linger;
#[cfg(not(loom))]
mod poller;
#[cfg(not(loom))]
mod priority;
#[cfg(not(loom))]
mod read_buffer;
#[cfg(not(loom))]
mod reader;
mod slot_waiters;
mod write_queue;
#[cfg(not(loom))]
mod writer;

#[cfg(not(loom))]
pub(crate) use calls::{Outcome, Received};
pub use config::{DEFAULT_WRITE_QUEUE_CAP, DEFAULT_WRITE_STALL_TIMEOUT, DriverConfig};
#[cfg(not(loom))]
pub(crate) use connection::{AcceptedCall, Dispatch, Protocol, Shared, StateGuard, spawn_connection, spawn_connection_at};
#[cfg(not(loom))]
pub(crate) use identity::Identity;
pub(crate) use lane::Lane;
#[cfg(not(loom))]
pub(crate) use poller::Polled;
#[cfg(not(loom))]
pub(crate) use write_queue::Flush;
