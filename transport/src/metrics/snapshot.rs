//! Every metric at one moment, as [`super::Metrics::snapshot`] returns it: counts by method and
//! status code, histograms with quantiles, connection totals.

use super::registry::CallCounters;
use super::shards::Count;
use super::{ConnectionTotals, HistogramSnapshot};
use crate::stats::AdmissionStats;
use crate::status::Code;

/// Every metric at one moment: see [`Metrics::snapshot`].
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Per method, `other` (calls to unregistered methods) first.
    pub methods: Vec<MethodSnapshot>,
    /// Client connections.
    pub client_connections: ConnectionTotals,
    /// Server connections.
    pub server_connections: ConnectionTotals,
    /// Connections servers refused at accept, by reason, and idle ones they closed to make room.
    pub admission: AdmissionStats,
    /// Balanced channels built with this `Metrics`, with their endpoints' counters.
    pub balanced_channels: Vec<super::BalancedChannelSnapshot>,
}

impl MetricsSnapshot {
    /// The method with full name `name`, or `"other"` for unregistered methods.
    pub fn method(&self, name: &str) -> Option<&MethodSnapshot> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// One method's metrics.
#[derive(Clone, Debug, Default)]
pub struct MethodSnapshot {
    /// The full name (`/package.Service/Method`), or `other`.
    pub name: String,
    /// Calls served here.
    pub server: ServerCalls,
    /// Calls made from here.
    pub client: ClientCalls,
}

/// Calls of one method on the server side.
#[derive(Clone, Debug, Default)]
pub struct ServerCalls {
    /// Whether a server registered the method. A side's series are exposed once the method is
    /// registered there or has calls there.
    pub registered: bool,
    /// Calls counted.
    pub calls: CallCounts,
    /// From reading the request frame to queueing the call's final frame, one value per
    /// finished call.
    pub handling: HistogramSnapshot,
    /// From the client's send timestamp (in the call head) to the server reading the request
    /// frame: the client's write queue, the network and the server's socket buffer. One value per
    /// call with a timestamp; across hosts it includes the clocks' offset (negative values count
    /// as zero).
    pub queueing: HistogramSnapshot,
}

/// Calls of one method on the client side.
#[derive(Clone, Debug, Default)]
pub struct ClientCalls {
    /// Whether the method was registered with [`Metrics::register_client_method`].
    pub registered: bool,
    /// Calls counted.
    pub calls: CallCounts,
    /// From starting the call to its outcome, one value per finished call.
    pub round_trip: HistogramSnapshot,
}

/// Call counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls started.
    pub started: u64,
    /// Calls finished, by status code (index = the code's wire byte, as [`Code::as_u8`]).
    pub finished: [u64; 17],
}

impl CallCounts {
    /// Calls finished with any code.
    pub fn finished_total(&self) -> u64 {
        self.finished.iter().sum()
    }

    /// Calls finished with `code`.
    pub fn finished_with(&self, code: Code) -> u64 {
        self.finished[code.as_u8() as usize]
    }

    /// Calls started and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.started.saturating_sub(self.finished_total())
    }

    /// Adds the finished calls of `counters` (another thread's shard of the same series).
    /// Finished calls are read before started ones (see `Metrics::snapshot`), so that a call
    /// counted finished was counted started.
    pub(crate) fn add_finished<C: Count>(&mut self, counters: &CallCounters<C>) {
        for (out, counter) in self.finished.iter_mut().zip(&counters.finished) {
            *out += counter.read();
        }
    }

    /// Adds the started calls of `counters`.
    pub(crate) fn add_started<C: Count>(&mut self, counters: &CallCounters<C>) {
        self.started += counters.started.read();
    }
}
