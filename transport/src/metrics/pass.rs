//! The server answers given while a reader dispatches the calls of one read pass, timed by one
//! clock read when that dispatch ends instead of one per answer.
//!
//! A reader's pass reads many requests at once (64 at 128 in flight) and dispatches them in one
//! go; an inline handler answers right there, and its answer is queued, corked, until the pass
//! ends and writes them all together (`driver/reader.rs`). So the pass's answers leave at the
//! same moment, and one clock read when the dispatch ends gives each of them the time it was
//! ready to leave: [`super::Metrics::begin_pass_answers`] makes this thread's answers for that
//! `Metrics` wait here (their slot, code and start), [`super::Metrics::end_pass_answers`] reads
//! the clock once and records them all. An answer given anywhere else (a spawned handler, a
//! stream, another `Metrics`) reads the clock itself, as before.
//!
//! What waits here is this thread's only, so a snapshot taken on this thread records it first;
//! one taken on another thread during the dispatch sees those calls as not yet finished (they
//! have not left yet either). At most [`CAPACITY`] answers wait: the next one records them with
//! one clock read and starts again, so a pass of any size costs a read per 64 answers.

use std::cell::Cell;

use super::Metrics;
use super::local::with_shard;
use super::registry::MethodSlot;
use super::stamp::Stamp;
use crate::status::Code;

/// Answers that wait for one clock read (64, a full pass at 128 in flight on one connection).
pub(super) const CAPACITY: usize = 64;

/// One server answer waiting for its end.
#[derive(Clone, Copy, Debug)]
pub(super) struct Answer {
    pub(super) slot: MethodSlot,
    pub(super) code: Code,
    pub(super) started: Stamp,
}

impl Answer {
    const EMPTY: Self = Self {
        slot: MethodSlot::OTHER,
        code: Code::Ok,
        started: Stamp::ZERO,
    };
}

/// This thread's waiting answers.
pub(super) struct Waiting {
    /// The `Metrics` whose answers wait (its state's address), or 0 when this thread is not
    /// dispatching a pass's calls.
    key: Cell<usize>,
    len: Cell<usize>,
    answers: [Cell<Answer>; CAPACITY],
}

thread_local! {
    static WAITING: Waiting = const {
        Waiting {
            key: Cell::new(0),
            len: Cell::new(0),
            answers: [const { Cell::new(Answer::EMPTY) }; CAPACITY],
        }
    };
}

/// Runs `f` with this thread's waiting answers; `None` once the thread's storage is torn down.
#[inline]
pub(super) fn with_waiting<R>(f: impl FnOnce(&Waiting) -> R) -> Option<R> {
    WAITING.try_with(f).ok()
}

impl Metrics {
    /// This thread starts dispatching a reader pass's calls: until [`Metrics::end_pass_answers`],
    /// the server answers it gives for this `Metrics` wait for one clock read (`pass.rs`).
    /// Returns whether it started (`false` when this thread already holds a pass's answers: the
    /// one that started ends it).
    #[inline]
    pub(crate) fn begin_pass_answers(&self) -> bool {
        with_waiting(|waiting| waiting.begin(self.key())).unwrap_or(false)
    }

    /// The dispatch begun by [`Metrics::begin_pass_answers`] ended: one clock read, when any
    /// answer waits, records them all. With `unwinding` (a handler panicked) no clock is read:
    /// they end at the latest start among them.
    #[inline]
    pub(crate) fn end_pass_answers(&self, unwinding: bool) {
        let key = self.key();
        with_waiting(|waiting| {
            if !waiting.is_for(key) {
                return;
            }
            if !waiting.is_empty() {
                let end = if unwinding { waiting.latest_start() } else { Stamp::now() };
                self.record_waiting(waiting, end);
            }
            waiting.end();
        });
    }

    /// Records the answers waiting on this thread for this `Metrics`, if any, as ended at
    /// `end()`.
    pub(super) fn record_waiting_answers(&self, end: impl FnOnce() -> Stamp) {
        let key = self.key();
        with_waiting(|waiting| {
            if waiting.is_for(key) && !waiting.is_empty() {
                self.record_waiting(waiting, end());
            }
        });
    }

    /// Records every answer of `waiting` as ended at `end`: one shard lookup for them all.
    #[inline]
    pub(super) fn record_waiting(&self, waiting: &Waiting, end: Stamp) {
        let recorded = with_shard(&self.inner, |shard| {
            waiting.take(|answer| {
                let own = shard.server(answer.slot);
                own.calls.finish(answer.code);
                own.handling.record_ns(end.ns_since(answer.started));
            });
        });
        if !recorded {
            waiting.take(|answer| {
                let method = self.inner.methods.get(answer.slot);
                method.server.calls.finish(answer.code);
                method.handling.record_ns(end.ns_since(answer.started));
            });
        }
    }
}

impl Waiting {
    /// Whether answers of the `Metrics` at `key` wait here.
    #[inline]
    pub(super) fn is_for(&self, key: usize) -> bool {
        self.key.get() == key
    }

    /// Starts holding the answers of the `Metrics` at `key`; `false` when this thread already
    /// holds some (its caller then leaves the end to the one that started).
    #[inline]
    pub(super) fn begin(&self, key: usize) -> bool {
        if self.key.get() != 0 {
            return false;
        }
        self.key.set(key);
        true
    }

    /// Stops holding answers (after [`Waiting::take`] has handed over the last ones).
    #[inline]
    pub(super) fn end(&self) {
        self.key.set(0);
    }

    /// Adds `answer`; `false` when full (take them first).
    #[inline]
    pub(super) fn push(&self, answer: Answer) -> bool {
        let len = self.len.get();
        let Some(cell) = self.answers.get(len) else {
            return false;
        };
        cell.set(answer);
        self.len.set(len + 1);
        true
    }

    /// Hands every waiting answer to `record`, in order, and empties the list.
    #[inline]
    pub(super) fn take(&self, mut record: impl FnMut(Answer)) {
        let len = self.len.replace(0);
        for cell in &self.answers[..len] {
            record(cell.get());
        }
    }

    /// Whether any answer waits.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// The latest start among the waiting answers: the end given to them when the dispatch
    /// unwinds (a handler panicked), so that the unwinding reads no clock.
    pub(super) fn latest_start(&self) -> Stamp {
        self.answers[..self.len.get()]
            .iter()
            .map(Cell::get)
            .map(|answer| answer.started)
            .max()
            .unwrap_or_default()
    }
}
