//! Runtime limits of a connection driver.

use crate::buf::BufferPool;
use crate::net::SocketConfig;
use crate::protocol::ConnectionConfig;

/// Bytes the write queue may hold before callers wait (8 MiB). A single message larger than this
/// is still accepted when the queue is below the cap, so memory stays under cap + one message.
pub const DEFAULT_WRITE_QUEUE_CAP: usize = 8 * 1024 * 1024;

/// Everything that configures one connection's drivers.
#[derive(Clone, Debug, Default)]
pub struct DriverConfig {
    /// Protocol settings, limits and timeouts.
    pub connection: ConnectionConfig,
    /// TCP socket options.
    pub socket: SocketConfig,
    /// See [`DEFAULT_WRITE_QUEUE_CAP`]; 0 means the default.
    pub write_queue_cap: usize,
    /// Where read and write buffers come from.
    pub pool: BufferPool,
    /// Where the connection's counters and calls are recorded (feature `metrics`); set it with
    /// `ServerBuilder::metrics` or `ClientBuilder::metrics`.
    #[cfg(all(feature = "metrics", not(loom)))]
    pub metrics: Option<crate::metrics::Metrics>,
}

impl DriverConfig {
    pub(crate) fn write_queue_cap(&self) -> usize {
        if self.write_queue_cap == 0 {
            DEFAULT_WRITE_QUEUE_CAP
        } else {
            self.write_queue_cap
        }
    }
}
