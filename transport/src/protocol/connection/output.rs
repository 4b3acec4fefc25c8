//! Output: frames to send and events for the application.

use bytes::BytesMut;

use super::Connection;
use crate::protocol::CallRecord;
use crate::protocol::Event;
use crate::wire::Code;
use crate::wire::{Frame, Preface};

impl<X: CallRecord> Connection<X> {
    /// Writes every pending control frame into `dst`; returns the number of frames written.
    pub fn poll_transmit(&mut self, dst: &mut BytesMut) -> usize {
        let mut frames = 0;
        if std::mem::take(&mut self.control.preface_and_settings) {
            dst.extend_from_slice(&Preface::CURRENT.encode());
            Frame::Settings(self.config.settings).encode(dst);
            frames += 1;
        }
        if let Some(payload) = self.control.pong.take() {
            Frame::Pong { payload }.encode(dst);
            frames += 1;
        }
        if let Some(payload) = self.control.ping.take() {
            Frame::Ping { payload }.encode(dst);
            frames += 1;
        }
        // A graceful GoAway goes before the call frames queued with it: the peer then knows which
        // calls were never started before it reads their refusals. An error GoAway goes last.
        if self.control.goaway.as_ref().is_some_and(|goaway| goaway.code == Code::Ok)
            && let Some(goaway) = self.control.goaway.take()
        {
            Frame::GoAway(goaway).encode(dst);
            frames += 1;
        }
        // Control lane: acknowledges the chunk bytes this read took (section 5.12).
        if let Some(ack) = self.chunks.take_ack() {
            dst.extend_from_slice(&ack.encode());
            frames += 1;
        }
        while let Some(frame) = self.control.call_frames.pop_front() {
            frame.encode(dst);
            frames += 1;
        }
        if let Some(goaway) = self.control.goaway.take() {
            Frame::GoAway(goaway).encode(dst);
            frames += 1;
        }
        frames
    }

    /// Whether [`Connection::poll_transmit`] has anything to write.
    pub fn has_transmit(&self) -> bool {
        let c = &self.control;
        c.preface_and_settings
            || c.pong.is_some()
            || c.ping.is_some()
            || c.goaway.is_some()
            || !c.call_frames.is_empty()
            || self.chunks.has_ack()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
