//! The server's own load report: its calls in flight on its other connections (other clients'
//! load), in the `volley-load` response-head metadata (docs/PROTOCOL.md section 14), for the clients that ask
//! (a request carrying the key) or for every answer ([`LoadReports`]).
//!
//! Cheap on the default path: a call counts itself with one relaxed atomic add and subtract on
//! a counter the server's connections share, and a report for up to
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

/// A server's calls in flight, over every connection.
///
/// The router owns it; a call holds a [`LoadTicket`] (no pointer, no reference count) and, when
/// it ends, spends it and tells the connection's dispatcher ([`ServerLoad::end`]), so the
/// per-call path pays the add and the subtract and nothing else.
#[derive(Debug)]
pub(crate) struct ServerLoad {
    in_flight: AtomicU32,
    reports: LoadReports,
}

impl ServerLoad {
    /// `None` when reports are off: nothing is counted.
    pub(crate) fn new(reports: LoadReports) -> Option<Self> {
        (reports != LoadReports::Never).then_some(Self {
            in_flight: AtomicU32::new(0),
            reports,
        })
    }

    /// Calls in flight now, over every connection.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed) as usize
    }

    /// Counts a call in flight until its ticket is given back to [`ServerLoad::end`]; `request`
    /// is the call's metadata.
    pub(crate) fn start(&self, request: &Metadata) -> LoadTicket {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let report = match self.reports {
            LoadReports::Always => true,
            LoadReports::OnRequest => !request.is_empty() && request.get(LOAD_METADATA_KEY).is_some(),
            LoadReports::Never => false,
        };
        LoadTicket { report }
    }

    /// A call counted by [`ServerLoad::start`] left the server's load (its ticket is spent).
    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One call counted in the server's load, until it is spent with [`ServerLoad::end`] (the
/// server's call does so through its connection's dispatcher, once, when answered or dropped).
#[derive(Debug)]
#[must_use = "a ticket not given back keeps its call counted in the server's load"]
pub(crate) struct LoadTicket {
    /// Whether the call's answer carries a report.
    report: bool,
}

impl LoadTicket {
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
        let quiet = load.start(&Metadata::new());
        let first = load.start(&asked);
        let second = load.start(&asked);
        let elsewhere = [load.start(&Metadata::new()), load.start(&Metadata::new())];
        let everywhere = || u32::try_from(load.in_flight()).expect("few calls");
        let answer = first.add_report(Response::new(()), everywhere(), 3);
        assert_eq!(answer.metadata().get_str(LOAD_METADATA_KEY), Some("2"));
        assert!(
            quiet.add_report(Response::new(()), everywhere(), 3).metadata().is_empty(),
            "not asked"
        );
        assert!(first.reports() && !quiet.reports());
        for _spent in [quiet, first].into_iter().chain(elsewhere) {
            load.end();
        }
        let mut own = Metadata::new();
        own.insert("x-shard", "3").unwrap();
        let answer = second.add_report(Response::new(()).with_metadata(own), everywhere(), 1);
        assert_eq!(answer.metadata().get_str(LOAD_METADATA_KEY), Some("0"));
        assert_eq!(answer.metadata().get_str("x-shard"), Some("3"));
        let _spent = second;
        load.end();
        assert_eq!(load.in_flight(), 0);
        assert!(ServerLoad::new(LoadReports::Never).is_none());
    }
}
