//! State shared by a connection's reader task, writer task and callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::DriverConfig;
use super::calls::{Calls, Record};
use super::identity::Identity;
use super::lane::Lane;
use super::slot_waiters::{SlotWait, SlotWaiters};
use super::write_queue::{Flush, QueueGuard, Unlocked, WriteQueue};
use crate::net::Stream;
use crate::protocol::{Connection, Role};
use crate::stats::Stats;
use crate::status::{Code, Status};
use crate::sync::{Mutex, MutexGuard, lock};
use crate::wire::{CallHead, CallId};

/// A call the protocol accepted, waiting for its handler.
#[derive(Debug)]
pub(crate) struct AcceptedCall {
    pub(crate) call_id: CallId,
    pub(crate) head: CallHead,
    pub(crate) message: Option<Bytes>,
    pub(crate) received_at: Instant,
}

impl AcceptedCall {
    /// The write-queue lane of the call's answer, by its priority.
    pub(crate) fn lane(&self) -> Lane {
        Lane::for_priority(self.head.priority)
    }
}

/// What a server does with an accepted call; implemented by the server's router so the driver
/// needs no knowledge of services.
pub(crate) trait Dispatch: Send + Sync + 'static {
    /// Runs or starts the handler for `call`. Called without the state lock held, on the
    /// reader task; a spawned handler must be registered with [`Shared::register_handler`].
    fn dispatch(&self, shared: &Arc<Shared>, call: AcceptedCall);

    /// A call that [`Dispatch::dispatch`] counted in the server's load, on `stripe` of the
    /// count, ended (called once per counted call). Reached through the connection's
    /// `dispatch`, so a call holds no pointer of its own to the count.
    fn end_load(&self, _stripe: u8) {}

    /// The server's calls in flight over every connection, for a load report (0 when it does
    /// not count them).
    fn load_in_flight(&self) -> u32 {
        0
    }
}

/// The protocol state machine as the driver runs it: its call table keeps the driver's
/// [`Record`] of each call.
pub(crate) type Protocol = Connection<Record<AbortHandle>>;

/// The mutable state of a connection, behind one lock.
#[derive(Debug)]
pub(crate) struct State {
    /// The protocol state machine; its call table keeps the driver's record of each call
    /// (outcome, mailbox, handler) beside the call's protocol state.
    pub(crate) proto: Protocol,
    /// Why the connection ended, once it has.
    pub(crate) closed: Option<Status>,
}

impl State {
    /// The driver's records of the calls, in the protocol's call table.
    pub(crate) fn calls(&mut self) -> &mut Calls<AbortHandle> {
        self.proto.calls()
    }
}

/// The connection state, locked. Writing to the socket needs it released: [`Shared::flush`]
/// consumes it.
pub(crate) type StateGuard<'a> = MutexGuard<'a, State>;

/// A connection as seen by its tasks and callers.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) queue: WriteQueue,
    /// Chunk bytes the peer acknowledged, for the writer's chunk window (`chunk_window.rs`).
    pub(crate) chunk_window: super::chunk_window::ChunkWindow,
    /// The chunk payload the writer cuts frames over it into (`ConnectionConfig::chunk_size`).
    pub(crate) chunk_size: usize,
    pub(crate) stats: Arc<Stats>,
    /// Signalled when a call slot frees, the write queue drains, or the connection ends.
    pub(crate) capacity: Notify,
    /// Callers waiting on `capacity` for a call slot: a freed slot signals only when there are
    /// any, so a call's end costs no `notify_one` on a connection where nobody waits.
    slot_waiters: SlotWaiters,
    /// Signalled (to every waiter) when the write queue goes under its cap, or the connection
    /// ends: what producers of handler output and stream messages wait for. Apart from
    /// `capacity`, whose single-waiter wake-ups for call slots a room waiter must not take.
    pub(crate) room: Notify,
    /// Signalled when the handshake completes or fails.
    pub(crate) established: Notify,
    /// Tells the reader to stop at once (a hard close).
    pub(crate) shutdown: Notify,
    /// Signalled when the connection has ended.
    pub(crate) closed: Notify,
    pub(crate) write_queue_cap: usize,
    /// How long the writer waits for a socket that takes nothing before it gives up.
    pub(crate) write_stall_timeout: std::time::Duration,
    pub(crate) role: Role,
    /// The connection's id and peer, shared with the calls' contexts.
    pub(crate) identity: Arc<Identity>,
    /// (client) Every `Client` handle is gone: the connection closes once its last call ends.
    released: AtomicBool,
    pub(crate) dispatch: Option<Arc<dyn Dispatch>>,
    pub(crate) pool: crate::buf::BufferPool,
    /// (busy-poll mode) The connection's poller, which a spinning caller polls too.
    pub(crate) poller: std::sync::OnceLock<std::sync::Weak<super::poller::Poller>>,
    /// Registered with a `Metrics`; dropped with this state, it moves the final counters to the
    /// ended connections' totals.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::ConnectionMetrics>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("role", &self.role)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The metrics this connection records into, if any.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn metrics(&self) -> Option<&crate::metrics::Metrics> {
        self.metrics.as_ref().map(|connection| &connection.metrics)
    }

    /// Where this connection's calls record their metrics.
    #[inline]
    pub(crate) fn recorder(&self) -> crate::observe::Recorder<'_> {
        crate::observe::Recorder {
            #[cfg(feature = "metrics")]
            metrics: self.metrics(),
            _lifetime: std::marker::PhantomData,
        }
    }

    pub(crate) fn lock_state(&self) -> StateGuard<'_> {
        lock(&self.state)
    }

    /// Moves the protocol's pending control frames into the write queue; returns whether there
    /// were any. They leave with the next flush.
    pub(crate) fn queue_control(&self, state: &mut State) -> bool {
        if !state.proto.has_transmit() {
            return false;
        }
        let mut queue = self.queue.lock();
        let frames = state.proto.poll_transmit(&mut queue.batch().buf);
        queue.batch().frames += frames;
        true
    }

    /// Queues the protocol's pending control frames, releases the state and wakes the writer.
    pub(crate) fn send_control(&self, mut state: StateGuard<'_>) {
        if self.queue_control(&mut state) {
            self.flush(state, Flush::Wake);
        }
    }

    /// Sends frames queued while `state` was locked, as `flush` says. The state lock is released
    /// first: no caller ever writes to the socket (or wakes a thread) while holding it, which the
    /// signature makes impossible to get wrong.
    pub(crate) fn flush(&self, state: StateGuard<'_>, flush: Flush) {
        drop(state);
        if self.queue.flush(flush, Unlocked::assert()) {
            self.room_opened();
        }
    }

    /// Sends frames just appended under `queue` while `state` was locked, as `flush` says. A
    /// [`Flush::Wake`] takes the writer's waker under the queue lock already held (one lock
    /// fewer per streamed message than [`Shared::flush`]) and wakes it once both locks are
    /// released; other flushes go through [`Shared::flush`].
    pub(crate) fn flush_appended(&self, state: StateGuard<'_>, mut queue: QueueGuard<'_>, flush: Flush) {
        if flush != Flush::Wake {
            drop(queue);
            return self.flush(state, flush);
        }
        let writer = queue.take_writer_waker();
        drop(queue);
        drop(state);
        if let Some(writer) = writer {
            writer.wake();
        }
    }

    /// `freed` call slots came free: wakes as many callers waiting for one. Called after the
    /// state lock that freed them was released (`slot_waiters.rs` says why no waiter is missed).
    pub(crate) fn call_slots_freed(&self, freed: usize) {
        if freed == 0 || !self.slot_waiters.any() {
            return;
        }
        for _ in 0..freed {
            self.capacity.notify_one();
        }
    }

    /// Counts a caller waiting for a call slot until the returned guard drops: call it before
    /// taking the state lock for the look that precedes the wait.
    pub(crate) fn wait_for_capacity(&self) -> SlotWait<'_> {
        self.slot_waiters.wait()
    }

    /// Wakes everyone waiting for write-queue room: the queue just went under its cap.
    pub(crate) fn room_opened(&self) {
        self.capacity.notify_waiters();
        self.room.notify_waiters();
    }

    /// Ends the connection: every waiting call fails with `status`, every handler is dropped,
    /// pending control frames (a GoAway) are flushed and the writer stops after them.
    pub(crate) fn terminate(&self, status: Status) {
        let mut wakers: Vec<Waker> = Vec::new();
        {
            let mut state = self.lock_state();
            if state.closed.is_some() {
                return;
            }
            tracing::debug!(code = %status.code(), message = status.message(), "connection closing");
            state.closed = Some(status.clone());
            self.stats.closed.store(true, Ordering::Release);
            let mut handlers = Vec::new();
            state.calls().fail_all(&status, &mut wakers, &mut handlers);
            for handler in handlers {
                handler.abort();
                self.stats.call_finished(Code::Cancelled);
            }
            self.queue_control(&mut state);
        }
        self.queue.close();
        self.room_opened();
        self.established.notify_waiters();
        self.shutdown.notify_one();
        self.closed.notify_waiters();
        self.identity.close();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Records a spawned handler so a cancel or a lost connection can drop it; aborts it at once
    /// if its call already ended.
    pub(crate) fn register_handler(&self, call_id: CallId, handle: AbortHandle) {
        let mut state = self.lock_state();
        if state.closed.is_none() && state.proto.is_call_open(call_id) {
            state.calls().set_handler(call_id, handle);
        } else {
            // Cancelled (or the connection ended) before the handler was registered.
            handle.abort();
            self.stats.call_finished(Code::Cancelled);
        }
    }

    /// Why the connection ended, if it has.
    pub(crate) fn closed_status(&self) -> Option<Status> {
        self.lock_state().closed.clone()
    }

    /// Waits until the connection has ended.
    pub(crate) async fn wait_closed(&self) {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock_state().closed.is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Starts a graceful close: a GoAway with the last accepted call; calls in flight finish,
    /// then the connection closes.
    pub(crate) fn go_away(&self, reason: &'static str) {
        self.identity.drain();
        let mut state = self.lock_state();
        state.proto.go_away(reason);
        self.send_control(state);
        self.close_if_drained();
    }

    /// Closes the connection once its last call has ended, however it ended: on a server after
    /// a GoAway, on a client after every `Client` handle was dropped.
    pub(crate) fn close_if_drained(&self) {
        if self.role == Role::Client && !self.released.load(Ordering::Acquire) {
            return;
        }
        let drained = self.is_drained(&self.lock_state());
        if drained {
            self.close_drained();
        }
    }

    /// Whether the connection has nothing left to do ([`Shared::close_if_drained`]'s rule), read
    /// under a state lock the caller already holds: an answer that ends a call checks it in the
    /// same pass, and calls [`Shared::close_drained`] once the lock is released.
    pub(crate) fn is_drained(&self, state: &State) -> bool {
        let released = self.role == Role::Client && self.released.load(Ordering::Acquire);
        state.proto.open_calls() == 0 && (released || state.proto.is_draining())
    }

    /// Closes a drained connection (with no lock held).
    pub(crate) fn close_drained(&self) {
        if self.role == Role::Client {
            self.terminate(Status::cancelled("the client was dropped: every handle to this connection is gone"));
        } else {
            self.queue.close();
        }
    }

    /// (client) The last `Client` handle was dropped: no call can start any more, so the
    /// connection closes now, or when the streams still open end.
    pub(crate) fn release(&self) {
        self.released.store(true, Ordering::Release);
        self.close_if_drained();
    }

    /// Waits until the write queue has room for a frame in `lane` (or the connection ends):
    /// under its cap, or for the high lane, under that lane's own room.
    pub(crate) async fn wait_for_queue_room(&self, lane: Lane) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.queue.has_room_in(lane) || self.lock_state().closed.is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// Starts the reader and writer tasks of a connection over `stream`.
pub(crate) fn spawn_connection(stream: Stream, role: Role, config: &DriverConfig, dispatch: Option<Arc<dyn Dispatch>>) -> Arc<Shared> {
    spawn_connection_at(stream, role, config, dispatch, Instant::now())
}

/// [`spawn_connection`] for a connection set up at `started`: a TLS connection's handshake
/// timeout counts from its accept, so the TLS and Volley handshakes share one timeout.
pub(crate) fn spawn_connection_at(
    stream: Stream,
    role: Role,
    config: &DriverConfig,
    dispatch: Option<Arc<dyn Dispatch>>,
    started: Instant,
) -> Arc<Shared> {
    #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
    let mut identity = Identity::new(stream.peer_address());
    // Calls stamp their heads off the monotonic clock; pick up any step of the wall clock.
    crate::clock::wall_clock().resync();
    let stats = Arc::new(Stats::default());
    #[cfg(feature = "tls")]
    if let Stream::Tls(tls) = &stream {
        tls.attach_stats(&stats);
        identity.set_tls_peer(tls.peer_identity().cloned());
    }
    #[cfg(feature = "quic")]
    if let Stream::Quic(quic) = &stream {
        identity.set_tls_peer(quic.peer_identity());
    }
    let identity = Arc::new(identity);
    let stream = Arc::new(if config.busy_poll.is_some() { stream.into_polled() } else { stream });
    let now = started;
    #[cfg(feature = "metrics")]
    let metrics = config.metrics.as_ref().map(|metrics| metrics.connection_opened(role, &stats));
    let chunk_size = config.connection.chunk_size.max(crate::wire::MIN_CHUNK_PAYLOAD);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            proto: Connection::with_records(role, config.connection.clone(), now),
            closed: None,
        }),
        // The write buffers start empty and grow to what the connection writes: a connection that
        // only handshakes holds a few bytes of them, not a pooled 64 KiB buffer.
        chunk_window: super::chunk_window::ChunkWindow::default(),
        chunk_size,
        queue: WriteQueue::new(
            bytes::BytesMut::new(),
            Some(stream.clone()),
            stats.clone(),
            config.write_queue_cap(),
            chunk_size,
        ),
        stats,
        capacity: Notify::new(),
        slot_waiters: SlotWaiters::default(),
        room: Notify::new(),
        established: Notify::new(),
        shutdown: Notify::new(),
        closed: Notify::new(),
        write_queue_cap: config.write_queue_cap(),
        write_stall_timeout: config.write_stall_timeout(),
        role,
        identity,
        released: AtomicBool::new(false),
        dispatch,
        pool: config.pool.clone(),
        poller: std::sync::OnceLock::new(),
        #[cfg(feature = "metrics")]
        metrics,
    });
    // The preface and settings go out first.
    {
        let mut state = shared.lock_state();
        shared.queue_control(&mut state);
    }
    tokio::spawn(super::writer::run(shared.clone(), stream.clone()));
    match config.busy_poll {
        Some(busy_poll) => super::poller::spawn(shared.clone(), stream, busy_poll),
        None => drop(tokio::spawn(super::reader::run(shared.clone(), stream))),
    }
    shared
}
