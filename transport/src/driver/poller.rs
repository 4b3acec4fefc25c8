//! The busy-poll receive mode's driver: a dedicated OS thread per connection that reads the
//! non-blocking socket in a loop, without the reactor, and runs the reader's read pass
//! (`reader::handle_pass`, `dispatch_accepted`, `end_pass`) on what it reads. Inline handlers
//! run on it and their answers are written from it. Used instead of the reader task when the
//! connection's [`DriverConfig`](super::DriverConfig) has `busy_poll` set.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use socket2::SockRef;

use super::Shared;
use super::read_buffer::ReadBuffers;
use super::reader::{Scratch, closed_status, dispatch_accepted, end_pass, eof_status, handle_pass};
use crate::busy_poll::idle::Idler;
use crate::busy_poll::{BusyPoll, POLLER_THREAD_NAME, apply_kernel_busy_poll, pin_current_thread};
use crate::net::Stream;
use crate::protocol::Role;
use crate::stats::Stats;
use crate::status::Status;

/// How often a poller reads the protocol's next deadline again while nothing arrives (1 ms): a
/// deadline set by a caller meanwhile (a call's timeout) fires at most this late.
const DEADLINE_RECHECK: Duration = Duration::from_millis(1);

/// Starts the poller of a connection. Streams without a plain socket (TLS, QUIC) and a failed
/// thread spawn fall back to the reader task, with a warning.
pub(super) fn spawn(shared: Arc<Shared>, stream: Arc<Stream>, config: BusyPoll) {
    if !matches!(&*stream, Stream::Tcp(_) | Stream::Unix(_)) {
        tracing::warn!("busy polling needs a plain TCP or Unix socket; this connection (TLS or QUIC) uses the reader task");
        tokio::spawn(super::reader::run(shared, stream));
        return;
    }
    // The poller ends with the connection, or when the runtime it serves shuts down: a task on
    // that runtime clears `alive` when the runtime drops it.
    let alive = Arc::new(AtomicBool::new(true));
    let watch = tokio::spawn(RuntimeAlive(alive.clone()).watch());
    let runtime = tokio::runtime::Handle::current();
    let (thread_shared, thread_stream) = (shared.clone(), stream.clone());
    let spawned = std::thread::Builder::new().name(POLLER_THREAD_NAME.into()).spawn(move || {
        let _runtime = runtime.enter();
        run(&thread_shared, &thread_stream, config, &alive);
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

fn run(shared: &Arc<Shared>, stream: &Stream, config: BusyPoll, alive: &AtomicBool) {
    if let Some(cpu) = config.cpu
        && let Err(err) = pin_current_thread(cpu)
    {
        tracing::warn!("busy-poll thread not pinned: {err}");
    }
    let socket = match stream {
        Stream::Tcp(s) => SockRef::from(s),
        Stream::Unix(s) => SockRef::from(s),
        #[allow(unreachable_patterns)]
        _ => unreachable!("spawn checked the stream is a plain socket"),
    };
    if let (Some(kernel), Stream::Tcp(tcp)) = (config.kernel, stream) {
        let applied = apply_kernel_busy_poll(SockRef::from(tcp), kernel);
        tracing::info!(
            so_busy_poll = ?applied.micros,
            so_prefer_busy_poll = ?applied.prefer,
            refused = applied.warnings.len(),
            "busy-poll socket options read back"
        );
    }
    let mut buffers = ReadBuffers::new(shared.pool.clone());
    let status = poll_loop(shared, &socket, &mut buffers, config, alive);
    shared.terminate(status);
    buffers.release();
}

/// Runs until the connection ends; returns the status calls still open fail with.
fn poll_loop(shared: &Arc<Shared>, socket: &SockRef<'_>, buffers: &mut ReadBuffers, config: BusyPoll, alive: &AtomicBool) -> Status {
    let mut scratch = Scratch::new();
    let mut idler = Idler::new(config.idle);
    let mut deadline = shared.lock_state().proto.poll_timeout();
    let mut recheck_at = Instant::now() + DEADLINE_RECHECK;
    loop {
        if shared.stats.closed.load(Ordering::Acquire) {
            return closed_status(shared, "the connection was closed locally");
        }
        if !alive.load(Ordering::Acquire) {
            return Status::unavailable("the tokio runtime this connection was opened on shut down");
        }
        // As the reader task: a server stops reading from a client that does not read its
        // answers until the writer has drained.
        if shared.role == Role::Server && shared.queue.queued_bytes() >= shared.write_queue_cap {
            idler.idle();
            continue;
        }
        buffers.make_room();
        let buf = buffers.current();
        match recv(socket, buf) {
            Ok(0) => return eof_status(shared, buf.is_empty()),
            Ok(n) => Stats::add(&shared.stats.bytes_in, n as u64),
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                let now = Instant::now();
                if deadline.is_some_and(|at| now >= at) {
                    let mut state = shared.lock_state();
                    let result = state.proto.handle_timeout(now);
                    shared.send_control(state);
                    if let Err(err) = result {
                        return super::reader::connection_status(&err);
                    }
                    shared.close_if_drained();
                    deadline = shared.lock_state().proto.poll_timeout();
                } else if now >= recheck_at || idler.is_parking() {
                    deadline = shared.lock_state().proto.poll_timeout();
                    recheck_at = now + DEADLINE_RECHECK;
                }
                idler.idle();
                continue;
            }
            Err(err) => {
                return Status::unavailable(format!("connection lost while reading: {err}; retry on a new connection"));
            }
        }
        let result = handle_pass(shared, buf, &mut scratch);
        while !dispatch_accepted(shared, &mut scratch) {
            // The write queue is full: wait for the writer task to drain it (no async wait on
            // this thread; the strategy decides how).
            while shared.queue.queued_bytes() >= shared.write_queue_cap && !shared.stats.closed.load(Ordering::Acquire) {
                idler.idle();
            }
            if shared.stats.closed.load(Ordering::Acquire) {
                return closed_status(shared, "the connection was closed locally");
            }
            shared.queue.cork();
        }
        if let Err(status) = end_pass(shared, result) {
            return status;
        }
        deadline = shared.lock_state().proto.poll_timeout();
        idler.reset();
    }
}

/// One non-blocking `recv` into the spare capacity of `buf`, straight to the kernel: tokio's
/// `try_read` would first consult the reactor's readiness, which only a woken reactor updates.
fn recv(socket: &SockRef<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    let n = socket.recv_with_flags(buf.spare_capacity_mut(), libc::MSG_DONTWAIT)?;
    let len = buf.len() + n;
    debug_assert!(len <= buf.capacity());
    // SAFETY: `recv` initialised the first `n` bytes of the spare capacity, and `n` is at most
    // its length, so `len` bytes of `buf` are initialised and within its capacity.
    #[allow(unsafe_code)]
    unsafe {
        buf.set_len(len);
    }
    Ok(n)
}
