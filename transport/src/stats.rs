//! Cheap per-connection counters: relaxed atomics, read as a [`StatsSnapshot`].

use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use crate::wire::Code;

/// Live counters of one connection (or the sum over a server's connections).
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) calls_started: AtomicU64,
    pub(crate) calls_by_code: [AtomicU64; 17],
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) frames_out: AtomicU64,
    pub(crate) write_syscalls: AtomicU64,
    pub(crate) tls_records_out: AtomicU64,
    pub(crate) write_queue_bytes: AtomicU64,
    pub(crate) write_queue_peak: AtomicU64,
    pub(crate) stream_buffered_peak: AtomicU64,
    /// The connection has ended (published by the driver for metrics, which never see it).
    pub(crate) closed: AtomicBool,
}

/// A copy of [`Stats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Calls opened.
    pub calls_started: u64,
    /// Calls finished, by status code (index = code's wire byte).
    pub calls_by_code: [u64; 17],
    /// Bytes read from the socket.
    pub bytes_in: u64,
    /// Bytes written to the socket.
    pub bytes_out: u64,
    /// Frames decoded.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// `write`/`writev` system calls made.
    pub write_syscalls: u64,
    /// TLS records written (feature `tls`; 0 over plaintext): many frames share a record, and
    /// one write carries many records.
    pub tls_records_out: u64,
    /// Calls open now.
    pub calls_in_flight: u64,
    /// Bytes waiting in the write queue now, a batch being written included.
    pub write_queue_bytes: u64,
    /// Most bytes ever waiting in one connection's write queue, a batch being written included:
    /// at most the write queue cap plus one message and a few small frames.
    pub write_queue_peak: u64,
    /// Most bytes of received stream messages ever buffered for one call, waiting for the
    /// application to read them (bounded by the flow-control window plus one message).
    pub stream_buffered_peak: u64,
}

impl StatsSnapshot {
    /// Calls finished with any code.
    pub fn calls_finished(&self) -> u64 {
        self.calls_by_code.iter().sum()
    }

    /// Calls finished with a code other than OK.
    pub fn calls_failed(&self) -> u64 {
        self.calls_finished() - self.calls_by_code[0]
    }

    /// Frames per write system call: how well writes are batched.
    pub fn frames_per_write(&self) -> f64 {
        if self.write_syscalls == 0 {
            0.0
        } else {
            self.frames_out as f64 / self.write_syscalls as f64
        }
    }

    /// Adds `other` into `self`, for totals over connections.
    pub fn add(&mut self, other: &Self) {
        self.calls_started += other.calls_started;
        for (a, b) in self.calls_by_code.iter_mut().zip(other.calls_by_code) {
            *a += b;
        }
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.frames_in += other.frames_in;
        self.frames_out += other.frames_out;
        self.write_syscalls += other.write_syscalls;
        self.tls_records_out += other.tls_records_out;
        self.calls_in_flight += other.calls_in_flight;
        self.write_queue_bytes += other.write_queue_bytes;
        self.write_queue_peak = self.write_queue_peak.max(other.write_queue_peak);
        self.stream_buffered_peak = self.stream_buffered_peak.max(other.stream_buffered_peak);
    }
}

/// The calls in flight, from the started and finished counts read just before: no counter of
/// their own. Calls ending on other threads between the two reads may skew it by those calls; it
/// never goes below zero.
fn in_flight(started: u64, finished: u64) -> u64 {
    started.saturating_sub(finished)
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut calls_by_code = [0; 17];
        for (out, counter) in calls_by_code.iter_mut().zip(&self.calls_by_code) {
            *out = counter.load(Relaxed);
        }
        let calls_started = self.calls_started.load(Relaxed);
        StatsSnapshot {
            calls_started,
            calls_by_code,
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            frames_in: self.frames_in.load(Relaxed),
            frames_out: self.frames_out.load(Relaxed),
            write_syscalls: self.write_syscalls.load(Relaxed),
            tls_records_out: self.tls_records_out.load(Relaxed),
            calls_in_flight: in_flight(calls_started, calls_by_code.iter().sum()),
            write_queue_bytes: self.write_queue_bytes.load(Relaxed),
            write_queue_peak: self.write_queue_peak.load(Relaxed),
            stream_buffered_peak: self.stream_buffered_peak.load(Relaxed),
        }
    }

    /// One locked add per call and side: the calls in flight are the started ones less the
    /// finished ones, worked out when read ([`Stats::calls_in_flight`]), not kept in a counter
    /// of their own that every call would add to and subtract from.
    pub(crate) fn call_started(&self) {
        self.calls_started.fetch_add(1, Relaxed);
    }

    pub(crate) fn call_finished(&self, code: Code) {
        self.calls_by_code[code.as_u8() as usize].fetch_add(1, Relaxed);
    }

    /// Calls started and not finished yet: exact once no call is starting or ending; while
    /// calls end on other threads it may be off by those (it never goes below zero).
    pub(crate) fn calls_in_flight(&self) -> u64 {
        let finished: u64 = self.calls_by_code.iter().map(|count| count.load(Relaxed)).sum();
        in_flight(self.calls_started.load(Relaxed), finished)
    }

    pub(crate) fn stream_buffered(&self, bytes: usize) {
        // Called for every message received: a plain load, and a read-modify-write only when
        // the peak grows (rarely, once the mailbox has reached its usual depth).
        if bytes as u64 > self.stream_buffered_peak.load(Relaxed) {
            self.stream_buffered_peak.fetch_max(bytes as u64, Relaxed);
        }
    }

    /// Whether the connection these counters belong to has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

// --- admission (the server's accept decisions; counted here so metrics can read them too) ---

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds as many connections as its limit allows.
    PeerConnections,
    /// Its address has as many connections in their handshake as its limit allows.
    PeerHandshakes,
    /// The server is at `max_connections` and no idle connection could make room.
    ServerFull,
}

impl Refusal {
    /// Every reason, in the order of [`AdmissionStats`]' fields.
    pub const ALL: [Self; 3] = [Self::PeerConnections, Self::PeerHandshakes, Self::ServerFull];

    /// The reason as a metrics label: `peer_connections`, `peer_handshakes`, `server_full`.
    pub fn label(self) -> &'static str {
        match self {
            Self::PeerConnections => "peer_connections",
            Self::PeerHandshakes => "peer_handshakes",
            Self::ServerFull => "server_full",
        }
    }
}

/// Counts of what admission refused and evicted, since the server started (std atomics, also
/// under loom: nothing here is modelled).
#[derive(Debug, Default)]
pub(crate) struct AdmissionCounters {
    peer_connections: std::sync::atomic::AtomicU64,
    peer_handshakes: std::sync::atomic::AtomicU64,
    server_full: std::sync::atomic::AtomicU64,
    evicted: std::sync::atomic::AtomicU64,
}

impl AdmissionCounters {
    pub(crate) fn refused(&self, refusal: Refusal) {
        let counter = match refusal {
            Refusal::PeerConnections => &self.peer_connections,
            Refusal::PeerHandshakes => &self.peer_handshakes,
            Refusal::ServerFull => &self.server_full,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn evicted(&self) {
        self.evicted.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AdmissionStats {
        AdmissionStats {
            refused_peer_connections: self.peer_connections.load(Relaxed),
            refused_peer_handshakes: self.peer_handshakes.load(Relaxed),
            refused_server_full: self.server_full.load(Relaxed),
            evicted: self.evicted.load(Relaxed),
        }
    }
}

/// What a server's admission did: connections refused at accept, by reason, and idle
/// connections closed (with a graceful GoAway) to make room for a new peer. From
/// `ServerHandle::admission`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Refused: the address was at its connection limit.
    pub refused_peer_connections: u64,
    /// Refused: the address had too many connections in their handshake.
    pub refused_peer_handshakes: u64,
    /// Refused: the server was at `max_connections` with no idle connection to close.
    pub refused_server_full: u64,
    /// Idle connections closed to make room.
    pub evicted: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_in_flight_are_the_started_calls_less_the_finished_ones() {
        let stats = Stats::default();
        for _ in 0..5 {
            stats.call_started();
        }
        stats.call_finished(Code::Ok);
        stats.call_finished(Code::Cancelled);
        assert_eq!(stats.calls_in_flight(), 3);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.calls_started, snapshot.calls_finished(), snapshot.calls_in_flight),
            (5, 2, 3)
        );
        for _ in 0..3 {
            stats.call_finished(Code::Ok);
        }
        assert_eq!(stats.calls_in_flight(), 0);
        assert_eq!(stats.snapshot().calls_in_flight, 0);
    }
}
