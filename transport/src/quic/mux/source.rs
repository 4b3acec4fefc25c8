//! One stream of the per-call mapping as the reader holds it (`super::inbound`): quinn's
//! receiving half and the bytes read from it and not yet handed to the driver. Whole frames are
//! sliced out of quinn's chunks without a copy; only a frame that spans chunks, or waits its
//! turn, is copied into a buffer of its own.

use bytes::{Bytes, BytesMut};

use super::wakeups::KeyedWaker;

/// One QUIC stream being read: its receiving half and the bytes read from it, not yet handed to
/// the driver, with where it stands in the mapping's orders.
pub(super) struct Source {
    pub(super) recv: quinn::RecvStream,
    pub(super) waker: KeyedWaker,
    /// What quinn handed over and was not yet handed to the driver: a chunk of quinn's as it is
    /// (`head`: whole frames are sliced out of it, no copy) or, for a frame that spans chunks,
    /// the bytes copied together (`buf`). At most one of the two holds bytes.
    head: Bytes,
    buf: BytesMut,
    /// The call the stream carries (`None`: the control stream, or a server's stream before its
    /// first frame).
    pub(super) call: Option<u64>,
    /// Server: the sending half, until the first frame names the call.
    pub(super) send: Option<quinn::SendStream>,
    /// Server: accept order.
    pub(super) index: u64,
    /// The stream's first frame (whole, or its last chunk) was handed over.
    pub(super) opened: bool,
    pub(super) preface_left: usize,
    pub(super) queued: bool,
    pub(super) blocked: bool,
    /// quinn reported the end of the stream (or its reset).
    pub(super) finished: bool,
    /// The peer reset the stream (`RESET_STREAM`) instead of finishing it.
    pub(super) reset: bool,
    /// A Cancel frame came on the stream.
    pub(super) cancel_seen: bool,
    /// A chunked frame is being handed over from this stream: whether it ends the call.
    pub(super) run_ends_call: Option<bool>,
}

impl Source {
    /// Takes a chunk quinn read: kept as it is when nothing is pending, appended otherwise.
    pub(super) fn push(&mut self, bytes: Bytes) {
        if self.head.is_empty() && self.buf.is_empty() {
            self.head = bytes;
            return;
        }
        self.own();
        self.buf.extend_from_slice(&bytes);
    }

    /// Copies what `head` still holds into `buf`, so that a partial frame or a frame waiting its
    /// turn does not keep quinn's whole packet buffer alive.
    pub(super) fn own(&mut self) {
        if !self.head.is_empty() {
            self.buf.extend_from_slice(&self.head);
            self.head = Bytes::new();
        }
    }

    /// The bytes pending, in order.
    pub(super) fn pending(&self) -> &[u8] {
        if self.head.is_empty() { &self.buf } else { &self.head }
    }

    /// Takes the first `n` pending bytes (the caller checked they are there).
    pub(super) fn take(&mut self, n: usize) -> Bytes {
        if self.head.is_empty() {
            self.buf.split_to(n).freeze()
        } else {
            self.head.split_to(n)
        }
    }

    /// The stream's waker, for another stream once this one is gone.
    pub(super) fn into_waker(self) -> KeyedWaker {
        self.waker
    }

    pub(super) fn new(recv: quinn::RecvStream, waker: KeyedWaker) -> Self {
        Self {
            recv,
            waker,
            head: Bytes::new(),
            buf: BytesMut::new(),
            call: None,
            send: None,
            index: 0,
            opened: false,
            preface_left: 0,
            queued: true,
            blocked: false,
            finished: false,
            reset: false,
            cancel_seen: false,
            run_ends_call: None,
        }
    }
}
