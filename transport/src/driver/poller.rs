//! The busy-poll receive mode's driver: a dedicated OS thread per connection that reads the
//! non-blocking socket in a loop, without the reactor, and runs the reader's read pass
//! (`reader::handle_pass`, `dispatch_accepted`, `end_pass`) on what it reads. Inline handlers
//! run on it and their answers are written from it. Used instead of the reader task when the
//! connection's [`DriverConfig`](super::DriverConfig) has `busy_poll` set.
//!
//! Reading is a role, not a thread: whoever holds the [`Poller`]'s read side (a `try_lock`,
//! never waited for) polls. The poller thread takes it in its loop; a client caller spinning
//! on its own call (`Client::spin_on`) takes it too, so that the thread that waits for the
//! response also reads it, and no thread hands it to another.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::Shared;
use super::read_buffer::ReadBuffers;
use super::reader::{
    Scratch, closed_status, connection_status, dispatch_accepted, dispatch_held, end_pass, eof_status, handle_pass, must_stop_reading,
};
use crate::busy_poll::idle::Idler;
use crate::busy_poll::{BusyPoll, POLLER_THREAD_NAME, apply_kernel_busy_poll, pin_current_thread};
use crate::net::Stream;
use crate::stats::Stats;
use crate::status::Status;

/// How often a poller reads the protocol's next deadline again while nothing arrives (1 ms): a
/// deadline set by a caller meanwhile (a call's timeout) fires at most this late.
const DEADLINE_RECHECK: Duration = Duration::from_millis(1);

/// The read side of a busy-polled connection.
pub(crate) struct Poller {
    shared: Arc<Shared>,
    stream: Arc<Stream>,
    read: Mutex<ReadSide>,
    /// Cleared when the tokio runtime the connection was opened on shuts down.
    alive: Arc<AtomicBool>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

/// What the one reader at a time works with.
struct ReadSide {
    /// Taken (and returned to the pool) when the connection ends.
    buffers: Option<ReadBuffers>,
    scratch: Scratch,
    /// The protocol's next deadline, as last read.
    deadline: Option<Instant>,
    recheck_at: Instant,
    ended: bool,
}

/// What one [`Poller::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Polled {
    /// Read and handled bytes (or fired a timer).
    Work,
    /// The socket had nothing.
    Nothing,
    /// Another thread holds the read side.
    Busy,
    /// The connection has ended.
    Ended,
}

/// Starts the poller of a connection. Streams without a plain socket (TLS, QUIC) and a failed
/// thread spawn fall back to the reader task, with a warning.
pub(super) fn spawn(shared: Arc<Shared>, stream: Arc<Stream>, config: BusyPoll) {
    if !matches!(&*stream, Stream::Polled(_)) {
        tracing::warn!("busy polling needs a plain TCP or Unix socket; this connection (TLS, QUIC) uses the reader task");
        tokio::spawn(super::reader::run(shared, stream));
        return;
    }
    // The poller ends with the connection, or when the runtime it serves shuts down: a task on
    // that runtime clears `alive` when the runtime drops it.
    let alive = Arc::new(AtomicBool::new(true));
    let watch = tokio::spawn(RuntimeAlive(alive.clone()).watch());
    let deadline = shared.lock_state().proto.poll_timeout();
    let poller = Arc::new(Poller {
        read: Mutex::new(ReadSide {
            buffers: Some(ReadBuffers::new(shared.pool.clone()).frame_sized(stream.is_unix())),
            scratch: Scratch::new(),
            deadline,
            recheck_at: Instant::now() + DEADLINE_RECHECK,
            ended: false,
        }),
        shared: shared.clone(),
        stream: stream.clone(),
        alive,
    });
    // A weak link, so the connection's state does not keep its poller (which holds the state)
    // alive: the poller lives as long as its thread.
    let _ = shared.poller.set(Arc::downgrade(&poller));
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new().name(POLLER_THREAD_NAME.into()).spawn(move || {
        let _runtime = runtime.enter();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| poller.run(config)));
        if run.is_err() {
            // An inline handler panicked on this thread: the connection cannot go on.
            poller
                .shared
                .terminate(Status::internal("a handler panicked on the connection's poller thread"));
        }
        watch.abort();
    });
    if let Err(err) = spawned {
        tracing::warn!("could not start a poller thread ({err}); this connection uses the reader task");
        tokio::spawn(super::reader::run(shared, stream));
    }
}

/// Clears its flag when dropped: by the runtime at shutdown, or when the poller aborts it.
struct RuntimeAlive(Arc<AtomicBool>);

impl RuntimeAlive {
    async fn watch(self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for RuntimeAlive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Poller {
    /// The poller thread: set up, then poll until the connection ends.
    fn run(&self, config: BusyPoll) {
        if let Some(cpu) = config.cpu
            && let Err(err) = pin_current_thread(cpu)
        {
            tracing::warn!("busy-poll thread not pinned: {err}");
        }
        if let (Some(kernel), Stream::Polled(polled)) = (config.kernel, &*self.stream)
            && polled.is_tcp()
        {
            let applied = apply_kernel_busy_poll(polled.socket(), kernel);
            tracing::info!(
                so_busy_poll = ?applied.micros,
                so_prefer_busy_poll = ?applied.prefer,
                refused = applied.warnings.len(),
                "busy-poll socket options read back"
            );
        }
        let mut idler = Idler::new(config.idle);
        loop {
            match self.poll() {
                Polled::Work => idler.reset(),
                Polled::Nothing | Polled::Busy => idler.idle(),
                Polled::Ended => return,
            }
        }
    }

    /// Polls the socket once and handles what it read, if no other thread is reading.
    pub(crate) fn poll(&self) -> Polled {
        let mut read = match self.read.try_lock() {
            Ok(read) => read,
            Err(TryLockError::WouldBlock) => return Polled::Busy,
            // A panic while reading (an inline handler's): the connection is unusable.
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut read = poisoned.into_inner();
                self.end(&mut read, Status::internal("a handler panicked on the connection's poller"));
                return Polled::Ended;
            }
        };
        if read.ended {
            return Polled::Ended;
        }
        match self.poll_locked(&mut read) {
            Ok(true) => Polled::Work,
            Ok(false) => Polled::Nothing,
            Err(status) => {
                self.end(&mut read, status);
                Polled::Ended
            }
        }
    }

    fn end(&self, read: &mut ReadSide, status: Status) {
        read.ended = true;
        self.shared.terminate(status);
        if let Some(buffers) = read.buffers.take() {
            buffers.release();
        }
    }

    /// One poll with the read side held: `Ok(true)` when it read or fired a timer, `Err` with
    /// the status calls still open fail with once the connection ends.
    fn poll_locked(&self, read: &mut ReadSide) -> Result<bool, Status> {
        let shared = &self.shared;
        if shared.stats.closed.load(Ordering::Acquire) {
            return Err(closed_status(shared, "the connection was closed locally"));
        }
        if !self.alive.load(Ordering::Acquire) {
            return Err(Status::unavailable("the tokio runtime this connection was opened on shut down"));
        }
        let ReadSide {
            buffers,
            scratch,
            deadline,
            recheck_at,
            ..
        } = read;
        // As the reader task: calls held back at the write queue's cap are dispatched once it has
        // room, and a server stops reading from a client that does not read its answers.
        dispatch_held(shared, scratch)?;
        if must_stop_reading(shared, scratch) {
            return Ok(false);
        }
        let Some(buffers) = buffers.as_mut() else {
            return Err(closed_status(shared, "the connection was closed locally"));
        };
        buffers.make_room(scratch.incomplete_frame_len);
        let buf = buffers.current();
        // A direct `recv`: tokio's `try_read` would first consult the reactor's readiness,
        // which only a woken reactor updates (and a polled socket registers none).
        match self.stream.try_read_buf(buf) {
            Ok(0) => return Err(eof_status(shared, buf.is_empty())),
            Ok(n) => Stats::add(&shared.stats.bytes_in, n as u64),
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                let now = Instant::now();
                if deadline.is_some_and(|at| now >= at) {
                    let mut state = shared.lock_state();
                    let result = state.proto.handle_timeout(now);
                    shared.send_control(state);
                    result.map_err(|err| connection_status(&err))?;
                    shared.close_if_drained();
                    *deadline = shared.lock_state().proto.poll_timeout();
                    return Ok(true);
                }
                if now >= *recheck_at {
                    *deadline = shared.lock_state().proto.poll_timeout();
                    *recheck_at = now + DEADLINE_RECHECK;
                }
                return Ok(false);
            }
            Err(err) => {
                return Err(Status::unavailable(format!(
                    "connection lost while reading: {err}; retry on a new connection"
                )));
            }
        }
        let result = handle_pass(shared, buf, scratch);
        // At the cap the calls not dispatched stay held until room opens.
        dispatch_accepted(shared, scratch);
        end_pass(shared, result)?;
        *deadline = shared.lock_state().proto.poll_timeout();
        Ok(true)
    }
}
