//! What a peer can do wrong with the per-call stream mapping (docs/PROTOCOL.md, "QUIC"): each is
//! a connection error, closed with [`crate::quic::CLOSE_MAPPING`] and this error's text as the
//! reason.

use crate::wire::{FrameKind, WireError};

/// A broken rule of the per-call stream mapping (ALPN `volley-quic/2`). The connection is closed
/// with the QUIC application error [`crate::quic::CLOSE_MAPPING`]; calls in flight see
/// `UNAVAILABLE` with this text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// A frame header on a stream failed the checks of docs/PROTOCOL.md section 4 (an unknown
    /// kind, reserved bytes, a length over our max frame size), before any byte was kept for it.
    #[error("QUIC stream mapping: a frame header on stream {stream} is invalid: {error}")]
    Frame {
        /// The QUIC stream id.
        stream: u64,
        /// What the header check found.
        error: WireError,
    },
    /// A frame of a call (call id not 0) came on the control stream.
    #[error("QUIC stream mapping: a {kind:?} frame for call {call} came on the control stream, which carries call id 0 only")]
    CallFrameOnControlStream {
        /// The frame's kind.
        kind: FrameKind,
        /// Its call id.
        call: u64,
    },
    /// A frame for another call, or for the connection, came on a call's stream.
    #[error("QUIC stream mapping: a {kind:?} frame for call {call} came on the stream of call {stream_call}")]
    WrongCallOnStream {
        /// The frame's kind.
        kind: FrameKind,
        /// Its call id (0: a connection frame).
        call: u64,
        /// The call the stream belongs to.
        stream_call: u64,
    },
    /// A client-opened stream did not start with a Request (whole, or as the first Chunk).
    #[error("QUIC stream mapping: stream {stream} starts with a {kind:?} frame, not a Request")]
    StreamWithoutRequest {
        /// The QUIC stream id.
        stream: u64,
        /// The first frame's kind.
        kind: FrameKind,
    },
    /// Incomplete frames waiting on all streams together exceed the budget.
    #[error(
        "QUIC stream mapping: incomplete frames on the connection's streams hold {held} bytes, over the budget of {budget}; send frames whole or raise QuicOptions::partial_frame_budget"
    )]
    PartialFramesOverBudget {
        /// Bytes held.
        held: usize,
        /// The budget ([`crate::quic::QuicOptions::partial_frame_budget`]).
        budget: usize,
    },
    /// The control stream ended before the connection did, or was reset.
    #[error("QUIC stream mapping: the peer reset its control stream")]
    ControlStreamReset,
}
