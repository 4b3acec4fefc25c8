//! Why a connection ends.

use std::fmt;

use crate::wire::Code;
use crate::wire::WireError;

/// A connection-level failure: the connection ends, a GoAway with `code` and `reason` is sent
/// to the peer (when it is still reachable), and every call on it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionError {
    /// The code sent in the GoAway and given to failed calls' statuses.
    pub code: Code,
    /// What happened, for logs and for the peer.
    pub reason: ConnectionErrorReason,
}

/// What ended a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionErrorReason {
    /// The peer's bytes were not valid frames.
    Wire(WireError),
    /// The first frame after the preface was not settings, or settings came twice.
    BadHandshake,
    /// The peer did not finish the handshake in time.
    HandshakeTimeout,
    /// A request reused a call id at or below one already used.
    ReusedCallId(u64),
    /// A frame named a call that was never opened.
    UnknownCall(u64),
    /// A frame went the wrong way (a request to a client, a response to a server).
    WrongDirection(crate::wire::FrameKind),
    /// The peer pinged faster than our minimum ping interval too often.
    TooManyPings,
    /// The peer sent more cancels than the cancel budget allows.
    TooManyCancels,
    /// The peer caused more error replies than the error budget allows.
    TooManyErrors,
    /// The peer sent more cheap frames (tiny stream messages, unearned credits, stray pongs,
    /// GoAways, frames for ended calls) than the small-frame budget allows.
    TooManySmallFrames,
    /// A metadata block far over the limit.
    MetadataAbuse {
        /// The block's length.
        len: usize,
        /// Our limit.
        max: usize,
    },
    /// The peer sent beyond its flow-control window too often, or credit past the largest window.
    FlowControl,
    /// No pong arrived within the keepalive timeout.
    KeepaliveTimeout,
    /// Part of a frame arrived, then nothing more of it for the partial-frame timeout.
    PartialFrameTimeout,
    /// Our socket took none of the bytes waiting for it for the write stall timeout: the peer
    /// stopped reading.
    WriteStall,
    /// The peer sent a GoAway with an error code.
    PeerGoAway(String),
}

impl ConnectionError {
    pub(crate) fn protocol(reason: ConnectionErrorReason) -> Self {
        Self {
            code: Code::Internal,
            reason,
        }
    }

    pub(crate) fn calm(reason: ConnectionErrorReason) -> Self {
        Self {
            code: Code::ResourceExhausted,
            reason,
        }
    }
}

impl From<WireError> for ConnectionError {
    fn from(err: WireError) -> Self {
        Self::protocol(ConnectionErrorReason::Wire(err))
    }
}

impl fmt::Display for ConnectionErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wire(err) => write!(f, "protocol error: {err}"),
            Self::BadHandshake => f.write_str("protocol error: the first frame after the preface must be settings, sent once"),
            Self::HandshakeTimeout => f.write_str("the peer did not complete the handshake in time"),
            Self::ReusedCallId(id) => write!(f, "protocol error: call id {id} is not above every earlier call id"),
            Self::UnknownCall(id) => write!(f, "protocol error: frame for call {id}, which was never opened"),
            Self::WrongDirection(kind) => write!(f, "protocol error: {kind:?} frames do not go in this direction"),
            Self::TooManyPings => f.write_str("too many pings: the peer pinged more often than the minimum ping interval"),
            Self::TooManyCancels => f.write_str("too many cancels: the peer exceeded the cancel budget"),
            Self::TooManyErrors => f.write_str("too many errors: the peer caused more error replies than the error budget"),
            Self::TooManySmallFrames => f.write_str(
                "too many small frames: the peer sent more tiny messages, credits or other cheap frames than the small-frame budget allows",
            ),
            Self::MetadataAbuse { len, max } => write!(f, "metadata block of {len} bytes is far over the limit of {max}"),
            Self::FlowControl => f.write_str("flow-control violation: the peer sent beyond its window too often, or overflowed a window"),
            Self::KeepaliveTimeout => f.write_str("keepalive timeout: the peer did not answer a ping in time"),
            Self::PartialFrameTimeout => {
                f.write_str("partial frame timeout: the peer sent part of a frame and then nothing more of it in time")
            }
            Self::WriteStall => f.write_str(
                "write stall timeout: the peer read nothing of what was sent to it for too long; frames after this GoAway were not sent",
            ),
            Self::PeerGoAway(reason) => write!(f, "the peer closed the connection: {reason}"),
        }
    }
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.reason)
    }
}

impl std::error::Error for ConnectionError {}
