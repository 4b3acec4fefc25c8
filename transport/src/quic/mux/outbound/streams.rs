//! The sending halves of the calls' streams: opened (client) or registered (server), finished
//! when a call is over, reset when it is cancelled, and written to.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll};

use super::Outbound;
use super::route::{Frame, Target};
use crate::quic::{CLOSE_ABANDONED, STREAM_CANCELLED};

/// The sending half of a call's stream.
#[derive(Debug)]
pub(super) struct CallStream {
    pub(super) send: quinn::SendStream,
    /// A Chunk frame went on it: a cancel then goes as a Cancel frame and FIN, since a reset
    /// could drop chunks the server's core already counts on (a chunked frame left half done).
    pub(super) chunked: bool,
}

impl CallStream {
    pub(super) fn new(send: quinn::SendStream) -> Self {
        Self { send, chunked: false }
    }
}

impl Outbound {
    /// Server: the sending half of the stream `call` arrived on.
    pub(in crate::quic::mux) fn register(&mut self, call: u64, send: quinn::SendStream) {
        self.calls.insert(call, CallStream::new(send));
    }

    /// The call is over for this side (its final frame was read): finish its stream, now or
    /// after the frame being written to it.
    pub(in crate::quic::mux) fn end_call(&mut self, call: u64) {
        if let Some(frame) = &mut self.frame
            && frame.target == Target::Call(call)
        {
            frame.ends_call = true;
            return;
        }
        if let Some(mut stream) = self.calls.remove(&call) {
            let _ = stream.send.finish();
        }
    }

    /// Client: the call was cancelled. Its stream is reset (unsent bytes are dropped: the call is
    /// over) and the reader stops reading it, both with [`STREAM_CANCELLED`]; a stream that
    /// carried chunks gets its Cancel frame, then FIN.
    pub(super) fn cancel(&mut self, call: u64) {
        if let Some(mut stream) = self.calls.remove(&call) {
            let _ = stream.send.reset(STREAM_CANCELLED);
            self.wakeups.cancelled(stream.send.id().index());
        }
    }

    /// Server: the client cancelled the call (its Cancel frame or a reset of its stream): our
    /// half is reset with [`STREAM_CANCELLED`], dropping what quinn still holds of the answer.
    pub(in crate::quic::mux) fn reset_call(&mut self, call: u64) {
        if let Some(frame) = &mut self.frame
            && frame.target == Target::Call(call)
        {
            frame.target = Target::Discard;
        }
        if let Some(mut stream) = self.calls.remove(&call) {
            let _ = stream.send.reset(STREAM_CANCELLED);
        }
    }

    /// Notes that a Chunk frame goes on a call's stream.
    pub(super) fn note_chunk(&mut self, frame: &Frame) {
        if frame.chunk
            && let Target::Call(call) = frame.target
            && let Some(stream) = self.calls.get_mut(&call)
        {
            stream.chunked = true;
        }
    }

    pub(super) fn poll_open(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>> {
        if self.opening.is_none() {
            // Opening is local and immediate while quinn has stream credit.
            if let Poll::Ready(result) = pin!(self.connection.open_bi()).poll(cx) {
                return Poll::Ready(result);
            }
            let connection = self.connection.clone();
            self.opening = Some(Box::pin(async move { connection.open_bi().await }));
        }
        let opening = self.opening.as_mut().expect("set above");
        let result = std::task::ready!(opening.as_mut().poll(cx));
        self.opening = None;
        Poll::Ready(result)
    }

    /// Writes to the target's stream; `Ok(0)` when quinn takes nothing now. A call stream the
    /// peer stopped takes everything (dropped: the peer no longer reads that call).
    pub(super) fn write_to(&mut self, target: Target, bytes: &[u8], cx: &mut Context<'_>) -> io::Result<usize> {
        match target {
            Target::Control => write(&mut self.control, bytes, cx),
            Target::Call(call) => {
                let Some(stream) = self.calls.get_mut(&call) else {
                    return Ok(bytes.len());
                };
                let result = pin!(stream.send.write(bytes)).poll(cx);
                match result {
                    Poll::Ready(Ok(n)) => Ok(n),
                    Poll::Pending => Ok(0),
                    Poll::Ready(Err(quinn::WriteError::ConnectionLost(err))) => Err(connection_error(err)),
                    Poll::Ready(Err(_)) => {
                        self.calls.remove(&call);
                        Ok(bytes.len())
                    }
                }
            }
            Target::Opening(_) | Target::Discard | Target::Cancel(_) => Ok(bytes.len()),
        }
    }

    /// Call streams open for writing.
    #[cfg(test)]
    pub(in crate::quic::mux) fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Finishes every stream: nothing more will be written.
    pub(in crate::quic::mux) fn finish(&mut self) {
        self.flush_fins();
        let _ = self.control.finish();
        for stream in self.calls.values_mut() {
            let _ = stream.send.finish();
        }
    }

    /// Resets every stream, discarding what they still hold.
    pub(in crate::quic::mux) fn reset(&mut self) {
        let _ = self.control.reset(CLOSE_ABANDONED);
        for (_, mut stream) in self.calls.drain() {
            let _ = stream.send.reset(CLOSE_ABANDONED);
        }
    }

    /// The control stream's sending half and every call's, for the lingering close.
    pub(in crate::quic::mux) fn into_streams(self) -> Vec<quinn::SendStream> {
        let mut streams: Vec<_> = self.calls.into_values().map(|stream| stream.send).collect();
        streams.push(self.control);
        streams
    }
}

pub(super) fn write(send: &mut quinn::SendStream, bytes: &[u8], cx: &mut Context<'_>) -> io::Result<usize> {
    match pin!(send.write(bytes)).poll(cx) {
        Poll::Ready(Ok(n)) => Ok(n),
        Poll::Pending => Ok(0),
        Poll::Ready(Err(err)) => Err(io::Error::new(io::ErrorKind::BrokenPipe, format!("QUIC: {err}"))),
    }
}

pub(super) fn connection_error(err: quinn::ConnectionError) -> io::Error {
    let kind = match err {
        quinn::ConnectionError::TimedOut => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::BrokenPipe,
    };
    io::Error::new(kind, format!("QUIC: {err}"))
}
