//! The settings each side announces after its preface (docs/PROTOCOL.md, "Settings").

use bytes::{Buf, BufMut};

use super::WireError;

/// Identifiers of the settings carried in a settings frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum SettingId {
    /// Largest frame payload the sender accepts.
    MaxFrameSize = 0x01,
    /// Most calls the sender runs at once on this connection.
    MaxConcurrentCalls = 0x02,
    /// Initial per-call flow-control window, in bytes, that the sender grants.
    InitialCallWindow = 0x03,
    /// Initial connection flow-control window, in bytes, that the sender grants.
    InitialConnectionWindow = 0x04,
    /// Shortest interval between pings, in milliseconds, that the sender tolerates.
    MinPingIntervalMs = 0x05,
    /// Largest metadata block the sender accepts.
    MaxMetadataSize = 0x06,
    /// 1: the sender reassembles Chunk frames (docs/PROTOCOL.md section 5.12); 0 or absent: it
    /// gets whole frames only.
    ReceiveChunks = 0x07,
}

/// Bytes one setting takes on the wire: a `u16` id and a `u32` value.
pub(crate) const SETTING_LEN: usize = 6;

/// The values one side announces. A setting missing from a frame keeps its default; unknown ids
/// are ignored so later versions can add settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Largest frame payload the sender accepts.
    pub max_frame_size: u32,
    /// Most calls the sender runs at once on this connection.
    pub max_concurrent_calls: u32,
    /// Initial per-call flow-control window the sender grants, in bytes.
    pub initial_call_window: u32,
    /// Initial connection flow-control window the sender grants, in bytes.
    pub initial_connection_window: u32,
    /// Shortest interval between pings the sender tolerates, in milliseconds.
    pub min_ping_interval_ms: u32,
    /// Largest metadata block the sender accepts, in bytes.
    pub max_metadata_size: u32,
    /// 1 when the sender reassembles Chunk frames, 0 (the default, and what a peer that does not
    /// know the setting implies) when it takes whole frames only. Sent only when not 0, so a
    /// side that does not chunk announces exactly what an older build does.
    pub receive_chunks: u32,
}

/// Largest flow-control window (2^31 - 1), so window arithmetic never overflows.
pub const MAX_WINDOW: u32 = i32::MAX as u32;

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_frame_size: super::DEFAULT_MAX_FRAME_SIZE,
            max_concurrent_calls: 4096,
            initial_call_window: 1024 * 1024,
            initial_connection_window: 16 * 1024 * 1024,
            min_ping_interval_ms: 1_000,
            max_metadata_size: super::DEFAULT_MAX_METADATA_SIZE as u32,
            receive_chunks: 0,
        }
    }
}

impl Settings {
    /// Payload length of a settings frame with the six settings always sent (`RECEIVE_CHUNKS`
    /// adds one entry when it is not 0: [`Settings::encoded_len`]).
    pub const ENCODED_LEN: usize = 6 * SETTING_LEN;

    /// Payload length of this settings frame.
    pub fn encoded_len(&self) -> usize {
        Self::ENCODED_LEN + if self.receive_chunks == 0 { 0 } else { SETTING_LEN }
    }

    /// Whether the sender of these settings reassembles Chunk frames.
    pub fn accepts_chunks(&self) -> bool {
        self.receive_chunks != 0
    }

    /// Whether the sender of these settings also acknowledges chunk bytes with ChunkAck frames
    /// (`RECEIVE_CHUNKS` = 2), so that a writer sending it chunks keeps a window.
    pub fn acks_chunks(&self) -> bool {
        self.receive_chunks >= super::RECEIVE_CHUNKS_ACKED
    }

    fn pairs(&self) -> [(SettingId, u32); 6] {
        [
            (SettingId::MaxFrameSize, self.max_frame_size),
            (SettingId::MaxConcurrentCalls, self.max_concurrent_calls),
            (SettingId::InitialCallWindow, self.initial_call_window),
            (SettingId::InitialConnectionWindow, self.initial_connection_window),
            (SettingId::MinPingIntervalMs, self.min_ping_interval_ms),
            (SettingId::MaxMetadataSize, self.max_metadata_size),
        ]
    }

    /// Writes every setting as `(id: u16, value: u32)`.
    pub fn encode(&self, dst: &mut impl BufMut) {
        for (id, value) in self.pairs() {
            dst.put_u16_le(id as u16);
            dst.put_u32_le(value);
        }
        if self.receive_chunks != 0 {
            dst.put_u16_le(SettingId::ReceiveChunks as u16);
            dst.put_u32_le(self.receive_chunks);
        }
    }

    /// Reads a settings payload, starting from the defaults.
    pub fn decode(mut src: &[u8]) -> Result<Self, WireError> {
        if !src.len().is_multiple_of(SETTING_LEN) {
            return Err(WireError::BadSettings);
        }
        let mut settings = Self::default();
        while src.has_remaining() {
            let id = src.get_u16_le();
            let value = src.get_u32_le();
            match id {
                0x01 => settings.max_frame_size = value,
                0x02 => settings.max_concurrent_calls = value,
                0x03 => settings.initial_call_window = value,
                0x04 => settings.initial_connection_window = value,
                0x05 => settings.min_ping_interval_ms = value,
                0x06 => settings.max_metadata_size = value,
                0x07 => settings.receive_chunks = value,
                _ => {}
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the ranges PROTOCOL.md gives for each setting.
    pub fn validate(&self) -> Result<(), WireError> {
        let frame_ok = (super::MIN_FRAME_SIZE..=super::MAX_FRAME_SIZE).contains(&self.max_frame_size);
        let windows_ok = [self.initial_call_window, self.initial_connection_window]
            .iter()
            .all(|w| (1..=MAX_WINDOW).contains(w));
        // At least 2: the length prefix of an empty block counts against the limit.
        let metadata_ok = (2..=super::MAX_METADATA_SIZE).contains(&(self.max_metadata_size as usize));
        let chunks_ok = self.receive_chunks <= super::RECEIVE_CHUNKS_ACKED;
        if frame_ok && windows_ok && metadata_ok && chunks_ok && self.max_concurrent_calls > 0 {
            Ok(())
        } else {
            Err(WireError::BadSettings)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_ignore_unknown_ids() {
        let settings = Settings {
            max_concurrent_calls: 7,
            min_ping_interval_ms: 0,
            ..Settings::default()
        };
        let mut buf = Vec::new();
        settings.encode(&mut buf);
        assert_eq!(buf.len(), Settings::ENCODED_LEN);
        buf.extend_from_slice(&[0x99, 0x00, 1, 2, 3, 4]);
        assert_eq!(Settings::decode(&buf), Ok(settings));
    }

    #[test]
    fn settings_reject_bad_length_and_out_of_range_values() {
        assert_eq!(Settings::decode(&[1, 0, 0]), Err(WireError::BadSettings));
        let tiny_frames = [0x01, 0x00, 0x10, 0, 0, 0];
        assert_eq!(Settings::decode(&tiny_frames), Err(WireError::BadSettings));
        let zero_window = [0x03, 0x00, 0, 0, 0, 0];
        assert_eq!(Settings::decode(&zero_window), Err(WireError::BadSettings));
        let chunks_acked = [0x07, 0x00, 2, 0, 0, 0];
        assert!(Settings::decode(&chunks_acked).is_ok_and(|settings| settings.acks_chunks()));
        let chunks_three = [0x07, 0x00, 3, 0, 0, 0];
        assert_eq!(Settings::decode(&chunks_three), Err(WireError::BadSettings));
    }

    #[test]
    fn receive_chunks_is_sent_only_when_announced_and_absent_reads_as_whole_frames_only() {
        let mut old = Vec::new();
        Settings::default().encode(&mut old);
        assert_eq!(old.len(), Settings::ENCODED_LEN, "the default is what an older build sends");
        assert!(!Settings::decode(&old).unwrap().accepts_chunks());
        let chunking = Settings {
            receive_chunks: 1,
            ..Settings::default()
        };
        let mut new = Vec::new();
        chunking.encode(&mut new);
        assert_eq!(new.len(), chunking.encoded_len());
        assert_eq!(&new[Settings::ENCODED_LEN..], &[0x07, 0x00, 1, 0, 0, 0]);
        assert_eq!(Settings::decode(&new), Ok(chunking));
    }
}
