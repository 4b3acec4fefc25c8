//! Which of a connection's QUIC streams have news for the reader: each stream is polled with a
//! waker of its own, which notes the stream and wakes the reader, so a read pass polls only the
//! streams quinn woke instead of every open stream.

use std::sync::Arc;
use std::task::{Wake, Waker};

use crate::sync::{Mutex, lock};

/// Key of the server's pending `accept_bi` in [`Wakeups`] (stream keys are QUIC stream ids,
/// which stay below 2^62).
pub(super) const ACCEPT_KEY: u64 = u64::MAX;

/// Key of a client's pending 0-RTT outcome in [`Wakeups`].
pub(super) const EARLY_KEY: u64 = u64::MAX - 1;

/// Stream wakers kept for reuse at most (a connection's ended streams' allocations, for the
/// streams that follow; more are freed).
pub(super) const MAX_SPARE_WAKERS: usize = 256;

/// Shared by the reader, the writer (which hands over the streams it opens) and quinn's wakers.
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Streams woken since the reader last looked (duplicates allowed).
    woken: Vec<u64>,
    /// Streams the client's writer opened for a call, with that call's id, for the reader.
    opened: Vec<(u64, quinn::RecvStream)>,
    /// Streams whose call the client's writer cancelled: the reader stops reading them.
    cancelled: Vec<u64>,
    /// The reader's waker, from its last `poll_read_ready`.
    reader: Option<Waker>,
}

impl Wakeups {
    /// A waker that notes `key` and wakes the reader.
    pub(super) fn waker_for(self: &Arc<Self>, key: u64) -> Waker {
        Waker::from(Arc::new(StreamWaker {
            key,
            wakeups: self.clone(),
        }))
    }

    /// A stream's waker for `key`, in the allocation of an ended stream's waker from `spare`
    /// when there is one (a stream per call made this an allocation per call and side).
    pub(super) fn stream_waker(self: &Arc<Self>, key: u64, spare: &mut Vec<Arc<StreamWaker>>) -> KeyedWaker {
        let reused = spare.pop().and_then(|mut handle| {
            // Spares are kept only while nobody else holds them (`KeyedWaker::recycle`).
            Arc::get_mut(&mut handle)?.key = key;
            Some(handle)
        });
        let handle = reused.unwrap_or_else(|| {
            Arc::new(StreamWaker {
                key,
                wakeups: self.clone(),
            })
        });
        KeyedWaker {
            waker: Waker::from(handle.clone()),
            handle,
        }
    }

    /// Registers the reader's waker.
    pub(super) fn set_reader(&self, waker: &Waker) {
        let mut state = lock(&self.state);
        match &mut state.reader {
            Some(old) if old.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
    }

    /// Hands the receiving half of a stream the writer opened for `call` to the reader.
    pub(super) fn opened(&self, call: u64, recv: quinn::RecvStream) {
        let reader = {
            let mut state = lock(&self.state);
            state.opened.push((call, recv));
            state.reader.clone()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// Forgets the streams opened and not yet taken (0-RTT refused: they are gone).
    pub(super) fn discard_opened(&self) {
        let mut state = lock(&self.state);
        state.opened.clear();
        state.cancelled.clear();
    }

    /// Client: the call on stream `key` was cancelled; the reader stops reading that stream.
    pub(super) fn cancelled(&self, key: u64) {
        let reader = {
            let mut state = lock(&self.state);
            state.cancelled.push(key);
            state.reader.clone()
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// Takes the woken keys, the opened streams and the cancelled ones (after the opened ones:
    /// a stream may be opened and cancelled before the reader looks).
    pub(super) fn take(&self, woken: &mut Vec<u64>, opened: &mut Vec<(u64, quinn::RecvStream)>, cancelled: &mut Vec<u64>) {
        let mut state = lock(&self.state);
        woken.append(&mut state.woken);
        opened.append(&mut state.opened);
        cancelled.append(&mut state.cancelled);
    }

    fn wake(&self, key: u64) {
        let reader = {
            let mut state = lock(&self.state);
            state.woken.push(key);
            state.reader.clone()
        };
        // Woken outside the lock: the reader may run at once and take it.
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// What a stream's waker notes: the stream's key, for its connection's [`Wakeups`].
#[derive(Debug)]
pub(super) struct StreamWaker {
    key: u64,
    wakeups: Arc<Wakeups>,
}

/// A stream's waker, with the handle that lets its allocation serve another stream once the
/// stream ended and quinn holds no clone of it.
#[derive(Debug)]
pub(super) struct KeyedWaker {
    handle: Arc<StreamWaker>,
    waker: Waker,
}

impl KeyedWaker {
    /// The waker to poll the stream with.
    pub(super) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Keeps the allocation in `spare` (up to [`MAX_SPARE_WAKERS`]) when nobody else holds a
    /// clone of the waker (quinn drops its clone when it wakes it or the stream ends).
    pub(super) fn recycle(self, spare: &mut Vec<Arc<StreamWaker>>) {
        let Self { handle, waker } = self;
        drop(waker);
        if Arc::strong_count(&handle) == 1 && spare.len() < MAX_SPARE_WAKERS {
            spare.push(handle);
        }
    }
}

impl Wake for StreamWaker {
    fn wake(self: Arc<Self>) {
        self.wakeups.wake(self.key);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakeups.wake(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn woken(wakeups: &Wakeups) -> Vec<u64> {
        let (mut woken, mut opened, mut cancelled) = (Vec::new(), Vec::new(), Vec::new());
        wakeups.take(&mut woken, &mut opened, &mut cancelled);
        woken
    }

    #[test]
    fn an_ended_streams_waker_serves_the_next_stream_and_wakes_it_under_its_new_key() {
        let wakeups = Arc::new(Wakeups::default());
        let mut spare = Vec::new();
        let first = wakeups.stream_waker(4, &mut spare);
        first.waker().wake_by_ref();
        assert_eq!(woken(&wakeups), [4]);
        first.recycle(&mut spare);
        assert_eq!(spare.len(), 1, "nobody else held it: kept");
        let second = wakeups.stream_waker(8, &mut spare);
        assert!(spare.is_empty(), "the kept allocation was taken");
        second.waker().wake_by_ref();
        assert_eq!(woken(&wakeups), [8]);
    }

    #[test]
    fn a_waker_quinn_still_holds_is_not_reused_and_keeps_its_key() {
        let wakeups = Arc::new(Wakeups::default());
        let mut spare = Vec::new();
        let stream = wakeups.stream_waker(12, &mut spare);
        let held_by_quinn = stream.waker().clone();
        stream.recycle(&mut spare);
        assert!(spare.is_empty(), "a clone is alive: not kept");
        let next = wakeups.stream_waker(16, &mut spare);
        held_by_quinn.wake();
        assert_eq!(woken(&wakeups), [12], "the old waker still names its own stream");
        drop(next);
    }
}
