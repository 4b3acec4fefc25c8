//! Time: handshake timeout, keepalive pings, dead-peer detection, idle timeout, partial frames.

use std::time::Instant;

use super::{Connection, Phase, Role};
use crate::protocol::CallRecord;
use crate::protocol::{ConnectionError, ConnectionErrorReason as Reason};
use crate::wire::Code;

impl<X: CallRecord> Connection<X> {
    /// The next instant [`Connection::handle_timeout`] must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        if self.phase != Phase::Open {
            return Some(self.started_at + self.config.handshake_timeout);
        }
        let keepalive = match self.ping_outstanding {
            Some((_, sent_at)) => Some(sent_at + self.config.keepalive_timeout),
            None => self.keepalive_interval().map(|interval| self.last_received_at + interval),
        };
        let partial = self.partial_frame.map(|frame| frame.check_from + self.config.partial_frame_timeout);
        [keepalive, self.idle_deadline(), partial].into_iter().flatten().min()
    }

    /// (server) When the connection counts as idle, unless it is already going away.
    fn idle_deadline(&self) -> Option<Instant> {
        match (self.role, self.config.idle_timeout, self.goaway_sent) {
            (Role::Server, Some(timeout), None) => Some(self.last_active_at + timeout),
            _ => None,
        }
    }

    fn keepalive_interval(&self) -> Option<std::time::Duration> {
        let peer_min = std::time::Duration::from_millis(u64::from(self.peer_settings.min_ping_interval_ms));
        self.config.keepalive_interval.map(|interval| interval.max(peer_min))
    }

    /// Acts on the clock: handshake timeout, keepalive pings, dead-peer detection.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        if self.phase != Phase::Open {
            if now >= self.started_at + self.config.handshake_timeout {
                return self.fail(ConnectionError {
                    code: Code::Unavailable,
                    reason: Reason::HandshakeTimeout,
                });
            }
            return Ok(());
        }
        if let Some(frame) = self.partial_frame {
            let timeout = self.config.partial_frame_timeout;
            if now >= frame.progress_at + timeout {
                return self.fail(ConnectionError {
                    code: Code::Unavailable,
                    reason: Reason::PartialFrameTimeout,
                });
            }
            if now >= frame.check_from + timeout {
                // Bytes arrived since: check again one timeout after the last of them.
                self.partial_frame = Some(super::PartialFrame {
                    check_from: frame.progress_at,
                    ..frame
                });
            }
        }
        if self.idle_deadline().is_some_and(|at| now >= at) {
            if self.calls.open_calls() == 0 {
                // A graceful close: the driver ends the connection once the GoAway is out.
                self.go_away("idle timeout: no calls on this connection for a while; reconnect when needed");
            } else {
                // Calls are running: look again one idle period from now.
                self.last_active_at = now;
            }
        }
        match self.ping_outstanding {
            Some((_, sent_at)) if now >= sent_at + self.config.keepalive_timeout => self.fail(ConnectionError {
                code: Code::Unavailable,
                reason: Reason::KeepaliveTimeout,
            }),
            Some(_) => Ok(()),
            None => {
                if let Some(interval) = self.keepalive_interval()
                    && now >= self.last_received_at + interval
                {
                    let payload = self.next_ping_payload;
                    self.next_ping_payload = self.next_ping_payload.wrapping_add(1);
                    self.control.ping = Some(payload);
                    self.ping_outstanding = Some((payload, now));
                }
                Ok(())
            }
        }
    }

    /// The driver found that its socket took none of the bytes waiting for it for the write
    /// stall timeout (the driver keeps that clock: this core does no IO). The connection fails
    /// with `UNAVAILABLE`; the GoAway is queued for the driver to write after the frame in
    /// progress, if the socket still takes bytes (PROTOCOL.md section 9, "Write stall timeout").
    pub fn handle_write_stall(&mut self) -> Result<(), ConnectionError> {
        self.fail(ConnectionError {
            code: Code::Unavailable,
            reason: Reason::WriteStall,
        })
    }
}
