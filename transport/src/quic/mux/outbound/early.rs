//! A client's 0-RTT bookkeeping: which Requests may go early, every byte that went, and what
//! happens when the server accepts or refuses the early data.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, BytesMut};

use super::{Outbound, Step};
use crate::quic::CLOSE_ABANDONED;
use crate::wire::{MethodId, PREFACE_LEN};

/// Bytes a client writes in 0-RTT data at most (64 KiB): all of them are kept until the
/// handshake is confirmed, to be sent again if the server refused them; past this, writes wait
/// for the confirmation.
pub const EARLY_DATA_CAP: usize = 64 * 1024;

/// A client connection in 0-RTT, until the handshake is confirmed.
#[derive(Debug)]
pub(in crate::quic::mux) struct Early {
    /// Methods whose Requests may go in early data.
    pub(super) methods: Vec<MethodId>,
    /// Every byte taken while early, in order.
    pub(super) sent: BytesMut,
}

impl Early {
    pub(in crate::quic::mux) fn new(methods: Vec<MethodId>) -> Self {
        Self {
            methods,
            sent: BytesMut::new(),
        }
    }
}

impl Outbound {
    /// The 0-RTT data was accepted (`true`) or refused: in the second case every stream opened
    /// early is gone, so the control stream is opened again and every byte written early is
    /// written again; returns the new control stream's receiving half for the reader.
    pub(in crate::quic::mux) fn early_done(&mut self, accepted: bool) -> Option<quinn::RecvStream> {
        let early = self.early.take()?;
        let mut reopened = None;
        if !accepted {
            self.wakeups.discard_opened();
            let mut cx = Context::from_waker(Waker::noop());
            // Stream credit is the handshake's fresh grant.
            match pin!(self.connection.open_bi()).poll(&mut cx) {
                Poll::Ready(Ok((send, recv))) => {
                    self.control = send;
                    reopened = Some(recv);
                }
                _ => {
                    tracing::debug!("QUIC 0-RTT refused and no stream to send again on");
                    self.connection.close(CLOSE_ABANDONED, b"0-RTT refused");
                    return None;
                }
            }
            self.calls.clear();
            self.highest_opened = 0;
            self.preface_left = PREFACE_LEN;
            self.header_len = 0;
            self.frame = None;
            self.opening = None;
            self.resend = early.sent.freeze();
            let _ = self.drain_resend(&mut cx);
        }
        if let Some(writer) = self.writer.take() {
            writer.wake();
        }
        reopened
    }

    /// Writes what is left to send again; `true` once nothing is.
    pub(super) fn drain_resend(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        while !self.resend.is_empty() {
            let resend = self.resend.clone();
            match self.step(&resend, cx)? {
                Step::Took(0) | Step::Blocked => return Ok(false),
                Step::Took(n) => self.resend.advance(n),
            }
        }
        Ok(true)
    }
}
