//! What only a client receives: the Response head (with or without the call's end) and the
//! final Status.

use std::time::Instant;

use super::Connection;
use crate::protocol::CallRecord;
use crate::protocol::{ConnectionError, ConnectionErrorReason as Reason, Event};
use crate::status::Status;
use crate::wire::{Frame, StatusFrame};

impl<X: CallRecord> Connection<X> {
    pub(super) fn on_client_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ConnectionError> {
        match frame {
            Frame::Response {
                call_id,
                metadata,
                message,
                end_stream,
            } => {
                let Some(state) = self.calls.state_mut(call_id) else {
                    // Legitimate only in a race with the call's end (a cancel): once per call.
                    self.charge_cheap_frame(now)?;
                    return self.check_known(call_id);
                };
                if state.head_received {
                    self.calls.close(call_id);
                    let status = Status::internal("protocol error: the server sent a second response head");
                    self.events.push_back(Event::Finished { call_id, status });
                    self.control.call_frames.push_back(Frame::Cancel { call_id });
                    return Ok(());
                }
                state.head_received = true;
                if end_stream {
                    self.calls.close(call_id);
                }
                self.events.push_back(Event::Response {
                    call_id,
                    metadata,
                    message,
                    end_stream,
                });
                Ok(())
            }
            Frame::Status { call_id, status } => {
                if self.calls.close(call_id).is_none() {
                    // Legitimate only in a race with the call's end (a cancel): once per call.
                    self.charge_cheap_frame(now)?;
                    return self.check_known(call_id);
                }
                let StatusFrame { code, metadata, .. } = &status;
                let status = Status::with_metadata(*code, status.message_str(), metadata.clone());
                self.events.push_back(Event::Finished { call_id, status });
                Ok(())
            }
            other => Err(ConnectionError::protocol(Reason::WrongDirection(other.kind()))),
        }
    }
}
