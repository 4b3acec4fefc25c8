//! Flow control for stream messages: a window in bytes per call and one per connection, in each
//! direction (docs/PROTOCOL.md, "Flow control").
//!
//! Only Message frames count. A sender may send a message while both its windows are positive;
//! the message may take them negative, so a message larger than a window still goes through and
//! a receiver buffers at most one window plus one message per call. A receiver grants credit as
//! the application consumes messages, once half a window has been consumed, so credit frames stay
//! few.

use std::collections::VecDeque;

use super::calls::CallState;
use crate::wire::{CallId, Frame, MAX_WINDOW, Settings};

/// The connection's windows, and what the application consumed but we have not yet credited.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionWindows {
    send: i64,
    recv: i64,
    unacked: u64,
    initial_recv: u32,
    initial_call_recv: u32,
}

/// Why credit from the peer is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowOverflow;

impl ConnectionWindows {
    pub(crate) fn new(local: &Settings, peer: &Settings) -> Self {
        Self {
            send: i64::from(peer.initial_connection_window),
            recv: i64::from(local.initial_connection_window),
            unacked: 0,
            initial_recv: local.initial_connection_window,
            initial_call_recv: local.initial_call_window,
        }
    }

    /// Windows of a new call.
    pub(crate) fn call_windows(&self, peer: &Settings) -> (i64, i64) {
        (i64::from(peer.initial_call_window), i64::from(self.initial_call_recv))
    }

    /// The peer's settings arrived after calls started with the defaults: shift the send windows
    /// by the difference, as HTTP/2 does.
    pub(crate) fn on_peer_settings<'a>(&mut self, old: &Settings, new: &Settings, calls: impl Iterator<Item = &'a mut CallState>) {
        self.send += i64::from(new.initial_connection_window) - i64::from(old.initial_connection_window);
        let delta = i64::from(new.initial_call_window) - i64::from(old.initial_call_window);
        for call in calls {
            call.send_window += delta;
        }
    }

    /// A message of `len` bytes arrived on `call`. `false` if the peer had no window left: a
    /// flow-control violation.
    pub(crate) fn on_receive(&mut self, call: &mut CallState, len: usize) -> bool {
        if call.recv_window <= 0 || self.recv <= 0 {
            return false;
        }
        let len = len as i64;
        call.recv_window -= len;
        self.recv -= len;
        true
    }

    /// The application consumed `len` bytes of `call_id`'s messages: queue credit once half a
    /// window is owed. `call` is `None` when the call has ended (only the connection is credited).
    pub(crate) fn release(&mut self, call_id: CallId, call: Option<&mut CallState>, len: usize, out: &mut VecDeque<Frame>) {
        if let Some(call) = call
            && call.remote_open
        {
            call.unacked += len as u64;
            if call.unacked >= u64::from(self.initial_call_recv / 2).max(1) {
                let increment = call.unacked.min(u64::from(MAX_WINDOW)) as u32;
                call.recv_window += i64::from(increment);
                call.unacked -= u64::from(increment);
                out.push_back(Frame::Credit { call_id, increment });
            }
        }
        self.unacked += len as u64;
        if self.unacked >= u64::from(self.initial_recv / 2).max(1) {
            let increment = self.unacked.min(u64::from(MAX_WINDOW)) as u32;
            self.recv += i64::from(increment);
            self.unacked -= u64::from(increment);
            out.push_back(Frame::Credit {
                call_id: CallId::CONNECTION,
                increment,
            });
        }
    }

    /// Whether a message may be sent on `call` now; if so, charges `len` bytes to both windows.
    pub(crate) fn try_send(&mut self, call: &mut CallState, len: usize) -> bool {
        if call.send_window <= 0 || self.send <= 0 {
            return false;
        }
        call.send_window -= len as i64;
        self.send -= len as i64;
        true
    }

    /// Takes up to `want` bytes of send window from `call` and the connection at once, for
    /// messages encoded later without asking again: as much as both windows hold, never taking
    /// either negative (0 when either is empty). What is not used goes back with
    /// [`ConnectionWindows::give_back`] before the next [`ConnectionWindows::try_send`], so the
    /// messages a window lets through are the same as one by one.
    pub(crate) fn reserve(&mut self, call: &mut CallState, want: usize) -> usize {
        let granted = (want as i64).min(call.send_window).min(self.send).max(0);
        call.send_window -= granted;
        self.send -= granted;
        granted as usize
    }

    /// Returns `bytes` taken by [`ConnectionWindows::reserve`] and not sent: to the connection,
    /// and to `call` while it has a state.
    pub(crate) fn give_back(&mut self, call: Option<&mut CallState>, bytes: usize) {
        self.send += bytes as i64;
        if let Some(call) = call {
            call.send_window += bytes as i64;
        }
    }

    /// Credit for the connection.
    pub(crate) fn credit_connection(&mut self, increment: u32) -> Result<(), WindowOverflow> {
        self.send = credit(self.send, increment)?;
        Ok(())
    }
}

/// Credit for a call.
pub(crate) fn credit_call(call: &mut CallState, increment: u32) -> Result<(), WindowOverflow> {
    call.send_window = credit(call.send_window, increment)?;
    Ok(())
}

fn credit(window: i64, increment: u32) -> Result<i64, WindowOverflow> {
    let window = window + i64::from(increment);
    if window > i64::from(MAX_WINDOW) {
        Err(WindowOverflow)
    } else {
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(send: i64, recv: i64) -> CallState {
        CallState {
            local_open: true,
            remote_open: true,
            head_received: true,
            head_sent: false,
            send_window: send,
            recv_window: recv,
            unacked: 0,
        }
    }

    fn small() -> Settings {
        Settings {
            initial_call_window: 100,
            initial_connection_window: 1000,
            ..Settings::default()
        }
    }

    #[test]
    fn a_sender_stops_once_its_window_is_spent_and_resumes_on_credit() {
        let mut conn = ConnectionWindows::new(&small(), &small());
        let mut c = call(100, 100);
        assert!(conn.try_send(&mut c, 60));
        assert!(conn.try_send(&mut c, 60), "a positive window admits one more message");
        assert!(!conn.try_send(&mut c, 1), "an exhausted window admits nothing");
        credit_call(&mut c, 50).unwrap();
        assert!(conn.try_send(&mut c, 10));
    }

    #[test]
    fn a_receiver_flags_a_message_beyond_the_window() {
        let mut conn = ConnectionWindows::new(&small(), &small());
        let mut c = call(100, 100);
        assert!(conn.on_receive(&mut c, 150));
        assert!(!conn.on_receive(&mut c, 1), "the window is spent: a violation");
    }

    #[test]
    fn credit_is_granted_after_half_a_window_is_consumed() {
        let mut conn = ConnectionWindows::new(&small(), &small());
        let mut c = call(100, 100);
        let mut out = VecDeque::new();
        conn.release(CallId(1), Some(&mut c), 40, &mut out);
        assert!(out.is_empty());
        conn.release(CallId(1), Some(&mut c), 20, &mut out);
        assert_eq!(
            out.pop_front(),
            Some(Frame::Credit {
                call_id: CallId(1),
                increment: 60
            })
        );
        assert_eq!(c.recv_window, 160);
    }

    #[test]
    fn credit_past_the_largest_window_is_an_error() {
        let mut c = call(i64::from(MAX_WINDOW) - 5, 0);
        assert_eq!(credit_call(&mut c, 10), Err(WindowOverflow));
    }
}
