//! Memory that comes back after bursts: when a burst of connections has ended, a server drops
//! the pooled buffers the traffic after it no longer takes and asks the allocator to return
//! its free pages to the kernel.
//!
//! glibc's malloc keeps memory freed in the middle of its arenas resident: after a burst of a
//! thousand connections closes, the transport holds about 3 MiB, yet the process keeps
//! 12–14 MiB more that glibc has freed but not returned (docs/BENCHMARKS.md, "Memory after
//! bursts"). Nothing the transport frees can lower that; `malloc_trim` can. So a server watches
//! its connection count and its calls in flight ([`MemoryReturn`]): when either has fallen at
//! least [`DEFAULT_MIN_BURST`] connections (or [`DEFAULT_MIN_CALL_BURST`] calls) below its peak
//! and stayed there for [`DEFAULT_SETTLE`], it releases its pool's idle buffers and calls
//! [`return_free_memory`] on tokio's blocking pool. Steady traffic never triggers it; a burst
//! that ends triggers it once.
//!
//! ```
//! use std::time::Duration;
//! use volley::Server;
//! use volley::memory::MemoryReturn;
//!
//! let builder = Server::builder().memory_return(MemoryReturn {
//!     min_burst: 1_000,
//!     settle: Duration::from_secs(2),
//!     ..MemoryReturn::default()
//! });
//! # let _ = builder;
//! let never = Server::builder().memory_return(MemoryReturn::disabled());
//! # let _ = never;
//! ```

mod after_bursts;
mod allocator;
mod burst;

use std::time::Duration;

pub(crate) use after_bursts::AfterBursts;
pub use allocator::return_free_memory;

/// Connections that must have closed, from the peak, before the end of a burst returns memory
/// (256): fewer closing is ordinary churn, whose memory the next connections reuse.
pub const DEFAULT_MIN_BURST: usize = 256;

/// Calls in flight (over every connection) that must have ended, from the peak, before the end
/// of a burst of calls returns memory (1,024): about 1.5 MiB of call state at 1.5 KB a call.
/// The count is read every 250 ms, so a shorter burst may go unseen.
pub const DEFAULT_MIN_CALL_BURST: usize = 1_024;

/// How long the connection count must stay at least `min_burst` under its peak before memory
/// is returned (500 ms): the burst is over, not pausing, and a new one would reset the wait.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(500);

/// When a server returns memory after a burst of connections ends (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReturn {
    /// Off: the server never releases pooled buffers or calls the allocator.
    pub enabled: bool,
    /// See [`DEFAULT_MIN_BURST`].
    pub min_burst: usize,
    /// See [`DEFAULT_MIN_CALL_BURST`]. Calls are counted only while the server counts its load
    /// ([`LoadReports`](crate::server::LoadReports) other than `Never`, the default).
    pub min_call_burst: usize,
    /// See [`DEFAULT_SETTLE`].
    pub settle: Duration,
    /// Whether to call [`return_free_memory`] (glibc's `malloc_trim`) too, besides releasing
    /// the pool's idle buffers. Turn it off when another part of the program manages the
    /// allocator.
    pub trim_allocator: bool,
}

impl Default for MemoryReturn {
    fn default() -> Self {
        Self {
            enabled: true,
            min_burst: DEFAULT_MIN_BURST,
            min_call_burst: DEFAULT_MIN_CALL_BURST,
            settle: DEFAULT_SETTLE,
            trim_allocator: true,
        }
    }
}

impl MemoryReturn {
    /// Never return memory after bursts.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}
