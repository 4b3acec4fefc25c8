//! The send scope of a streaming handler's poll: the stream messages a handler sends while its
//! task polls it are encoded into a batch of this thread's, with no lock taken, and go into the
//! connection's write queue together when the poll ends (or when the batch fills), in one pass
//! through the state and queue locks instead of one per message.
//!
//! Only the handler's own call batches, only in its own poll ([`in_scope`] wraps the poll of the
//! handler's future, `ServerCall::head_at_first_wait`), and only within window reserved for it:
//! the first send of a poll goes the per-message way ([`StreamSender::send`]'s locked path) and
//! reserves up to [`SCOPE_RESERVE`] bytes of window for the sends after it; the scope gives back
//! what it did not use when it ends, so no window is held while the handler waits. A handler
//! that waits between messages therefore sends each at once, as before; one that sends a burst
//! takes the locks once per [`SCOPE_BATCH_MAX`] bytes of it.
//!
//! Order: a call's frames reach the queue in the order they were sent. The batched ones go in
//! ahead of any later frame of the call, because a later send in the same poll drains the batch
//! first, and the call's final status is queued after the poll that returned it. A sender moved
//! to another task (which may run on another thread while the handler's poll goes on) finds the
//! call marked as batching and waits until the scope has queued its messages
//! ([`Calls::begin_batching`](crate::driver)).
//!
//! [`StreamSender::send`]: super::StreamSender::send

use std::cell::RefCell;
use std::sync::Arc;

use crate::driver::{Flush, Protocol, Shared, StateGuard};
use crate::protocol::encode_reserved_message;
use crate::wire::{Body, CallId, FrameBatch};

/// Bytes of frames a scope holds before the next send moves them to the write queue (16 KiB):
/// the write queue may hold this much over its cap (docs/PROTOCOL.md section 9), and a handler
/// that sends a long burst without waiting still feeds the writer every 16 KiB.
pub(crate) const SCOPE_BATCH_MAX: usize = 16 * 1024;

/// Window a send in a scope reserves for the messages after it (16 KiB): one lock pass per
/// 16 KiB of messages, and at most that much window held aside per handler while it runs.
pub(crate) const SCOPE_RESERVE: usize = 16 * 1024;

/// A thread's scope: the call whose handler it is polling, and what that call's sends batched.
#[derive(Debug, Default)]
struct Scope {
    /// The connection (its `Shared`'s address) and the call whose handler is being polled;
    /// `None` outside a handler's poll.
    owner: Option<(usize, CallId)>,
    /// The call's messages, encoded, not yet in the write queue.
    frames: FrameBatch,
    /// Messages in `frames`.
    messages: usize,
    /// Message bytes in `frames`, charged to the windows.
    charged: usize,
    /// Window reserved and not used yet.
    reserved: usize,
    /// The call's mailbox is marked as batching (by the send that first reserved).
    marked: bool,
}

thread_local! {
    static SCOPE: RefCell<Scope> = RefCell::new(Scope::default());
}

fn owner_key(shared: &Arc<Shared>, call_id: CallId) -> (usize, CallId) {
    (Arc::as_ptr(shared) as usize, call_id)
}

/// Runs `poll` (the poll of `call_id`'s handler) as the call's send scope, then queues what its
/// sends batched. Inside another scope (a handler polled by another handler's poll) it runs
/// `poll` without one.
pub(crate) fn in_scope<T>(shared: &Arc<Shared>, call_id: CallId, poll: impl FnOnce() -> T) -> T {
    let key = owner_key(shared, call_id);
    let entered = SCOPE.with_borrow_mut(|scope| {
        if scope.owner.is_some() {
            return false;
        }
        scope.owner = Some(key);
        true
    });
    if !entered {
        return poll();
    }
    // Ends the scope also when the poll panics.
    let _end = End { shared, call_id };
    poll()
}

/// Ends a scope when dropped: queues its messages, gives back its unused window and wakes a
/// sender that waited for it.
struct End<'a> {
    shared: &'a Shared,
    call_id: CallId,
}

impl Drop for End<'_> {
    fn drop(&mut self) {
        let Ok(mut scope) = SCOPE.try_with(|scope| {
            let mut scope = scope.borrow_mut();
            scope.owner = None;
            Scope {
                owner: None,
                frames: std::mem::take(&mut scope.frames),
                messages: std::mem::take(&mut scope.messages),
                charged: std::mem::take(&mut scope.charged),
                reserved: std::mem::take(&mut scope.reserved),
                marked: std::mem::take(&mut scope.marked),
            }
        }) else {
            return;
        };
        if scope.messages == 0 && scope.reserved == 0 && !scope.marked {
            give_buffer_back(scope.frames);
            return;
        }
        let mut state = self.shared.lock_state();
        let mut queue = self.shared.queue.lock();
        let sent = scope.messages > 0
            && state.closed.is_none()
            && state
                .proto
                .send_reserved(queue.batch(), self.call_id, &scope.frames, scope.messages);
        let unsent = if sent { 0 } else { scope.charged };
        state.proto.return_reserved(self.call_id, scope.reserved + unsent);
        let waiting = if scope.marked {
            state.calls().end_batching(self.call_id)
        } else {
            None
        };
        // Releases both locks, then wakes the writer (no write from `Drop`).
        self.shared.flush_appended(state, queue, Flush::Wake);
        if let Some(waker) = waiting {
            waker.wake();
        }
        scope.frames.clear();
        give_buffer_back(scope.frames);
    }
}

/// Keeps a scope's batch memory on its thread for the next scope.
fn give_buffer_back(frames: FrameBatch) {
    let _ = SCOPE.try_with(|scope| {
        if let Ok(mut scope) = scope.try_borrow_mut()
            && scope.frames.buf.capacity() == 0
        {
            scope.frames = frames;
        }
    });
}

/// Encodes the message in `body` into the scope if this thread is polling `call_id`'s handler,
/// window is reserved for it and the batch has room; `true` once it is taken out of `body`.
/// No lock is taken.
pub(crate) fn try_batch<M: prost::Message>(shared: &Arc<Shared>, call_id: CallId, body: &mut Option<Body<'_, M>>) -> bool {
    let Some(Body::Inline(_, len)) = body else {
        return false;
    };
    let len = *len;
    let key = owner_key(shared, call_id);
    SCOPE.with_borrow_mut(|scope| {
        if scope.owner != Some(key) || !scope.marked || scope.reserved < len || scope.frames.len() >= SCOPE_BATCH_MAX {
            return false;
        }
        let Some(body) = body.take() else { return false };
        encode_reserved_message(&mut scope.frames, call_id, body);
        scope.reserved -= len;
        scope.charged += len;
        scope.messages += 1;
        true
    })
}

/// Whether this thread is polling `call_id`'s handler in its scope.
pub(crate) fn is_owner(shared: &Arc<Shared>, call_id: CallId) -> bool {
    let key = owner_key(shared, call_id);
    SCOPE.with_borrow(|scope| scope.owner == Some(key))
}

/// For a send of `call_id` about to go the per-message way, under the state and queue locks,
/// in its own scope: moves the messages the scope batched into `batch` (ahead of the one being
/// sent) and gives back the window it did not use, so the message that follows meets the windows
/// exactly as it would without a scope.
pub(crate) fn drain(call_id: CallId, proto: &mut Protocol, batch: &mut FrameBatch) {
    SCOPE.with_borrow_mut(|scope| {
        if scope.messages > 0 {
            if !proto.send_reserved(batch, call_id, &scope.frames, scope.messages) {
                proto.return_reserved(call_id, scope.charged);
            }
            scope.frames.clear();
            scope.messages = 0;
            scope.charged = 0;
        }
        proto.return_reserved(call_id, std::mem::take(&mut scope.reserved));
    });
}

/// After a send of `call_id` in its own scope, under the state lock: reserves window for the
/// messages after it, and marks the call as batching until the scope ends.
pub(crate) fn reserve(call_id: CallId, state: &mut StateGuard<'_>) {
    let granted = state.proto.reserve_send(call_id, SCOPE_RESERVE);
    if granted == 0 {
        return;
    }
    let mark = SCOPE.with_borrow_mut(|scope| {
        scope.reserved = granted;
        !std::mem::replace(&mut scope.marked, true)
    });
    if mark {
        state.calls().begin_batching(call_id);
    }
}
