//! The server's own load report: its calls in flight on its other connections (other clients'
//! load), in the `volley-load` response-head metadata (docs/PROTOCOL.md section 14), for the clients that ask
//! (a request carrying the key) or for every answer ([`LoadReports`]).
//!
//! Cheap on the default path: a call counts itself with one relaxed atomic add and subtract on
//! its connection's stripe of a striped counter (connections on other threads do not share its
//! cache line), and a report for up to
//! [`PREENCODED_REPORTS`] calls in flight is a pre-encoded static metadata block: no
//! allocation, no formatting. A request that does not ask costs a check of its (usually empty)
//! metadata.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::balance::LOAD_METADATA_KEY;
use crate::response::Response;
use crate::wire::Metadata;

/// When a server puts its load in response heads.
///
/// ```
/// use volley::Server;
/// use volley::server::LoadReports;
///
/// let builder = Server::builder().load_reports(LoadReports::Always);
/// # let _ = builder;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadReports {
    /// Never; calls are not counted either.
    Never,
    /// On the OK answer of a unary or client-streaming call whose request metadata carries the
    /// key `volley-load` (any value): what a [`crate::balance::BalancedChannel`] over two or
    /// more endpoints sends. The default: plain clients pay nothing.
    #[default]
    OnRequest,
    /// On every OK answer of a unary or client-streaming call (about 17 bytes more each).
    Always,
}

/// Reports up to this many calls in flight come from a table encoded once (1,024 entries,
/// 19 KiB); a busier server formats its report, allocating per answer.
pub const PREENCODED_REPORTS: u32 = 1024;

/// Stripes of the server's in-flight count: connections are spread over them by id, so calls on
/// connections served by different threads add to different cache lines.
const STRIPES: usize = 16;

/// One stripe of the count, alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU32);

/// A server's calls in flight, over every connection.
///
/// The router owns it; a call holds a [`LoadTicket`] (no pointer, no reference count) and, when
/// it ends, spends it and tells the connection's dispatcher ([`ServerLoad::end`]), so the
/// per-call path pays the add and the subtract and nothing else. The count is striped by
/// connection: one shared counter had every call of every connection add to and subtract from
/// the same cache line, which moved between the CPUs at every call on a multi-thread runtime.
/// A call adds and subtracts on the same stripe, so each stripe's count (wrapping) is its
/// calls in flight, and the sum over the stripes is the server's.
#[derive(Debug)]
pub(crate) struct ServerLoad {
    stripes: [Stripe; STRIPES],
    reports: LoadReports,
}

impl ServerLoad {
    /// `None` when reports are off: nothing is counted.
    pub(crate) fn new(reports: LoadReports) -> Option<Self> {
        (reports != LoadReports::Never).then(|| Self {
            stripes: Default::default(),
            reports,
        })
    }

    /// Calls in flight now, over every connection (a sum of relaxed reads: exact once calls stop
    /// starting and ending, off by those in progress while they do).
    pub(crate) fn in_flight(&self) -> usize {
        let sum = self
            .stripes
            .iter()
            .fold(0u32, |sum, stripe| sum.wrapping_add(stripe.0.load(Ordering::Relaxed)));
        // A call's end seen before its start (on another stripe's read) leaves a sum just below 0.
        if sum > u32::MAX / 2 { 0 } else { sum as usize }
    }

    /// Counts a call in flight until its ticket is given back to [`ServerLoad::end`]; `request`
    /// is the call's metadata, `connection` its connection's id (which picks the stripe).
    pub(crate) fn start(&self, request: &Metadata, connection: u64) -> LoadTicket {
        // Fibonacci hashing: ids that share a stride (a process numbering its client and server
        // connections from one counter) still spread over every stripe.
        let stripe = (connection.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - STRIPES.trailing_zeros())) as u8;
        self.stripes[usize::from(stripe)].0.fetch_add(1, Ordering::Relaxed);
        let report = match self.reports {
            LoadReports::Always => true,
            LoadReports::OnRequest => !request.is_empty() && request.get(LOAD_METADATA_KEY).is_some(),
            LoadReports::Never => false,
        };
        LoadTicket { report, stripe }
    }

    /// A call counted by [`ServerLoad::start`] on `stripe` left the server's load (its ticket
    /// is spent).
    pub(crate) fn end(&self, stripe: u8) {
        // `stripe` came from `start`, so it is in range; `% STRIPES` keeps the index checked free.
        self.stripes[usize::from(stripe) % STRIPES].0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One call counted in the server's load, until it is spent with [`ServerLoad::end`] (the
/// server's call does so through its connection's dispatcher, once, when answered or dropped).
#[derive(Debug)]
#[must_use = "a ticket not given back keeps its call counted in the server's load"]
pub(crate) struct LoadTicket {
    /// Whether the call's answer carries a report.
    report: bool,
    /// The stripe of the count the call was added to, and is subtracted from.
    stripe: u8,
}

impl LoadTicket {
    /// Spends the ticket: the stripe to give to [`ServerLoad::end`].
    pub(crate) fn spend(self) -> u8 {
        self.stripe
    }

    /// Whether the call's answer carries a report.
    pub(crate) fn reports(&self) -> bool {
        self.report
    }

    /// `response` with the server's report added when this call carries one: the calls in
    /// flight on the server's other connections, `everywhere` being its calls in flight over
    /// every connection and `this_connection` those on the one that carried this call (itself
    /// included). The asking client counts its own calls itself, as they are now; a figure that
    /// counted them would go stale the moment they ended. A handler's own `volley-load` entry is
    /// kept as it is.
    pub(crate) fn add_report<T>(&self, mut response: Response<T>, everywhere: u32, this_connection: u32) -> Response<T> {
        if !self.report {
            return response;
        }
        let others = everywhere.saturating_sub(this_connection);
        let metadata = response.metadata_mut();
        if metadata.is_empty() {
            *metadata = report(others);
        } else if metadata.get(LOAD_METADATA_KEY).is_none() {
            // A handler's metadata of its own: one copy of it (the rare path).
            let _ = metadata.insert(LOAD_METADATA_KEY, others.to_string());
        }
        response
    }
}

/// The metadata block `volley-load: n`.
fn report(n: u32) -> Metadata {
    if n < PREENCODED_REPORTS {
        let (bytes, offsets) = table();
        let at = n as usize;
        return Metadata::from_static(&bytes[offsets[at] as usize..offsets[at + 1] as usize]);
    }
    let mut metadata = Metadata::new();
    let _ = metadata.insert(LOAD_METADATA_KEY, n.to_string());
    metadata
}

/// Every report below [`PREENCODED_REPORTS`], encoded back to back once per process, with the
/// offset where each starts (and one past the last).
fn table() -> &'static (&'static [u8], Box<[u32]>) {
    static TABLE: OnceLock<(&'static [u8], Box<[u32]>)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(PREENCODED_REPORTS as usize + 1);
        for n in 0..PREENCODED_REPORTS {
            offsets.push(bytes.len() as u32);
            let mut one = Metadata::new();
            // The key is valid and the value short: insert cannot fail.
            let _ = one.insert(LOAD_METADATA_KEY, n.to_string());
            bytes.extend_from_slice(one.as_raw());
        }
        offsets.push(bytes.len() as u32);
        // Leaked once: the blocks are shared by every answer for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        (bytes, offsets.into_boxed_slice())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preencoded_reports_read_back_as_their_count() {
        for n in [0, 1, 9, 10, 99, 1023, 1024, 70_000] {
            let metadata = report(n);
            assert_eq!(metadata.get_str(LOAD_METADATA_KEY), Some(n.to_string().as_str()));
            assert_eq!(metadata.iter().count(), 1);
        }
    }

    #[test]
    fn a_report_counts_the_calls_of_other_connections_and_only_where_asked() {
        let load = ServerLoad::new(LoadReports::OnRequest).expect("counting");
        let mut asked = Metadata::new();
        asked.insert(LOAD_METADATA_KEY, "").unwrap();
        // Five calls in flight: three on the asking connection, two on another.
        let quiet = load.start(&Metadata::new(), 1);
        let first = load.start(&asked, 1);
        let second = load.start(&asked, 1);
        let elsewhere = [load.start(&Metadata::new(), 2), load.start(&Metadata::new(), 2)];
        let everywhere = || u32::try_from(load.in_flight()).expect("few calls");
        let answer = first.add_report(Response::new(()), everywhere(), 3);
        assert_eq!(answer.metadata().get_str(LOAD_METADATA_KEY), Some("2"));
        assert!(
            quiet.add_report(Response::new(()), everywhere(), 3).metadata().is_empty(),
            "not asked"
        );
        assert!(first.reports() && !quiet.reports());
        for spent in [quiet, first].into_iter().chain(elsewhere) {
            load.end(spent.spend());
        }
        let mut own = Metadata::new();
        own.insert("x-shard", "3").unwrap();
        let answer = second.add_report(Response::new(()).with_metadata(own), everywhere(), 1);
        assert_eq!(answer.metadata().get_str(LOAD_METADATA_KEY), Some("0"));
        assert_eq!(answer.metadata().get_str("x-shard"), Some("3"));
        load.end(second.spend());
        assert_eq!(load.in_flight(), 0);
        assert!(ServerLoad::new(LoadReports::Never).is_none());
    }
}
