//! The read side: bytes from the peer in, frames handled in order. The driver and the protocol
//! tests' `Pair` both call [`Connection::handle_read`], so the tests run the production path.

use std::time::Instant;

use bytes::BytesMut;

use super::{Connection, PartialFrame, Phase};
use crate::protocol::CallRecord;
use crate::protocol::ConnectionError;
use crate::wire::{Flags, Frame, FrameKind, PREFACE_LEN, WireError, declared_frame_len, is_tls_record_start, split_frame};

/// What one [`Connection::handle_read`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadProgress {
    /// Frames decoded and handled.
    pub frames: usize,
    /// It stopped at `max_frames` with more complete frames possibly left in the buffer: hand
    /// the events over and call it again.
    pub more: bool,
    /// The most bytes a call's record held after keeping one of these frames' messages
    /// ([`CallRecord::keep_message`]); 0 if none was kept.
    pub kept_peak: usize,
    /// The length, header included, of the frame left incomplete at the front of the buffer, when
    /// its header is there (0 otherwise, and while a Chunk frame is being put back together): a
    /// driver may read until the buffer holds that many bytes before calling again, and need not
    /// make room past it.
    pub incomplete_frame_len: usize,
}

impl<X: CallRecord> Connection<X> {
    /// Takes bytes read from the peer, from the front of `buf`: the 8-byte preface first, then
    /// up to `max_frames` complete frames, each handled in order. What it handles is removed
    /// from `buf`; a partial frame stays for the next read (with room reserved for it, bounded by
    /// the local max frame size, which is checked before anything is reserved).
    ///
    /// A decoding error or a protocol violation fails the connection: the error is returned and
    /// a GoAway naming it is queued for [`Connection::poll_transmit`]. After that it consumes
    /// nothing more.
    ///
    /// ```
    /// use std::time::Instant;
    /// use bytes::BytesMut;
    /// use volley::protocol::{Connection, ConnectionConfig, Role};
    ///
    /// # fn demo(now: Instant) {
    /// let mut client = Connection::new(Role::Client, ConnectionConfig::default(), now);
    /// let mut server = Connection::new(Role::Server, ConnectionConfig::default(), now);
    /// let mut wire = BytesMut::new();
    /// client.poll_transmit(&mut wire); // preface and settings
    /// server.handle_read(&mut wire, now, usize::MAX).unwrap();
    /// assert!(server.is_established());
    /// assert!(wire.is_empty());
    /// # }
    /// ```
    pub fn handle_read(&mut self, buf: &mut BytesMut, now: Instant, max_frames: usize) -> Result<ReadProgress, ConnectionError> {
        let progress = ReadProgress::default();
        if self.phase == Phase::Closed {
            return Ok(progress);
        }
        if self.phase == Phase::AwaitingPreface {
            let Some(raw) = buf.first_chunk::<PREFACE_LEN>().copied() else {
                // A TLS alert (7 bytes) may be all a TLS server sends a plaintext client: say
                // so now rather than wait for an eighth byte that never comes.
                if is_tls_record_start(buf) {
                    return Err(self.handle_wire_error(WireError::TlsRecord));
                }
                return Ok(progress);
            };
            let _ = buf.split_to(PREFACE_LEN);
            self.handle_preface(&raw)?;
        }
        // Two copies of the frame loop, so that a connection that can receive no Chunk and no
        // ChunkAck frame (it announced no `RECEIVE_CHUNKS`, and the peer does not acknowledge
        // chunks) runs one without the reassembly's branches.
        let read = if self.config.settings.accepts_chunks() || self.peer_settings.acks_chunks() {
            self.read_frames::<true>(buf, now, max_frames, progress)
        } else {
            self.read_frames::<false>(buf, now, max_frames, progress)
        };
        let kept_peak = std::mem::take(&mut self.kept_peak);
        read.map(|progress| ReadProgress { kept_peak, ..progress })
    }

    /// [`Connection::handle_read`]'s frame loop. With `CHUNKS`, Chunk frames are put back
    /// together and ChunkAck frames counted first (docs/PROTOCOL.md section 5.12).
    fn read_frames<const CHUNKS: bool>(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
        max_frames: usize,
        mut progress: ReadProgress,
    ) -> Result<ReadProgress, ConnectionError> {
        let max_frame_size = self.config.settings.max_frame_size;
        let receive_chunks = self.config.settings.receive_chunks;
        while progress.frames < max_frames {
            let decoded = if CHUNKS {
                // Chunk frames, and the ChunkAck frames a peer sends for ours (section 5.12).
                let decoded = self.chunks.decode_announced(buf, max_frame_size, receive_chunks);
                for _ in 0..self.chunks.take_ack_frames() {
                    if let Err(err) = self.charge_cheap_frame(now) {
                        self.fail(err)?;
                    }
                }
                decoded
            } else {
                match split_frame(buf, max_frame_size) {
                    // A stream's messages, the most frequent frame, go straight to the protocol
                    // as their parts: no `Frame` is built, moved and matched for each.
                    Ok(Some((header, message))) if header.kind == FrameKind::Message && self.phase == Phase::Open => {
                        progress.frames += 1;
                        let end_stream = header.flags.contains(Flags::END_STREAM);
                        self.handle_message_frame(header.call_id, message, end_stream, now)?;
                        if self.phase == Phase::Closed {
                            return Ok(progress);
                        }
                        continue;
                    }
                    Ok(Some((header, payload))) => Frame::decode_payload(header, payload).map(Some),
                    Ok(None) => Ok(None),
                    Err(err) => Err(err),
                }
            };
            match decoded {
                Ok(Some(frame)) => {
                    progress.frames += 1;
                    self.handle_frame(frame, now)?;
                    if self.phase == Phase::Closed {
                        return Ok(progress);
                    }
                }
                Ok(None) => {
                    self.note_partial_frame(!buf.is_empty() || (CHUNKS && self.chunks.in_progress()), now);
                    if !CHUNKS {
                        // `buf` starts at a frame: `split_frame` took every frame before it.
                        progress.incomplete_frame_len = declared_frame_len(buf, max_frame_size).unwrap_or(0);
                    }
                    return Ok(progress);
                }
                Err(err) => return Err(self.handle_wire_error(err)),
            }
        }
        progress.more = !buf.is_empty();
        Ok(progress)
    }

    /// Chunk bytes the peer acknowledged (ChunkAck, docs/PROTOCOL.md section 5.12) since the
    /// last call: the driver's writer opens its chunk window by that much.
    pub fn take_chunk_acks(&mut self) -> u64 {
        self.chunks.take_acked()
    }

    /// The chunk window this side's writer keeps (`ConnectionConfig::chunk_window`; 0: none).
    pub fn chunk_window(&self) -> usize {
        self.config.chunk_window
    }

    /// The driver's writer is sending `bytes` more chunk payload bytes to a peer that
    /// acknowledges them: its ChunkAck frames for them are free of the small-frame budget.
    pub fn note_chunks_sent(&mut self, bytes: u64) {
        self.chunks.note_sent(bytes);
    }

    /// After a read: whether a frame is left partly received, for the partial-frame timeout.
    fn note_partial_frame(&mut self, partial: bool, now: Instant) {
        self.partial_frame = match (partial, self.partial_frame) {
            (false, _) => None,
            (true, None) => Some(PartialFrame {
                check_from: now,
                progress_at: now,
            }),
            (true, Some(frame)) => Some(PartialFrame { progress_at: now, ..frame }),
        };
    }
}
