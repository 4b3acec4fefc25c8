//! The per-call stream mapping (ALPN `volley-quic/2`, docs/PROTOCOL.md "QUIC"): one QUIC stream
//! per call and a control stream, seen by the driver as the one byte stream it reads and writes
//! on TCP. The sans-IO core and the driver are unchanged.
//!
//! - **Writes** ([`outbound`]): the driver's bytes are cut at frame boundaries; each frame goes
//!   to its call's stream (a client opens it with the call's first frame), call id 0 and the
//!   preface to the control stream.
//! - **Reads** ([`inbound`]): whole frames from any stream, in the order streams deliver them,
//!   so a packet lost on one call's stream delays only that call.
//! - **Ends**: a client finishes a call's stream after its Cancel or once it read the call's
//!   final frame; a server after writing the final frame, or when the client finished its half.

mod error;
mod inbound;
mod outbound;
mod source;
mod wakeups;

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;

pub use error::MappingError;
use inbound::{Action, Inbound};
pub use outbound::EARLY_DATA_CAP;
use outbound::{Early, Outbound};
use wakeups::Wakeups;

use crate::quic::{CLOSE_ABANDONED, CLOSE_DONE, CLOSE_MAPPING, STREAM_CANCELLED};
use crate::sync::{Mutex, lock};
use crate::wire::MethodId;

/// A client connection sending in 0-RTT: quinn's verdict to come, and the methods whose
/// Requests may go before it.
pub(crate) struct EarlyData {
    pub(crate) accepted: quinn::ZeroRttAccepted,
    pub(crate) methods: Vec<MethodId>,
}

impl std::fmt::Debug for EarlyData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EarlyData").field("methods", &self.methods).finish_non_exhaustive()
    }
}

/// A QUIC connection under the per-call mapping, as one byte stream.
pub(crate) struct MuxStream {
    connection: quinn::Connection,
    rx: Mutex<Inbound>,
    /// `None` only once dropped (handed to the closing task).
    tx: Mutex<Option<Outbound>>,
    client: bool,
    abandon: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").finish_non_exhaustive()
    }
}

impl MuxStream {
    /// The mapping over `connection`, whose control stream is `send`/`recv` (opened by the client,
    /// accepted by the server). `max_frame_size` is our own; `budget` bounds the bytes of
    /// incomplete frames held for all streams together.
    pub(crate) fn new(
        connection: quinn::Connection,
        client: bool,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        max_frame_size: u32,
        budget: usize,
        early: Option<EarlyData>,
    ) -> Self {
        let wakeups = Arc::new(Wakeups::default());
        let (accepted, early) = match early {
            Some(early) => (Some(early.accepted), Some(Early::new(early.methods))),
            None => (None, None),
        };
        Self {
            rx: Mutex::new(Inbound::new(
                connection.clone(),
                client,
                recv,
                max_frame_size,
                budget,
                wakeups.clone(),
                accepted,
            )),
            tx: Mutex::new(Some(Outbound::new(connection.clone(), client, send, wakeups, early))),
            connection,
            client,
            abandon: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Server: whether the client's control stream was opened in 0-RTT data.
    pub(crate) fn control_is_early(&self) -> bool {
        lock(&self.rx).control_is_early()
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut rx = lock(&self.rx);
        rx.set_reader(cx.waker());
        if !rx.has_news() {
            rx.pump();
            self.settle(&mut rx);
        }
        if rx.has_news() { Poll::Ready(Ok(())) } else { Poll::Pending }
    }

    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut rx = lock(&self.rx);
        let result = rx.read_with(buf.capacity() - buf.len(), |bytes| buf.extend_from_slice(bytes));
        self.settle(&mut rx);
        result
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rx = lock(&self.rx);
        let mut at = 0;
        let result = rx.read_with(buf.len(), |bytes| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        });
        self.settle(&mut rx);
        result
    }

    /// Applies what the read pass asked of the writing half, and closes the connection on a
    /// mapping error.
    fn settle(&self, rx: &mut Inbound) {
        if !rx.actions.is_empty() {
            let mut tx = lock(&self.tx);
            for action in std::mem::take(&mut rx.actions) {
                match (action, tx.as_mut()) {
                    (Action::Register(call, send), Some(tx)) => tx.register(call, send),
                    (Action::EndCall(call), Some(tx)) if self.client => tx.end_call_later(call),
                    (Action::EndCall(call), Some(tx)) => tx.end_call(call),
                    (Action::Finish(mut send), _) => {
                        let _ = send.finish();
                    }
                    (Action::ResetCall(call), Some(tx)) => tx.reset_call(call),
                    (Action::Reset(mut send), _) => {
                        let _ = send.reset(STREAM_CANCELLED);
                    }
                    (Action::EarlyDone(accepted), Some(tx)) => {
                        if !crate::quic::agreed_per_call(&self.connection) {
                            // A session resumed from a server that chose `volley/1` then.
                            self.connection.close(
                                CLOSE_MAPPING,
                                b"0-RTT data went on the per-call mapping and the server chose volley/1",
                            );
                        } else if let Some(control) = tx.early_done(accepted) {
                            rx.restart(control);
                        }
                    }
                    (_, None) => {}
                }
            }
        }
        if let Some(err) = rx.mapping_error.take() {
            tracing::debug!("closing a QUIC connection: {err}");
            self.connection.close(CLOSE_MAPPING, err.to_string().as_bytes());
        }
    }

    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tx = lock(&self.tx);
        let Some(tx) = tx.as_mut() else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        tx.write_vectored(bufs, &mut Context::from_waker(Waker::noop()))
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match lock(&self.tx).as_mut() {
            Some(tx) => tx.poll_ready(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    /// Call streams the writer holds and streams the reader reads (the control stream included).
    #[cfg(test)]
    fn open_streams(&self) -> (usize, usize) {
        let written = lock(&self.tx).as_ref().map_or(0, Outbound::open_calls);
        (written, lock(&self.rx).open_streams())
    }

    /// Finishes every stream.
    pub(crate) fn finish(&self) {
        if let Some(tx) = lock(&self.tx).as_mut() {
            tx.finish();
        }
    }

    /// Makes the coming close a reset.
    pub(crate) fn reset_on_close(&self) {
        self.abandon.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes like the one-stream mapping: at once with [`CLOSE_ABANDONED`] after a reset,
    /// otherwise once the peer acknowledged every stream (or after `linger`) with [`CLOSE_DONE`].
    pub(crate) fn close(&mut self, linger: Duration, endpoint: Option<quinn::Endpoint>) {
        let tx = self.tx.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(mut tx) = tx.take() else { return };
        let connection = self.connection.clone();
        if *self.abandon.get_mut() {
            tx.reset();
            connection.close(CLOSE_ABANDONED, b"abandoned");
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            connection.close(CLOSE_DONE, b"done");
            return;
        };
        tx.finish();
        let streams = tx.into_streams();
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + linger;
            for send in streams {
                let _ = tokio::time::timeout_at(deadline, send.stopped()).await;
            }
            connection.close(CLOSE_DONE, b"done");
            if let Some(endpoint) = endpoint {
                let _ = tokio::time::timeout(linger, endpoint.wait_idle()).await;
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
