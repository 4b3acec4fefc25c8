//! Runtime limits of a connection driver.

use std::time::Duration;

use crate::buf::BufferPool;
use crate::net::SocketConfig;
use crate::protocol::ConnectionConfig;

/// Bytes the write queue may hold before callers wait (8 MiB). A single message larger than this
/// is still accepted when the queue is below the cap, so memory stays under cap + one message.
pub const DEFAULT_WRITE_QUEUE_CAP: usize = 8 * 1024 * 1024;

/// How long the socket may refuse every byte queued for it (60 s) before the connection is closed
/// as stalled: a peer that stops reading would otherwise hold its connection, and a slot of the
/// server's connection cap, for ever. Long enough for any consumer that is merely slow (each
/// byte it reads resets the clock); the same default as nginx's `send_timeout`.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything that configures one connection's drivers.
#[derive(Clone, Debug, Default)]
pub struct DriverConfig {
    /// Protocol settings, limits and timeouts.
    pub connection: ConnectionConfig,
    /// TCP socket options.
    pub socket: SocketConfig,
    /// See [`DEFAULT_WRITE_QUEUE_CAP`]; 0 means the default.
    pub write_queue_cap: usize,
    /// See [`DEFAULT_WRITE_STALL_TIMEOUT`]; zero means the default.
    pub write_stall_timeout: Duration,
    /// Where read and write buffers come from.
    pub pool: BufferPool,
    /// The busy-poll receive mode (a poller thread instead of the reader task); `None`, the
    /// default, keeps the reader task. See [`crate::busy_poll`].
    pub busy_poll: Option<crate::busy_poll::BusyPoll>,
    /// Where the connection's counters and calls are recorded (feature `metrics`); set it with
    /// `ServerBuilder::metrics` or `ClientBuilder::metrics`.
    #[cfg(all(feature = "metrics", not(loom)))]
    pub metrics: Option<crate::metrics::Metrics>,
    /// QUIC options (feature `quic`): the stream mapping and 0-RTT; set them with
    /// `ServerBuilder::quic` or `ClientBuilder::quic`.
    #[cfg(all(feature = "quic", not(loom)))]
    pub quic: crate::quic::QuicOptions,
}

impl DriverConfig {
    pub(crate) fn write_queue_cap(&self) -> usize {
        if self.write_queue_cap == 0 {
            DEFAULT_WRITE_QUEUE_CAP
        } else {
            self.write_queue_cap
        }
    }

    pub(crate) fn write_stall_timeout(&self) -> Duration {
        if self.write_stall_timeout.is_zero() {
            DEFAULT_WRITE_STALL_TIMEOUT
        } else {
            self.write_stall_timeout
        }
    }
}
