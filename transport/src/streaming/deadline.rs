//! A call's deadline as a timer a stream half can poll.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Instant;

use tokio::time::Sleep;

/// The instant a streaming call must end by, with its timer created on first use.
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    at: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    pub(crate) fn new(at: Option<Instant>) -> Self {
        Self { at, timer: None }
    }

    /// Whether the deadline has passed; otherwise arranges for `cx` to be woken when it does.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.at else { return false };
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
        timer.as_mut().poll(cx).is_ready()
    }
}
