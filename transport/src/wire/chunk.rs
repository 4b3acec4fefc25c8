//! Chunk frames (docs/PROTOCOL.md section 5.12): a call frame larger than a chunk is sent as a
//! run of Chunk frames, each carrying the next piece of the whole frame's bytes (its 16-byte
//! header first), so frames of other calls can go out between the pieces. Only to a peer that
//! announced `RECEIVE_CHUNKS`; the receiver puts the frame back together and handles it as if
//! it had arrived whole.

use bytes::{BufMut, Bytes};

use super::{CallId, Flags, FrameHeader, FrameKind, HEADER_LEN, WireError};

/// Chunk payload a sender cuts a large frame into (64 KiB): frames waiting behind a chunk wait
/// for at most this many bytes (plus what the socket already holds).
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

/// Least payload of every chunk but a frame's last (1 KiB), so a peer cannot make a receiver do
/// per-chunk work for a handful of bytes.
pub const MIN_CHUNK_PAYLOAD: usize = 1024;

/// Most chunks one frame may be cut into (4,096): with [`DEFAULT_CHUNK_SIZE`] a 256 MiB frame
/// (the largest `MAX_FRAME_SIZE`) needs 4,097, so a sender grows its chunks for such frames
/// ([`chunk_size_for`]).
pub const MAX_CHUNKS_PER_FRAME: u32 = 4096;

/// A piece of a chunked frame, as read from the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The call of the frame being chunked.
    pub call_id: CallId,
    /// More chunks of the same frame follow (flag `MORE`).
    pub more: bool,
    /// The next bytes of the whole frame, header first.
    pub piece: Bytes,
}

impl Chunk {
    /// The 16-byte header of a Chunk frame carrying `piece_len` bytes of `call_id`'s frame.
    ///
    /// ```
    /// use volley::wire::{CallId, Chunk};
    ///
    /// let header = Chunk::encode_header(CallId(1), 65_536, true);
    /// assert_eq!(header, [0x00, 0x00, 0x01, 0x00, 0x0c, 0x08, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    /// ```
    pub fn encode_header(call_id: CallId, piece_len: u32, more: bool) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        FrameHeader {
            len: piece_len,
            kind: FrameKind::Chunk,
            flags: Flags::NONE.set_if(Flags::MORE, more),
            call_id,
        }
        .encode(&mut &mut out[..]);
        out
    }

    /// Writes the whole Chunk frame (header and piece).
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_slice(&Self::encode_header(self.call_id, self.piece.len() as u32, self.more));
        dst.put_slice(&self.piece);
    }
}

/// Most chunk bytes a writer has on the wire, unacknowledged, toward a peer that announced
/// `RECEIVE_CHUNKS` = 2 (256 KiB, four chunks): what a frame of another call queued behind a bulk
/// frame may find ahead of it in the socket buffers, instead of the megabytes the kernel's
/// autotuned buffers take on loopback.
pub const DEFAULT_CHUNK_WINDOW: usize = 256 * 1024;

/// `RECEIVE_CHUNKS` value of a receiver that reassembles Chunk frames and acknowledges their
/// bytes with ChunkAck frames (version 2 of section 5.12); 1 reassembles without acknowledging.
pub const RECEIVE_CHUNKS_ACKED: u32 = 2;

/// A ChunkAck frame (kind `0x0D`, call id 0, flags 0): the chunk payload bytes its sender has
/// taken off the stream since its previous ChunkAck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkAck {
    /// Chunk payload bytes taken, at least 1.
    pub taken: u32,
}

impl ChunkAck {
    /// Bytes of a ChunkAck frame on the wire (header and a 4-byte count).
    pub const ENCODED_LEN: usize = HEADER_LEN + 4;

    /// The whole frame.
    ///
    /// ```
    /// use volley::wire::ChunkAck;
    ///
    /// let frame = ChunkAck { taken: 65_536 }.encode();
    /// assert_eq!(frame, [4, 0, 0, 0, 0x0d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x00]);
    /// ```
    pub fn encode(self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        FrameHeader {
            len: 4,
            kind: FrameKind::ChunkAck,
            flags: Flags::NONE,
            call_id: CallId::CONNECTION,
        }
        .encode(&mut &mut out[..]);
        out[HEADER_LEN..].copy_from_slice(&self.taken.to_le_bytes());
        out
    }

    /// The count from a ChunkAck payload: exactly 4 bytes, not zero.
    pub fn decode_payload(payload: &[u8]) -> Result<u32, WireError> {
        let raw: [u8; 4] = match payload.try_into() {
            Ok(raw) => raw,
            Err(_) if payload.len() < 4 => return Err(WireError::Truncated(FrameKind::ChunkAck)),
            Err(_) => return Err(WireError::TrailingBytes(FrameKind::ChunkAck)),
        };
        match u32::from_le_bytes(raw) {
            0 => Err(WireError::ZeroCredit),
            taken => Ok(taken),
        }
    }
}

/// The chunk payload a sender uses for a frame of `frame_len` bytes (header included): at least
/// `chunk_size`, grown so the frame needs no more than [`MAX_CHUNKS_PER_FRAME`] chunks.
pub fn chunk_size_for(frame_len: usize, chunk_size: usize) -> usize {
    chunk_size
        .max(MIN_CHUNK_PAYLOAD)
        .max(frame_len.div_ceil(MAX_CHUNKS_PER_FRAME as usize))
}

/// Whether a sender that chunks at `chunk_size` cuts a frame of kind `kind` and `frame_len`
/// bytes (header included): call frames longer than a chunk. Connection frames are never
/// chunked (they are small, and a Chunk names a call).
pub fn is_chunked(kind: FrameKind, frame_len: usize, chunk_size: usize) -> bool {
    frame_len > chunk_size
        && matches!(
            kind,
            FrameKind::Request | FrameKind::Response | FrameKind::Message | FrameKind::Status
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_grows_only_for_frames_that_would_need_too_many_chunks() {
        assert_eq!(chunk_size_for(16 << 20, DEFAULT_CHUNK_SIZE), DEFAULT_CHUNK_SIZE);
        let huge = 256 << 20;
        let size = chunk_size_for(huge + HEADER_LEN, DEFAULT_CHUNK_SIZE);
        assert!((huge + HEADER_LEN).div_ceil(size) <= MAX_CHUNKS_PER_FRAME as usize);
        assert_eq!(chunk_size_for(10, 1), MIN_CHUNK_PAYLOAD);
    }

    /// The example of docs/PROTOCOL.md section 5.12, byte for byte.
    #[test]
    fn the_protocol_doc_chunk_example_is_what_the_encoder_writes() {
        let message = crate::wire::Frame::Message {
            call_id: CallId(1),
            message: Bytes::from(vec![0xab; 1010]),
            end_stream: false,
        };
        let mut whole = Vec::new();
        message.encode(&mut whole);
        assert_eq!(whole.len(), 1026);
        let first = Chunk::encode_header(CallId(1), 1024, true);
        assert_eq!(first, [0x00, 0x04, 0, 0, 0x0c, 0x08, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&whole[..16], &[0xf2, 0x03, 0, 0, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        let last = Chunk {
            call_id: CallId(1),
            more: false,
            piece: Bytes::copy_from_slice(&whole[1024..]),
        };
        let mut out = Vec::new();
        last.encode(&mut out);
        assert_eq!(out, [0x02, 0, 0, 0, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xab]);
    }

    #[test]
    fn a_chunk_ack_round_trips_and_refuses_zero_and_bad_lengths() {
        let frame = ChunkAck { taken: 70_000 }.encode();
        let mut wire = bytes::BytesMut::from(&frame[..]);
        assert_eq!(
            crate::wire::decode_unit(&mut wire, 1 << 20),
            Ok(Some(crate::wire::Decoded::ChunkAck(70_000)))
        );
        assert_eq!(ChunkAck::decode_payload(&[0; 4]), Err(WireError::ZeroCredit));
        assert_eq!(ChunkAck::decode_payload(&[1; 3]), Err(WireError::Truncated(FrameKind::ChunkAck)));
        assert_eq!(
            ChunkAck::decode_payload(&[1; 5]),
            Err(WireError::TrailingBytes(FrameKind::ChunkAck))
        );
        let mut on_a_call = bytes::BytesMut::from(&frame[..]);
        on_a_call[8] = 1;
        assert_eq!(
            crate::wire::decode_unit(&mut on_a_call, 1 << 20),
            Err(WireError::ControlFrameOnCall(FrameKind::ChunkAck))
        );
    }

    #[test]
    fn only_call_frames_over_a_chunk_are_chunked() {
        assert!(is_chunked(FrameKind::Message, 70_000, DEFAULT_CHUNK_SIZE));
        assert!(!is_chunked(FrameKind::Message, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE));
        assert!(!is_chunked(FrameKind::Credit, 70_000, DEFAULT_CHUNK_SIZE));
        assert!(!is_chunked(FrameKind::GoAway, 70_000, DEFAULT_CHUNK_SIZE));
    }
}
