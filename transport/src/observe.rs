//! What watches one call: its `tracing` span and, with the `metrics` feature, the method slot and
//! start instant its metrics are recorded with.
//!
//! The span is `volley.call` at debug level, with fields `side`, `method` (the name on the
//! server, the id on the client), `call_id` and `status` (recorded when the call ends). When no
//! `tracing` subscriber enables debug it is `Span::none()`: creating, recording and entering it
//! cost a level check. That check comes before `tracing`'s own macro on purpose: with `tracing`'s
//! `log` feature on (any crate in the build may turn it on) and no subscriber set, the macro
//! builds a disabled span that still formats its fields for the `log` crate on creation, on every
//! record and on drop, 14 % of a pipelined call's instructions (`volley-cost` under callgrind,
//! docs/BENCHMARKS.md); call spans are therefore never mirrored to `log`. Without the `metrics`
//! feature the metrics half does not exist.

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

/// Whether a `tracing` subscriber may want debug spans: the cheap test (a static level and one
/// relaxed load) that keeps the per-call span away from `tracing`'s `log` mirroring when nobody
/// listens (see the module's documentation).
#[inline]
fn debug_enabled() -> bool {
    tracing::level_enabled!(tracing::Level::DEBUG)
}

/// The span and metrics of one call, finished exactly once.
#[derive(Debug)]
pub(crate) struct CallObserver {
    /// `None` when no subscriber wanted it: nothing to record into or drop (a disabled `Span`
    /// still runs `tracing`'s `log` check when dropped).
    span: Option<Span>,
    /// Started and not yet finished: only such calls are counted as finished.
    open: bool,
    /// Set when a `Metrics` is attached to the connection and counted the start.
    #[cfg(feature = "metrics")]
    timing: Option<Timing>,
}

#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug)]
struct Timing {
    started: crate::metrics::Stamp,
    slot: MethodSlot,
    side: crate::metrics::Side,
}

impl CallObserver {
    /// Watches nothing (the server half of a stream, whose call the `ServerCall` watches).
    pub(crate) fn none() -> Self {
        Self {
            span: None,
            open: false,
            #[cfg(feature = "metrics")]
            timing: None,
        }
    }

    /// A client call to `method`; [`CallObserver::client_opened`] once it has a call id.
    #[inline]
    pub(crate) fn client(method: MethodId) -> Self {
        let span = debug_enabled()
            .then(|| tracing::debug_span!("volley.call", side = "client", method = %method, call_id = Empty, status = Empty))
            .filter(|span| !span.is_disabled());
        Self {
            span,
            open: false,
            #[cfg(feature = "metrics")]
            timing: None,
        }
    }

    /// The client call that started at `started` was opened on `shared` as `call_id`.
    #[inline]
    pub(crate) fn client_opened(&mut self, recorder: Recorder<'_>, method: MethodId, call_id: CallId, started: Instant) {
        // Only an enabled span is kept: recording into a disabled one would still walk its
        // fields (1.4 % of a pipelined call in the profile in docs/BENCHMARKS.md).
        if let Some(span) = &self.span {
            span.record("call_id", call_id.0);
        }
        self.open = true;
        #[cfg(feature = "metrics")]
        if let Some(metrics) = recorder.metrics() {
            self.timing = Some(Timing {
                started: crate::metrics::Stamp::of(started),
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
        let span = debug_enabled()
            .then(|| tracing::debug_span!("volley.call", side = "server", method = %method, call_id = call_id.0, status = Empty))
            .filter(|span| !span.is_disabled());
        #[cfg(feature = "metrics")]
        let timing = recorder.metrics().map(|metrics| Timing {
            started: metrics.server_call_started(slot, sent_at_ns, received_at),
            slot,
            side: crate::metrics::Side::Server,
        });
        #[cfg(not(feature = "metrics"))]
        let _ = (recorder, slot, sent_at_ns, received_at);
        Self {
            span,
            open: true,
            #[cfg(feature = "metrics")]
            timing,
        }
    }

    /// The call's span, to enter while its handler runs.
    pub(crate) fn span(&self) -> &Span {
        static NONE: std::sync::LazyLock<Span> = std::sync::LazyLock::new(Span::none);
        self.span.as_ref().unwrap_or(&NONE)
    }

    /// The call ended with `code`: records the status on the span and, once per started call,
    /// the metrics.
    #[inline]
    pub(crate) fn finish(&mut self, recorder: Recorder<'_>, code: Code) {
        self.finish_at(recorder, code, None);
    }

    /// [`CallObserver::finish`] for a call whose end was already read off the clock: a client
    /// call answered at `ended` (when the reader's pass read the answer, one clock read for every
    /// answer of that read) is timed from it instead of reading the clock again. `None` reads
    /// the clock. An end before the start (an answer read in a pass whose clock read came before
    /// the call started) counts as zero. A server call ends when its answer is queued: during a
    /// reader pass's dispatch ([`PassAnswers`]) at the dispatch's end, one clock read for all
    /// its answers; elsewhere at a clock read of its own.
    #[inline]
    pub(crate) fn finish_at(&mut self, recorder: Recorder<'_>, code: Code, ended: Option<Instant>) {
        if let Some(span) = &self.span {
            span.record("status", code.as_str());
        }
        if !std::mem::take(&mut self.open) {
            return;
        }
        #[cfg(feature = "metrics")]
        if let Some(Timing { started, slot, side }) = self.timing
            && let Some(metrics) = recorder.metrics()
        {
            use crate::metrics::Stamp;
            match side {
                crate::metrics::Side::Client => {
                    // Every answer of a pass shares its `ended`: converted once per pass.
                    let ended = ended.map_or_else(Stamp::now, Stamp::of_pass);
                    metrics.client_call_finished(slot, code, ended.ns_since(started));
                }
                crate::metrics::Side::Server => metrics.server_call_finished(slot, code, started),
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (recorder, ended);
    }
}

/// The server answers given while a reader dispatches the calls of one read pass: with a
/// `Metrics` attached, they are timed by one clock read when the dispatch ends
/// ([`PassAnswers::end`]), the moment the pass's corked answers leave together, instead of a
/// clock read per answer (`metrics/pass.rs`). Begun by the reader around its dispatch loop.
#[derive(Debug)]
pub(crate) struct PassAnswers<'a> {
    /// The `Metrics` whose answers wait, when this guard began the wait.
    #[cfg(feature = "metrics")]
    metrics: Option<&'a crate::metrics::Metrics>,
    _lifetime: std::marker::PhantomData<&'a ()>,
}

impl<'a> PassAnswers<'a> {
    /// The reader starts dispatching a pass's calls on this connection.
    #[inline]
    pub(crate) fn begin(recorder: Recorder<'a>) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = recorder;
        Self {
            #[cfg(feature = "metrics")]
            metrics: recorder.metrics().filter(|metrics| metrics.begin_pass_answers()),
            _lifetime: std::marker::PhantomData,
        }
    }

    /// The dispatch ended: one clock read records every answer it gave.
    #[inline]
    pub(crate) fn end(mut self) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = self.metrics.take() {
            metrics.end_pass_answers(false);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = &mut self;
    }
}

impl Drop for PassAnswers<'_> {
    /// Reached with answers waiting only when a handler's panic unwinds through the dispatch:
    /// they are recorded without a clock read (see `Metrics::end_pass_answers`).
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        if let Some(metrics) = self.metrics.take() {
            metrics.end_pass_answers(true);
        }
    }
}
