//! The writing half of the per-call mapping: the driver's byte stream (preface, then whole
//! frames) is cut at frame boundaries, and each frame goes to its call's QUIC stream (opened by
//! the call's first frame on a client) or, for call id 0, to the control stream.
//!
//! At most one frame header (16 bytes) is held here; payload bytes go straight to quinn, so
//! a frame quinn takes only part of resumes on the next write, on the same stream.
//!
//! This file cuts the byte stream and writes runs of frames; `route` says where a frame goes,
//! `streams` keeps the call streams' sending halves (open, finish, reset), `early` the 0-RTT
//! bookkeeping.

mod early;
mod route;
mod streams;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

pub use early::EARLY_DATA_CAP;
pub(super) use early::Early;
use route::{Frame, Gate, Target};
use streams::{CallStream, connection_error, write};

use super::wakeups::Wakeups;
use crate::protocol::CallIdHasher;
use crate::wire::{HEADER_LEN, MethodId, PREFACE_LEN};

type Opening = Pin<Box<dyn Future<Output = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>> + Send>>;

/// The sending halves of a connection's streams and the frame being written.
pub(super) struct Outbound {
    connection: quinn::Connection,
    client: bool,
    control: quinn::SendStream,
    /// Open sending halves by call id (hashed with a seeded splitmix finaliser, as the call
    /// table's overflow map is: SipHash showed in profiles).
    calls: HashMap<u64, CallStream, CallIdHasher>,
    /// Client: the highest call id a stream was opened for (a frame for a lower id without a
    /// stream belongs to a call that ended, and is dropped).
    highest_opened: u64,
    preface_left: usize,
    header: [u8; HEADER_LEN],
    header_len: usize,
    frame: Option<Frame>,
    /// Client: the stream being opened for the current frame's call, when quinn had no stream
    /// credit at once.
    opening: Option<Opening>,
    wakeups: Arc<Wakeups>,
    /// Client in 0-RTT: what may go early, and what went.
    early: Option<Early>,
    /// Bytes to send again after the server refused the 0-RTT data, before any new byte.
    resend: Bytes,
    /// The writer's waker while a write waits for the handshake's confirmation.
    writer: Option<Waker>,
    /// Client: calls whose stream is to be finished with the next write, so that the FIN rides
    /// in that write's packet instead of a packet of its own.
    fins: Vec<u64>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("calls", &self.calls.len())
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

/// What one step did.
enum Step {
    /// Consumed this many input bytes (maybe 0, with internal progress).
    Took(usize),
    /// quinn takes nothing now.
    Blocked,
}

impl Outbound {
    pub(super) fn new(
        connection: quinn::Connection,
        client: bool,
        control: quinn::SendStream,
        wakeups: Arc<Wakeups>,
        early: Option<Early>,
    ) -> Self {
        Self {
            connection,
            client,
            control,
            calls: HashMap::with_hasher(CallIdHasher::new()),
            highest_opened: 0,
            preface_left: PREFACE_LEN,
            header: [0; HEADER_LEN],
            header_len: 0,
            frame: None,
            opening: None,
            wakeups,
            early,
            resend: Bytes::new(),
            writer: None,
            fins: Vec::new(),
        }
    }

    /// Client: the call's final frame was read; its stream is finished with the next write
    /// (or when the connection closes).
    pub(super) fn end_call_later(&mut self, call: u64) {
        self.fins.push(call);
    }

    fn flush_fins(&mut self) {
        for call in std::mem::take(&mut self.fins) {
            self.end_call(call);
        }
    }

    /// Takes what quinn accepts now of `bufs`; `WouldBlock` when it takes nothing.
    pub(super) fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>], cx: &mut Context<'_>) -> io::Result<usize> {
        if !self.resend.is_empty() && !self.drain_resend(cx)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.flush_fins();
        let mut written = 0;
        let mut blocked = false;
        'bufs: for buf in bufs {
            let mut at = 0;
            while at < buf.len() {
                match self.step(&buf[at..], cx)? {
                    Step::Took(n) => {
                        if let Some(early) = &mut self.early {
                            early.sent.extend_from_slice(&buf[at..at + n]);
                        }
                        at += n;
                    }
                    Step::Blocked => {
                        blocked = true;
                        written += at;
                        break 'bufs;
                    }
                }
            }
            written += at;
        }
        // A frame whose last byte was taken may still need its stream finished.
        if !blocked {
            let _ = self.step(&[], cx)?;
        }
        if written == 0 && bufs.iter().any(|buf| !buf.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(written)
    }

    /// `Ready` when a write could make progress; registers `cx` with what blocks it otherwise.
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.drain_resend(cx) {
            Ok(false) => {
                self.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Err(_) => return Poll::Ready(Ok(())),
            Ok(true) => {}
        }
        if self.early.as_ref().is_some_and(|early| early.sent.len() >= EARLY_DATA_CAP) {
            // Released by `early_done`.
            self.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // Internal progress first: a stream being opened, a header held back, a frame's end.
        match self.step(&[], cx) {
            Ok(Step::Blocked) => {
                self.writer = Some(cx.waker().clone());
                return Poll::Pending;
            }
            // The next write reports the error.
            Err(_) => return Poll::Ready(Ok(())),
            Ok(Step::Took(_)) => {}
        }
        let target = match self.frame {
            _ if self.preface_left > 0 => Target::Control,
            Some(frame) if frame.payload_left > 0 => frame.target,
            _ => return Poll::Ready(Ok(())),
        };
        let send = match target {
            Target::Control => &mut self.control,
            Target::Call(call) => match self.calls.get_mut(&call) {
                Some(stream) => &mut stream.send,
                None => return Poll::Ready(Ok(())),
            },
            Target::Opening(_) | Target::Discard | Target::Cancel(_) => return Poll::Ready(Ok(())),
        };
        // An empty write is blocked exactly when a real one would be, and registers `cx` then.
        match pin!(send.write(&[])).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// One step on `input` (may be empty): the preface, a header byte run, a header flush, a
    /// payload write or a frame's end.
    fn step(&mut self, input: &[u8], cx: &mut Context<'_>) -> io::Result<Step> {
        if self.early.as_ref().is_some_and(|early| early.sent.len() >= EARLY_DATA_CAP) && !input.is_empty() {
            return Ok(Step::Blocked);
        }
        loop {
            if self.preface_left > 0 {
                if input.is_empty() {
                    return Ok(Step::Took(0));
                }
                let n = input.len().min(self.preface_left);
                return match write(&mut self.control, &input[..n], cx)? {
                    0 => Ok(Step::Blocked),
                    n => {
                        self.preface_left -= n;
                        Ok(Step::Took(n))
                    }
                };
            }
            let Some(mut frame) = self.frame else {
                if input.is_empty() {
                    return Ok(Step::Took(0));
                }
                if self.header_len == 0
                    && self.early.is_none()
                    && let Some(step) = self.write_run(input, cx)?
                {
                    return Ok(step);
                }
                let n = input.len().min(HEADER_LEN - self.header_len);
                self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
                self.header_len += n;
                if self.header_len == HEADER_LEN {
                    self.frame = Some(self.start_frame()?);
                }
                return Ok(Step::Took(n));
            };
            match frame.gate {
                _ if self.early.is_none() => frame.gate = Gate::Open,
                Gate::Open => {}
                Gate::Hold => return Ok(Step::Blocked),
                Gate::Check if input.is_empty() => return Ok(Step::Took(0)),
                Gate::Check => {
                    let allowed = input.get(..4).is_some_and(|id| {
                        let id = MethodId(u32::from_le_bytes([id[0], id[1], id[2], id[3]]));
                        self.early.as_ref().is_some_and(|early| early.methods.contains(&id))
                    });
                    frame.gate = if allowed { Gate::Open } else { Gate::Hold };
                    self.frame = Some(frame);
                    continue;
                }
            }
            if let Target::Cancel(call) = frame.target {
                self.cancel(call);
                frame.target = Target::Discard;
            }
            self.frame = Some(frame);
            if let Target::Opening(call) = frame.target {
                match self.poll_open(cx) {
                    Poll::Pending => return Ok(Step::Blocked),
                    Poll::Ready(Ok((send, recv))) => {
                        self.calls.insert(call, CallStream::new(send));
                        self.highest_opened = call;
                        self.wakeups.opened(call, recv);
                        frame.target = Target::Call(call);
                    }
                    Poll::Ready(Err(err)) => return Err(connection_error(err)),
                }
                self.frame = Some(frame);
            }
            if frame.header_sent < HEADER_LEN {
                if frame.header_sent == 0 {
                    self.note_chunk(&frame);
                }
                let header = self.header;
                match self.write_to(frame.target, &header[frame.header_sent..], cx)? {
                    0 => return Ok(Step::Blocked),
                    n => frame.header_sent += n,
                }
                self.frame = Some(frame);
                continue;
            }
            if frame.payload_left > 0 {
                if input.is_empty() {
                    return Ok(Step::Took(0));
                }
                let n = input.len().min(frame.payload_left);
                return match self.write_to(frame.target, &input[..n], cx)? {
                    0 => Ok(Step::Blocked),
                    n => {
                        frame.payload_left -= n;
                        self.frame = Some(frame);
                        Ok(Step::Took(n))
                    }
                };
            }
            // The frame is out.
            self.frame = None;
            self.header_len = 0;
            if frame.ends_call
                && let Target::Call(call) = frame.target
            {
                self.end_call(call);
            }
        }
    }

    /// Writes the run of whole frames at the start of `input` that go to one stream in one quinn
    /// write (quinn keeps each write as a piece of its send buffer, and looks pieces up one by
    /// one when it builds packets: a write per frame header and per payload made it slow).
    /// `None` when `input` does not start with a whole frame for an open stream.
    fn write_run(&mut self, input: &[u8], cx: &mut Context<'_>) -> io::Result<Option<Step>> {
        // A whole first frame of a new call: open its stream here, so that the frame still goes
        // in one write (quinn opens at once while it has stream credit).
        let first = self.frame_for(header_at(input, 0))?;
        if let Target::Opening(call) = first.target
            && first.gate == Gate::Open
            && input.len() >= HEADER_LEN + first.payload_left
        {
            match pin!(self.connection.open_bi()).poll(cx) {
                Poll::Ready(Ok((send, recv))) => {
                    self.calls.insert(call, CallStream::new(send));
                    self.highest_opened = call;
                    self.wakeups.opened(call, recv);
                }
                Poll::Ready(Err(err)) => return Err(connection_error(err)),
                Poll::Pending => return Ok(None),
            }
        }
        let mut end = 0;
        let mut target = None;
        let mut ends_call = false;
        while input.len() - end >= HEADER_LEN {
            let frame = self.frame_for(header_at(input, end))?;
            let len = HEADER_LEN + frame.payload_left;
            if input.len() - end < len || frame.gate != Gate::Open {
                break;
            }
            match (target, frame.target) {
                (None, Target::Call(_) | Target::Control) => target = Some(frame.target),
                (Some(run), next) if run == next => {}
                _ => break,
            }
            end += len;
            self.note_chunk(&frame);
            if frame.ends_call {
                ends_call = true;
                break;
            }
        }
        let Some(target) = target else { return Ok(None) };
        let n = self.write_to(target, &input[..end], cx)?;
        if n == 0 {
            return Ok(Some(Step::Blocked));
        }
        if n == end {
            if let (true, Target::Call(call)) = (ends_call, target) {
                self.end_call(call);
            }
            return Ok(Some(Step::Took(n)));
        }
        // quinn took part of the run: the frame it stopped in goes on by the byte-wise path.
        let mut start = 0;
        loop {
            let header = header_at(input, start);
            let mut frame = self.frame_for(header)?;
            let len = HEADER_LEN + frame.payload_left;
            if n < start + len {
                let done = n - start;
                self.header = *header;
                self.header_len = HEADER_LEN;
                frame.header_sent = done.min(HEADER_LEN);
                frame.payload_left -= done.saturating_sub(HEADER_LEN);
                self.frame = Some(frame);
                return Ok(Some(Step::Took(n)));
            }
            start += len;
        }
    }

    /// Where the frame whose header is in `self.header` goes.
    fn start_frame(&mut self) -> io::Result<Frame> {
        let header = self.header;
        self.frame_for(&header)
    }
}

/// The 16 header bytes at `at` (the caller checked they are there).
fn header_at(input: &[u8], at: usize) -> &[u8; HEADER_LEN] {
    input[at..at + HEADER_LEN].try_into().expect("caller checked the length")
}
