//! What only a server receives: Request (a new call, checked against the limits in the order
//! PROTOCOL.md 6.2 gives) and Cancel.

use std::time::Instant;

use bytes::Bytes;

use super::Connection;
use crate::protocol::CallRecord;
use crate::protocol::calls::CallState;
use crate::protocol::{ConnectionError, ConnectionErrorReason as Reason, Event, METADATA_ABUSE_FACTOR};
use crate::wire::{CallHead, CallId, Code, Frame};

impl<X: CallRecord> Connection<X> {
    pub(super) fn on_server_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ConnectionError> {
        match frame {
            Frame::Request {
                call_id,
                head,
                message,
                end_stream,
            } => self.on_request(call_id, head, message, end_stream, now),
            Frame::Cancel { call_id } => {
                if !self.cancels.try_spend(now) {
                    return Err(ConnectionError::calm(Reason::TooManyCancels));
                }
                if self.calls.close(call_id).is_some() {
                    self.events.push_back(Event::Cancelled { call_id });
                    Ok(())
                } else {
                    self.check_known(call_id)
                }
            }
            other => Err(ConnectionError::protocol(Reason::WrongDirection(other.kind()))),
        }
    }

    fn on_request(
        &mut self,
        call_id: CallId,
        head: CallHead,
        message: Option<Bytes>,
        end_stream: bool,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        if call_id <= self.highest_peer_call {
            return Err(ConnectionError::protocol(Reason::ReusedCallId(call_id.0)));
        }
        self.highest_peer_call = call_id;
        let max_metadata = self.config.settings.max_metadata_size as usize;
        let metadata_len = head.metadata.encoded_len() + 2;
        if metadata_len > max_metadata.saturating_mul(METADATA_ABUSE_FACTOR) {
            return Err(ConnectionError::calm(Reason::MetadataAbuse {
                len: metadata_len,
                max: max_metadata,
            }));
        }
        let refusal = if self.goaway_sent.is_some() {
            Some((
                Code::Unavailable,
                "the server is shutting down and did not start this call; retry on a new connection",
            ))
        } else if self.calls.open_calls() >= self.config.settings.max_concurrent_calls as usize {
            Some((
                Code::ResourceExhausted,
                "too many concurrent calls on this connection; retry later or open another connection",
            ))
        } else if metadata_len > max_metadata {
            Some((
                Code::ResourceExhausted,
                "call metadata is over the server's max_metadata_size; send less metadata",
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            return self.queue_status(call_id, code, message, now);
        }
        let (send_window, recv_window) = self.windows.call_windows(&self.peer_settings);
        let state = CallState {
            local_open: true,
            remote_open: !end_stream,
            head_received: true,
            head_sent: false,
            send_window,
            recv_window,
            unacked: 0,
        };
        self.calls.open(call_id, state);
        self.events.push_back(Event::Request {
            call_id,
            head,
            message,
            end_stream,
        });
        Ok(())
    }
}
