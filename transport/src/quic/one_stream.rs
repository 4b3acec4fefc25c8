//! The one-stream mapping (ALPN `volley/1`): one bidirectional QUIC stream in the shared-socket
//! model of [`crate::net::Stream`].
//!
//! A connection's reader, writer and callers share a [`crate::net::Stream`] through `&self`
//! readiness and non-blocking `try_read_buf`/`try_write_vectored`. quinn's streams are
//! `&mut self` futures instead; this adapter keeps each half behind a small mutex held only to
//! move bytes in memory (quinn's own state lock is taken inside; the UDP syscalls run on quinn's
//! connection task, never under these locks).
//!
//! - **Reads.** [`QuicStream::poll_read_ready`] polls quinn for the next chunk with the reader's
//!   waker and keeps it; [`QuicStream::try_read_buf`] copies kept and further chunks into the
//!   caller's buffer, polling quinn with a no-op waker. That is sound because the reader always
//!   waits on `readable()` again after a `WouldBlock`, which registers its real waker.
//! - **Writes.** [`QuicStream::try_write_vectored`] hands each slice to quinn with a no-op waker
//!   (quinn copies it into its send buffer); a flow-control block reports `WouldBlock`, and
//!   `writable()` registers the writer's real waker with an empty write, which quinn reports
//!   blocked exactly when a real one would be.
//! - **Close.** quinn closes a connection abruptly (unacknowledged stream data lost) when its last
//!   handle drops, so dropping a [`QuicStream`] hands its send half to a task that waits, up to
//!   [`CLOSE_LINGER`], for the peer to acknowledge what was written, then closes the connection
//!   with [`crate::quic::CLOSE_DONE`]. A reset stream closes at once with
//!   [`crate::quic::CLOSE_ABANDONED`].

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::quic::{CLOSE_ABANDONED, CLOSE_DONE};
use crate::sync::{Mutex, lock};

/// Bytes asked of quinn per chunk at most (64 KiB, a pooled read buffer's size).
const READ_CHUNK: usize = 64 * 1024;

/// How long a dropped stream waits for the peer to acknowledge its last bytes before the
/// connection closes anyway (2 s): a graceful close reaches the peer on any live link, and a dead
/// peer holds nothing for longer than this.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// A QUIC connection's one bidirectional stream carrying every frame.
pub(crate) struct OneStream {
    connection: quinn::Connection,
    rx: Mutex<Received>,
    /// `None` only once dropped (handed to the closing task).
    tx: Mutex<Sending>,
}

impl std::fmt::Debug for OneStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneStream").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Received {
    stream: quinn::RecvStream,
    /// A chunk taken from quinn and not yet copied out.
    pending: Bytes,
    /// The peer finished the stream and every byte was read.
    finished: bool,
    /// The stream or the connection failed: reported once the pending bytes are out.
    failed: Option<quinn::ReadError>,
}

#[derive(Debug)]
struct Sending {
    stream: Option<quinn::SendStream>,
    /// `reset_on_close` was asked: the closing task resets instead of waiting.
    abandon: bool,
}

impl OneStream {
    /// Wraps an established connection's stream.
    pub(crate) fn new(connection: quinn::Connection, send: quinn::SendStream, recv: quinn::RecvStream) -> Self {
        Self {
            connection,
            rx: Mutex::new(Received {
                stream: recv,
                pending: Bytes::new(),
                finished: false,
                failed: None,
            }),
            tx: Mutex::new(Sending {
                stream: Some(send),
                abandon: false,
            }),
        }
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut rx = lock(&self.rx);
        if rx.has_news() {
            return Poll::Ready(Ok(()));
        }
        match rx.poll_chunk(cx, READ_CHUNK) {
            Poll::Ready(()) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Copies what quinn holds into `buf`'s spare capacity; `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is here.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut rx = lock(&self.rx);
        rx.read_with(buf.capacity() - buf.len(), |bytes| buf.extend_from_slice(bytes))
    }

    /// Like [`Self::try_read_buf`] into a slice (the lingering close reads this way, to discard).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rx = lock(&self.rx);
        let mut at = 0;
        rx.read_with(buf.len(), |bytes| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        })
    }

    /// Hands `bufs` to quinn's send buffer as far as flow control allows; `WouldBlock` when it
    /// takes nothing.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tx = lock(&self.tx);
        let Some(send) = tx.stream.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let mut cx = Context::from_waker(Waker::noop());
        let mut written = 0;
        for buf in bufs.iter().filter(|buf| !buf.is_empty()) {
            match pin!(send.write(buf)).poll(&mut cx) {
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if n < buf.len() {
                        break;
                    }
                }
                Poll::Ready(Err(err)) if written == 0 => return Err(write_error(err)),
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        if written == 0 && bufs.iter().any(|buf| !buf.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(written)
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut tx = lock(&self.tx);
        let Some(send) = tx.stream.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        // An empty write is blocked exactly when a real one would be, and registers `cx` then.
        // An error is ready too: the next write reports it.
        match pin!(send.write(&[])).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Finishes the stream: the peer reads end-of-stream after everything written so far.
    pub(crate) fn finish(&self) {
        if let Some(send) = lock(&self.tx).stream.as_mut() {
            let _ = send.finish();
        }
    }

    /// Makes the coming close a reset: unsent bytes are discarded.
    pub(crate) fn reset_on_close(&self) {
        lock(&self.tx).abandon = true;
    }
}

impl OneStream {
    /// Closes the connection: at once with [`CLOSE_ABANDONED`] after `reset_on_close`, otherwise
    /// once the peer acknowledged what was written (or after [`CLOSE_LINGER`]) with
    /// [`CLOSE_DONE`]; `endpoint` (a client's own) is kept until then.
    pub(crate) fn close(&mut self, endpoint: Option<quinn::Endpoint>) {
        let tx = self.tx.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut send) = tx.stream.take() else { return };
        let connection = self.connection.clone();
        if tx.abandon {
            let _ = send.reset(CLOSE_ABANDONED);
            connection.close(CLOSE_ABANDONED, b"abandoned");
            return;
        }
        // Without a runtime (a stream dropped after its runtime), close at once.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.close(CLOSE_DONE, b"done");
            return;
        };
        let _ = send.finish();
        runtime.spawn(async move {
            // Resolves once the peer acknowledged every byte, or stopped reading, or the
            // connection ended.
            let _ = tokio::time::timeout(CLOSE_LINGER, send.stopped()).await;
            connection.close(CLOSE_DONE, b"done");
            if let Some(endpoint) = endpoint {
                let _ = tokio::time::timeout(CLOSE_LINGER, endpoint.wait_idle()).await;
            }
        });
    }
}

impl Received {
    fn has_news(&self) -> bool {
        !self.pending.is_empty() || self.finished || self.failed.is_some()
    }

    /// Polls quinn for the next chunk (up to `max` bytes) and keeps what it yields; `Ready` when
    /// something is news.
    fn poll_chunk(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<()> {
        match pin!(self.stream.read_chunk(max, true)).poll(cx) {
            Poll::Ready(Ok(Some(chunk))) => self.pending = chunk.bytes,
            Poll::Ready(Ok(None)) => self.finished = true,
            Poll::Ready(Err(err)) => self.failed = Some(err),
            Poll::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }

    /// Gives `copy` up to `room` bytes, kept ones first, then what quinn has now.
    fn read_with(&mut self, room: usize, mut copy: impl FnMut(&[u8])) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut read = 0;
        while read < room {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(room - read);
                copy(&self.pending.split_to(n));
                read += n;
                continue;
            }
            if self.finished {
                return Ok(read);
            }
            if let Some(err) = &self.failed {
                return if read > 0 { Ok(read) } else { Err(read_error(err)) };
            }
            if self.poll_chunk(&mut cx, (room - read).min(READ_CHUNK)).is_pending() {
                break;
            }
        }
        if read == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(read)
    }
}

/// A read failure as the driver sees it: the connection is lost, with quinn's reason.
fn read_error(err: &quinn::ReadError) -> io::Error {
    let kind = match err {
        quinn::ReadError::ConnectionLost(quinn::ConnectionError::TimedOut) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::ConnectionReset,
    };
    io::Error::new(kind, format!("QUIC: {err}"))
}

fn write_error(err: quinn::WriteError) -> io::Error {
    let kind = match err {
        quinn::WriteError::ConnectionLost(quinn::ConnectionError::TimedOut) => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::BrokenPipe,
    };
    io::Error::new(kind, format!("QUIC: {err}"))
}
