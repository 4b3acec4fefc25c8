//! Where a frame the driver wrote goes: the control stream, its call's stream (opened first on
//! a client), a reset (a client's Cancel), or nowhere (a call already over); and whether it may
//! go in 0-RTT data.

use std::io;

use super::Outbound;
use crate::wire::{Flags, FrameHeader, FrameKind, HEADER_LEN};

/// A frame being written: where it goes and how far it got.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame {
    pub(super) target: Target,
    pub(super) header_sent: usize,
    pub(super) payload_left: usize,
    /// The call is over for this side once the frame is out: finish its stream.
    pub(super) ends_call: bool,
    /// A Chunk frame.
    pub(super) chunk: bool,
    pub(super) gate: Gate,
}

/// Whether a frame written in 0-RTT may go before the handshake is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gate {
    Open,
    /// A Request: its method id (the payload's first 4 bytes) decides.
    Check,
    /// Waits for the confirmation.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Control,
    Call(u64),
    /// A client call's stream is being opened.
    Opening(u64),
    /// The call's stream is finished: the peer would ignore the frame (section 6.4), so it is
    /// dropped.
    Discard,
    /// Client: the call's Cancel. Its stream is reset with [`STREAM_CANCELLED`](crate::quic::STREAM_CANCELLED) (the server reads
    /// that as the Cancel) and no longer read; the frame's bytes are dropped.
    Cancel(u64),
}

impl Outbound {
    /// Where the frame with `header` goes, and how.
    pub(super) fn frame_for(&self, header: &[u8; HEADER_LEN]) -> io::Result<Frame> {
        // Our own driver's bytes: the header was checked when it was encoded.
        let header = FrameHeader::decode(header, u32::MAX).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("QUIC stream mapping: a frame we wrote is invalid: {err}"),
            )
        })?;
        let call = header.call_id.0;
        let ends_call = if self.client {
            header.kind == FrameKind::Cancel
        } else {
            header.kind == FrameKind::Status || (header.kind == FrameKind::Response && header.flags.contains(Flags::END_STREAM))
        };
        let target = if call == 0 {
            Target::Control
        } else if let Some(stream) = self.calls.get(&call) {
            if self.client && header.kind == FrameKind::Cancel && !stream.chunked {
                Target::Cancel(call)
            } else {
                Target::Call(call)
            }
        } else if self.client && call > self.highest_opened {
            Target::Opening(call)
        } else {
            Target::Discard
        };
        let gate = match (self.early.is_some(), header.kind, target) {
            (false, _, _) => Gate::Open,
            (true, FrameKind::Request, _) => Gate::Check,
            // A chunked Request is not sent early.
            (true, FrameKind::Chunk, Target::Opening(_)) => Gate::Hold,
            (true, _, _) => Gate::Open,
        };
        Ok(Frame {
            target,
            header_sent: 0,
            payload_left: header.len as usize,
            ends_call,
            chunk: header.kind == FrameKind::Chunk,
            gate,
        })
    }
}
