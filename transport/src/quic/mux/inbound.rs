//! The reading half of the per-call mapping: whole frames from any stream, in the order streams
//! deliver them, appended to the one byte sequence the driver reads. A frame is never
//! interleaved with another, so the sans-IO core reads exactly what it reads from TCP.
//!
//! Three orders the core relies on are kept: the peer's preface and Settings (control stream)
//! come first; a server hands over calls' Requests in stream order (call ids must increase,
//! docs/PROTOCOL.md section 6.1); and a chunked frame's chunks are not interleaved with another
//! chunked frame's (section 5.12). A frame that must wait for one of these stays on its stream,
//! which is not read further meanwhile; everything else goes at once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use super::error::MappingError;
use super::source::Source;
use super::wakeups::{ACCEPT_KEY, EARLY_KEY, StreamWaker, Wakeups};
use crate::protocol::CallIdHasher;
use crate::quic::STREAM_CANCELLED;
use crate::wire::{CallId, Flags, Frame, FrameHeader, FrameKind, HEADER_LEN, PREFACE_LEN};

/// Bytes asked of quinn per read at most (64 KiB).
const READ_CHUNK: usize = 64 * 1024;

/// Whole frames kept for the driver before streams are read further (256 KiB): the driver's
/// reader drains them; past this, bytes wait in quinn under QUIC flow control.
const READY_CAP: usize = 256 * 1024;

type Accepting = Pin<Box<dyn Future<Output = Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>> + Send>>;

/// What the reader asks of the writing half (applied under its lock, after the read pass).
#[derive(Debug)]
pub(super) enum Action {
    /// Server: the call that arrived on a stream, and that stream's sending half.
    Register(u64, quinn::SendStream),
    /// The call is over for this side: finish its stream.
    EndCall(u64),
    /// Server: a stream closed before naming a call; finish its sending half.
    Finish(quinn::SendStream),
    /// Server: the client cancelled the call (a Cancel frame, or a reset of its stream): reset
    /// our half with [`STREAM_CANCELLED`].
    ResetCall(u64),
    /// Server: a stream reset before naming a call; reset its sending half too.
    Reset(quinn::SendStream),
    /// Client in 0-RTT: the server accepted (`true`) or refused the early data.
    EarlyDone(bool),
}

/// The receiving halves of a connection's streams and the frames ready for the driver.
pub(super) struct Inbound {
    connection: quinn::Connection,
    client: bool,
    max_frame_size: u32,
    budget: usize,
    /// Bytes held in the streams' buffers (incomplete frames and frames waiting their turn).
    held: usize,
    wakeups: Arc<Wakeups>,
    control_key: u64,
    /// By QUIC stream index (hashed with a seeded splitmix finaliser: SipHash was about a tenth
    /// of a per-call connection's CPU time, perf).
    sources: HashMap<u64, Source, CallIdHasher>,
    /// Server: the pending `accept_bi`, boxed only when no stream was waiting.
    accepting: Option<Accepting>,
    accept_woken: bool,
    /// Server: the waker of `accept_bi`, made once.
    accept_waker: Waker,
    /// Ended streams' waker allocations, for the streams that follow.
    spare_wakers: Vec<Arc<StreamWaker>>,
    /// Client in 0-RTT: quinn's verdict on the early data, once the handshake is done.
    early: Option<Pin<Box<quinn::ZeroRttAccepted>>>,
    early_waker: Waker,
    /// Server: accept order of the next call stream, and of the stream whose Request goes next.
    next_index: u64,
    next_open: u64,
    /// Server: streams that ended before their Request, skipped by `next_open`.
    skipped: BTreeSet<u64>,
    /// The stream whose chunked frame is being handed over.
    chunk_owner: Option<u64>,
    /// The control stream's preface and first frame (Settings) were handed over.
    handshake_done: bool,
    ready: VecDeque<Bytes>,
    ready_len: usize,
    todo: VecDeque<u64>,
    blocked: Vec<u64>,
    /// The control stream ended.
    control_finished: bool,
    failed: Option<(io::ErrorKind, String)>,
    /// A mapping error to close the connection with (taken by the stream).
    pub(super) mapping_error: Option<MappingError>,
    pub(super) actions: Vec<Action>,
    woken: Vec<u64>,
    opened: Vec<(u64, quinn::RecvStream)>,
    cancelled: Vec<u64>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("sources", &self.sources.len())
            .field("held", &self.held)
            .field("ready_len", &self.ready_len)
            .finish_non_exhaustive()
    }
}

/// What a service pass left of a stream.
enum Serviced {
    /// Still open: back into the map.
    Open,
    /// It ended, and everything whole on it was handed over.
    Ended,
    /// Gone (opened in 0-RTT data the server refused).
    Gone,
}

/// What handing over from a stream did.
enum Handed {
    One,
    NeedMore,
    Wait,
}

impl Inbound {
    pub(super) fn new(
        connection: quinn::Connection,
        client: bool,
        control: quinn::RecvStream,
        max_frame_size: u32,
        budget: usize,
        wakeups: Arc<Wakeups>,
        early: Option<quinn::ZeroRttAccepted>,
    ) -> Self {
        let control_key = control.id().index();
        let mut source = Source::new(control, wakeups.stream_waker(control_key, &mut Vec::new()));
        source.preface_left = PREFACE_LEN;
        source.opened = true;
        let mut sources = HashMap::with_hasher(CallIdHasher::new());
        sources.insert(control_key, source);
        Self {
            connection,
            client,
            max_frame_size,
            budget,
            held: 0,
            control_key,
            sources,
            accepting: None,
            accept_woken: !client,
            accept_waker: wakeups.waker_for(ACCEPT_KEY),
            spare_wakers: Vec::new(),
            early: early.map(Box::pin),
            early_waker: wakeups.waker_for(EARLY_KEY),
            wakeups,
            next_index: 0,
            next_open: 0,
            skipped: BTreeSet::new(),
            chunk_owner: None,
            handshake_done: false,
            ready: VecDeque::new(),
            ready_len: 0,
            todo: VecDeque::from([control_key]),
            blocked: Vec::new(),
            control_finished: false,
            failed: None,
            mapping_error: None,
            actions: Vec::new(),
            woken: Vec::new(),
            opened: Vec::new(),
            cancelled: Vec::new(),
        }
    }

    /// Streams being read (the control stream included).
    #[cfg(test)]
    pub(super) fn open_streams(&self) -> usize {
        self.sources.len()
    }

    /// Whether the control stream was opened in 0-RTT data.
    pub(super) fn control_is_early(&self) -> bool {
        self.sources.get(&self.control_key).is_some_and(|source| source.recv.is_0rtt())
    }

    /// Registers the driver reader's waker, woken when a stream has news.
    pub(super) fn set_reader(&self, waker: &Waker) {
        self.wakeups.set_reader(waker);
    }

    /// Something for the driver: frames, the end, or an error.
    pub(super) fn has_news(&self) -> bool {
        !self.ready.is_empty() || self.failed.is_some() || self.at_end()
    }

    /// The peer finished its control stream and every call stream, and all was handed over.
    fn at_end(&self) -> bool {
        self.control_finished && self.ready.is_empty() && self.sources.is_empty()
    }

    /// Copies ready frames into `copy`, up to `room` bytes, reading streams when none are
    /// ready; `Ok(0)` at the end, `WouldBlock` when nothing is here.
    pub(super) fn read_with(&mut self, room: usize, mut copy: impl FnMut(&[u8])) -> io::Result<usize> {
        if self.ready.is_empty() {
            self.pump();
        }
        let mut read = 0;
        while read < room {
            let Some(front) = self.ready.front_mut() else { break };
            let n = front.len().min(room - read);
            copy(&front.split_to(n));
            read += n;
            self.ready_len -= n;
            if front.is_empty() {
                self.ready.pop_front();
            }
        }
        if read > 0 {
            return Ok(read);
        }
        if let Some((kind, message)) = &self.failed {
            return Err(io::Error::new(*kind, message.clone()));
        }
        if self.at_end() {
            return Ok(0);
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Reads the streams quinn woke (and new ones) into whole frames for the driver, until
    /// [`READY_CAP`] bytes are ready or nothing more is there.
    pub(super) fn pump(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let (mut woken, mut opened, mut cancelled) = (
            std::mem::take(&mut self.woken),
            std::mem::take(&mut self.opened),
            std::mem::take(&mut self.cancelled),
        );
        self.wakeups.take(&mut woken, &mut opened, &mut cancelled);
        for key in woken.drain(..) {
            match key {
                ACCEPT_KEY => self.accept_woken = true,
                // Polled below on every pass while pending.
                EARLY_KEY => {}
                key => self.queue(key),
            }
        }
        if let Some(early) = &mut self.early
            && let Poll::Ready(accepted) = early.as_mut().poll(&mut Context::from_waker(&self.early_waker))
        {
            self.early = None;
            self.actions.push(Action::EarlyDone(accepted));
        }
        for (call, recv) in opened.drain(..) {
            let key = recv.id().index();
            let mut source = Source::new(recv, self.wakeups.stream_waker(key, &mut self.spare_wakers));
            source.call = Some(call);
            source.opened = true;
            self.sources.insert(key, source);
            self.todo.push_back(key);
        }
        for key in cancelled.drain(..) {
            self.stop_reading(key);
        }
        (self.woken, self.opened, self.cancelled) = (woken, opened, cancelled);
        if self.accept_woken {
            self.accept();
        }
        while self.ready_len < READY_CAP && self.failed.is_none() {
            let Some(key) = self.todo.pop_front() else { break };
            if let Err(err) = self.service(key) {
                self.fail_mapping(err);
            }
        }
    }

    fn queue(&mut self, key: u64) {
        if let Some(source) = self.sources.get_mut(&key)
            && !source.queued
            && !source.blocked
        {
            source.queued = true;
            self.todo.push_back(key);
        }
    }

    /// Blocked streams may go on (an order they waited for moved).
    fn unblock(&mut self) {
        for key in std::mem::take(&mut self.blocked) {
            if let Some(source) = self.sources.get_mut(&key) {
                source.blocked = false;
                source.queued = true;
                self.todo.push_back(key);
            }
        }
    }

    /// Client: the call on stream `key` was cancelled. The stream is no longer read
    /// (`STOP_SENDING` with [`STREAM_CANCELLED`]) and what it held is dropped: the core ignores
    /// frames of a cancelled call (section 6.4).
    fn stop_reading(&mut self, key: u64) {
        let Some(mut source) = self.sources.remove(&key) else { return };
        let _ = source.recv.stop(STREAM_CANCELLED);
        self.held -= source.pending().len();
        if self.chunk_owner == Some(key) {
            self.chunk_owner = None;
            self.unblock();
        }
        source.into_waker().recycle(&mut self.spare_wakers);
    }

    fn fail_mapping(&mut self, err: MappingError) {
        self.failed = Some((io::ErrorKind::InvalidData, err.to_string()));
        self.mapping_error = Some(err);
    }

    /// Server: takes the streams the client opened, in order.
    fn accept(&mut self) {
        self.accept_woken = false;
        let waker = self.accept_waker.clone();
        let mut cx = Context::from_waker(&waker);
        loop {
            let Poll::Ready(result) = self.poll_accept(&mut cx) else {
                return;
            };
            let Ok((send, recv)) = result else {
                // The connection ended: the control stream reports it.
                return;
            };
            let key = recv.id().index();
            let mut source = Source::new(recv, self.wakeups.stream_waker(key, &mut self.spare_wakers));
            source.send = Some(send);
            source.index = self.next_index;
            self.next_index += 1;
            self.sources.insert(key, source);
            self.todo.push_back(key);
        }
    }

    /// The next stream the client opened. A stream already waiting is taken by a future on the
    /// stack; only when none is, a future is boxed and kept, so that quinn keeps its waker (one
    /// allocation per read pass that waits for streams, not one per stream).
    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError>> {
        if self.accepting.is_none() {
            if let Poll::Ready(result) = pin!(self.connection.accept_bi()).poll(cx) {
                return Poll::Ready(result);
            }
            let connection = self.connection.clone();
            self.accepting = Some(Box::pin(async move { connection.accept_bi().await }));
        }
        let accepting = self.accepting.as_mut().expect("set above");
        let result = std::task::ready!(accepting.as_mut().poll(cx));
        self.accepting = None;
        Poll::Ready(result)
    }

    /// Hands over what stream `key` has and reads it until quinn has nothing more, the stream
    /// must wait its turn, or enough is ready.
    ///
    /// The stream's record is taken out of the map for the pass (one lookup and one insertion,
    /// where looking it up at every step cost about a dozen per call and side).
    fn service(&mut self, key: u64) -> Result<(), MappingError> {
        let Some(mut source) = self.sources.remove(&key) else {
            return Ok(());
        };
        source.queued = false;
        match self.service_source(key, &mut source) {
            Ok(Serviced::Open) => {
                self.sources.insert(key, source);
                Ok(())
            }
            Ok(Serviced::Ended) => self.end_of_stream(key, source),
            Ok(Serviced::Gone) => Ok(()),
            Err(err) => {
                self.sources.insert(key, source);
                Err(err)
            }
        }
    }

    fn service_source(&mut self, key: u64, source: &mut Source) -> Result<Serviced, MappingError> {
        loop {
            match self.hand_over(key, source)? {
                Handed::One => continue,
                Handed::Wait => {
                    source.own();
                    source.blocked = true;
                    self.blocked.push(key);
                    return Ok(Serviced::Open);
                }
                Handed::NeedMore => {}
            }
            // What is left is part of a frame: its bytes are copied out of quinn's buffer.
            source.own();
            if source.finished {
                return Ok(Serviced::Ended);
            }
            if self.ready_len >= READY_CAP {
                source.queued = true;
                self.todo.push_front(key);
                return Ok(Serviced::Open);
            }
            let mut cx = Context::from_waker(source.waker.waker());
            let read = pin!(source.recv.read_chunk(READ_CHUNK, true)).poll(&mut cx);
            match read {
                Poll::Pending => return Ok(Serviced::Open),
                Poll::Ready(Ok(Some(chunk))) => {
                    self.held += chunk.bytes.len();
                    source.push(chunk.bytes);
                    if self.held > self.budget {
                        return Err(MappingError::PartialFramesOverBudget {
                            held: self.held,
                            budget: self.budget,
                        });
                    }
                }
                Poll::Ready(Ok(None)) => source.finished = true,
                Poll::Ready(Err(quinn::ReadError::ConnectionLost(err))) => {
                    let kind = match err {
                        quinn::ConnectionError::TimedOut => io::ErrorKind::TimedOut,
                        _ => io::ErrorKind::ConnectionReset,
                    };
                    self.failed = Some((kind, format!("QUIC: {err}")));
                    return Ok(Serviced::Open);
                }
                // Opened in 0-RTT data the server refused: its replacement comes with the resend.
                Poll::Ready(Err(quinn::ReadError::ZeroRttRejected)) => {
                    self.held -= source.pending().len();
                    return Ok(Serviced::Gone);
                }
                Poll::Ready(Err(_)) if key == self.control_key => return Err(MappingError::ControlStreamReset),
                // A reset call stream: what it held of an unfinished frame is dropped, and on a
                // server the reset is the call's Cancel (`end_of_stream`).
                Poll::Ready(Err(quinn::ReadError::Reset(_))) => {
                    source.finished = true;
                    source.reset = true;
                }
                Poll::Ready(Err(_)) => source.finished = true,
            }
        }
    }

    /// Hands over the preface bytes or the whole frame at the head of stream `key`'s buffer,
    /// if its turn has come.
    fn hand_over(&mut self, key: u64, source: &mut Source) -> Result<Handed, MappingError> {
        let control = key == self.control_key;
        if source.preface_left > 0 {
            let n = source.pending().len().min(source.preface_left);
            if n == 0 {
                return Ok(Handed::NeedMore);
            }
            source.preface_left -= n;
            let bytes = source.take(n);
            self.held -= n;
            self.ready_len += n;
            self.ready.push_back(bytes);
            return Ok(Handed::One);
        }
        if source.pending().len() < HEADER_LEN {
            return Ok(Handed::NeedMore);
        }
        let raw: &[u8; HEADER_LEN] = source.pending()[..HEADER_LEN].try_into().expect("length checked above");
        let stream = source.recv.id().into();
        let header = FrameHeader::decode(raw, self.max_frame_size).map_err(|error| MappingError::Frame { stream, error })?;
        let call = header.call_id.0;
        if control {
            if call != 0 {
                return Err(MappingError::CallFrameOnControlStream { kind: header.kind, call });
            }
        } else {
            match source.call {
                Some(stream_call) if stream_call != call => {
                    return Err(MappingError::WrongCallOnStream {
                        kind: header.kind,
                        call,
                        stream_call,
                    });
                }
                Some(_) => {}
                None => {
                    if !matches!(header.kind, FrameKind::Request | FrameKind::Chunk) {
                        return Err(MappingError::StreamWithoutRequest { stream, kind: header.kind });
                    }
                    if call == 0 {
                        return Err(MappingError::WrongCallOnStream {
                            kind: header.kind,
                            call,
                            stream_call: 0,
                        });
                    }
                    source.call = Some(call);
                    if let Some(send) = source.send.take() {
                        self.actions.push(Action::Register(call, send));
                    }
                }
            }
        }
        let len = HEADER_LEN + header.len as usize;
        if source.pending().len() < len {
            return Ok(Handed::NeedMore);
        }
        // Its turn: after the peer's Settings; a server's new call after the calls before it;
        // a chunk after the chunked frame being handed over.
        let waits = (!control && !self.handshake_done)
            || (!self.client && !source.opened && source.index != self.next_open)
            || (header.kind == FrameKind::Chunk && self.chunk_owner.is_some_and(|owner| owner != key));
        if waits {
            return Ok(Handed::Wait);
        }
        let frame = source.take(len);
        self.held -= len;
        let mut ends_call = ends_call(header.kind, header.flags);
        let mut moved = false;
        if header.kind == FrameKind::Chunk {
            if source.run_ends_call.is_none() {
                // The first chunk carries the chunked frame's own header; the core checks it.
                let inner = frame.get(HEADER_LEN + 4..HEADER_LEN + 6);
                source.run_ends_call =
                    Some(inner.is_some_and(|inner| FrameKind::from_u8(inner[0]).is_ok_and(|kind| ends_call_by(kind, Flags(inner[1])))));
            }
            if header.flags.contains(Flags::MORE) {
                self.chunk_owner = Some(key);
            } else {
                ends_call = source.run_ends_call.take().unwrap_or(false);
                self.chunk_owner = None;
                moved = true;
            }
        }
        let run_open = source.run_ends_call.is_some();
        if !source.opened && !run_open {
            source.opened = true;
            self.next_open += 1;
            while self.skipped.remove(&self.next_open) {
                self.next_open += 1;
            }
            moved = true;
        }
        if self.client && ends_call {
            self.actions.push(Action::EndCall(call));
        }
        if !self.client && !control && header.kind == FrameKind::Cancel {
            source.cancel_seen = true;
            self.actions.push(Action::ResetCall(call));
        }
        self.ready_len += frame.len();
        self.ready.push_back(frame);
        if control && !self.handshake_done {
            self.handshake_done = true;
            moved = true;
        }
        if moved {
            self.unblock();
        }
        Ok(Handed::One)
    }

    /// Client: the server refused the 0-RTT data, so no stream opened early exists for it; reads
    /// start again on the control stream `control` opened for the resend.
    pub(super) fn restart(&mut self, control: quinn::RecvStream) {
        self.sources.clear();
        self.held = 0;
        self.todo.clear();
        self.blocked.clear();
        self.chunk_owner = None;
        self.handshake_done = false;
        self.control_key = control.id().index();
        let mut source = Source::new(control, self.wakeups.stream_waker(self.control_key, &mut self.spare_wakers));
        source.preface_left = PREFACE_LEN;
        source.opened = true;
        self.sources.insert(self.control_key, source);
        self.todo.push_back(self.control_key);
    }

    /// Stream `key` ended and everything whole on it was handed over; its waker's allocation is
    /// kept for a later stream.
    fn end_of_stream(&mut self, key: u64, mut source: Source) -> Result<(), MappingError> {
        let result = self.ended(key, &mut source);
        source.into_waker().recycle(&mut self.spare_wakers);
        result
    }

    fn ended(&mut self, key: u64, source: &mut Source) -> Result<(), MappingError> {
        self.held -= source.pending().len();
        if key == self.control_key {
            self.control_finished = true;
            return Ok(());
        }
        if self.chunk_owner == Some(key) {
            // Left half-chunked: the core's partial-frame timeout ends the connection.
            self.chunk_owner = None;
            self.unblock();
        }
        if self.client {
            return Ok(());
        }
        // Server: the client finished its half, so the call is over for it; finish ours. A
        // reset is the call's Cancel when the core has its Request whole (and no Cancel frame
        // came): the core gets a Cancel frame, after every frame the stream delivered, and is
        // charged for it as for any Cancel (section 9).
        let cancels = source.reset && source.opened && !source.cancel_seen && source.run_ends_call.is_none();
        match (source.call, source.send.take(), source.reset) {
            (_, Some(send), false) => self.actions.push(Action::Finish(send)),
            (_, Some(send), true) => self.actions.push(Action::Reset(send)),
            (Some(call), None, false) => self.actions.push(Action::EndCall(call)),
            (Some(call), None, true) => {
                if cancels {
                    let mut frame = BytesMut::with_capacity(HEADER_LEN);
                    Frame::Cancel { call_id: CallId(call) }.encode(&mut frame);
                    self.ready_len += frame.len();
                    self.ready.push_back(frame.freeze());
                }
                self.actions.push(Action::ResetCall(call));
            }
            (None, None, _) => {}
        }
        if !source.opened {
            if source.index == self.next_open {
                self.next_open += 1;
                while self.skipped.remove(&self.next_open) {
                    self.next_open += 1;
                }
                self.unblock();
            } else {
                self.skipped.insert(source.index);
            }
        }
        Ok(())
    }
}

/// Whether a frame the server sent ends the call for the client: a Status, or a Response with
/// `END_STREAM`.
fn ends_call(kind: FrameKind, flags: Flags) -> bool {
    kind != FrameKind::Chunk && ends_call_by(kind, flags)
}

fn ends_call_by(kind: FrameKind, flags: Flags) -> bool {
    kind == FrameKind::Status || (kind == FrameKind::Response && flags.contains(Flags::END_STREAM))
}
