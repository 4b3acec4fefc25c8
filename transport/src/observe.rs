//! What watches one call: its `tracing` span and, with the `metrics` feature, the method slot and
//! start instant its metrics are recorded with.
//!
//! The span is `volley.call` at debug level, with fields `side`, `method` (the name on the
//! server, the id on the client), `call_id` and `status` (recorded when the call ends). When
//! debug is disabled it is `Span::none()`: creating, recording and entering it cost a level
//! check. Without the `metrics` feature the metrics half does not exist.

use std::time::Instant;

use tracing::Span;
use tracing::field::Empty;

use crate::status::Code;
use crate::wire::{CallId, MethodId};

#[cfg(feature = "metrics")]
pub(crate) use crate::metrics::MethodSlot;

/// Where a method's metrics live; nothing without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MethodSlot;

#[cfg(not(feature = "metrics"))]
impl MethodSlot {
    pub(crate) const OTHER: Self = Self;
}

/// Where a call's metrics go: the `Metrics` attached to its connection, if any. The driver hands
/// it out (`Shared::recorder`); this module never sees the connection itself.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recorder<'a> {
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<&'a crate::metrics::Metrics>,
    pub(crate) _lifetime: std::marker::PhantomData<&'a ()>,
}

#[cfg(feature = "metrics")]
impl<'a> Recorder<'a> {
    #[inline]
    fn metrics(self) -> Option<&'a crate::metrics::Metrics> {
        self.metrics
    }
}

/// The span and metrics of one call, finished exactly once.
#[derive(Debug)]
pub(crate) struct CallObserver {
    span: Span,
    /// Started and not yet finished: only such calls are counted as finished.
    open: bool,
    /// Set when a `Metrics` is attached to the connection and counted the start.
    #[cfg(feature = "metrics")]
    timing: Option<Timing>,
    /// (server) The call counted in its server's load, until it finishes.
    load: Option<crate::server::LoadGuard>,
}

#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug)]
struct Timing {
    started: Instant,
    slot: MethodSlot,
    side: crate::metrics::Side,
}

impl CallObserver {
    /// Watches nothing (the server half of a stream, whose call the `ServerCall` watches).
    pub(crate) fn none() -> Self {
        Self {
            span: Span::none(),
            open: false,
            #[cfg(feature = "metrics")]
            timing: None,
            load: None,
        }
    }

    /// A client call to `method`; [`CallObserver::client_opened`] once it has a call id.
    #[inline]
    pub(crate) fn client(method: MethodId) -> Self {
        let span = tracing::debug_span!("volley.call", side = "client", method = %method, call_id = Empty, status = Empty);
        Self {
            span,
            open: false,
            #[cfg(feature = "metrics")]
            timing: None,
            load: None,
        }
    }

    /// The client call that started at `started` was opened on `shared` as `call_id`.
    #[inline]
    pub(crate) fn client_opened(&mut self, recorder: Recorder<'_>, method: MethodId, call_id: CallId, started: Instant) {
        // Recording into a disabled span still walks its fields: skip it (1.4 % of a pipelined
        // call in the profile in docs/BENCHMARKS.md, counted with the status below).
        if !self.span.is_disabled() {
            self.span.record("call_id", call_id.0);
        }
        self.open = true;
        #[cfg(feature = "metrics")]
        if let Some(metrics) = recorder.metrics() {
            self.timing = Some(Timing {
                started,
                slot: metrics.client_call_started(method),
                side: crate::metrics::Side::Client,
            });
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (recorder, method, started);
    }

    /// A server call dispatched to `method` (its name, or its id when not served), whose
    /// request frame was read at `received_at`; `sent_at_ns` is the client's send timestamp.
    #[inline]
    pub(crate) fn server(
        recorder: Recorder<'_>,
        method: &dyn std::fmt::Display,
        slot: MethodSlot,
        call_id: CallId,
        sent_at_ns: u64,
        received_at: Instant,
    ) -> Self {
        let span = tracing::debug_span!("volley.call", side = "server", method = %method, call_id = call_id.0, status = Empty);
        #[cfg(feature = "metrics")]
        let timing = recorder.metrics().map(|metrics| {
            metrics.server_call_started(slot, sent_at_ns, received_at);
            Timing {
                started: received_at,
                slot,
                side: crate::metrics::Side::Server,
            }
        });
        #[cfg(not(feature = "metrics"))]
        let _ = (recorder, slot, sent_at_ns, received_at);
        Self {
            span,
            open: true,
            #[cfg(feature = "metrics")]
            timing,
            load: None,
        }
    }

    /// (server) Counts the call in its server's load until it finishes.
    pub(crate) fn count_load(&mut self, guard: crate::server::LoadGuard) {
        self.load = Some(guard);
    }

    /// (server) `response` with the server's load report, if the call carries one.
    #[inline]
    pub(crate) fn add_load_report<T>(&self, response: crate::Response<T>) -> crate::Response<T> {
        match &self.load {
            Some(guard) => guard.add_report(response),
            None => response,
        }
    }

    /// The call's span, to enter while its handler runs.
    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    /// The call ended with `code`: records the status on the span and, once per started call,
    /// the metrics.
    #[inline]
    pub(crate) fn finish(&mut self, recorder: Recorder<'_>, code: Code) {
        if !self.span.is_disabled() {
            self.span.record("status", code.as_str());
        }
        // The call leaves its server's load (a relaxed subtract).
        self.load = None;
        if !std::mem::take(&mut self.open) {
            return;
        }
        #[cfg(feature = "metrics")]
        if let Some(Timing { started, slot, side }) = self.timing
            && let Some(metrics) = recorder.metrics()
        {
            match side {
                crate::metrics::Side::Client => metrics.client_call_finished(slot, code, started.elapsed()),
                crate::metrics::Side::Server => metrics.server_call_finished(slot, code, started),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = recorder;
    }
}
