//! Who a connection is: a process-unique id, the peer's address, and whether it has ended.
//! Small and separate from [`super::Shared`] so handlers may keep it after the connection is
//! gone without keeping the connection's buffers alive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::Notify;

use crate::net::Address;

/// The id the next connection gets; ids start at 1 and are never reused within a process.
static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// A connection's identity and its end.
#[derive(Debug)]
pub(crate) struct Identity {
    id: u64,
    peer: Option<Address>,
    /// The peer's verified certificate identity (TLS with a client certificate).
    #[cfg(feature = "tls")]
    tls_peer: Option<std::sync::Arc<crate::tls::PeerIdentity>>,
    closed: AtomicBool,
    /// The connection is closing gracefully (this side sent a GoAway), or has closed.
    draining: AtomicBool,
    /// Wakes waiters of both `closed` and `draining`.
    on_close: Notify,
}

impl Identity {
    /// A new identity with the next id.
    pub(crate) fn new(peer: Option<Address>) -> Self {
        Self {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            #[cfg(feature = "tls")]
            tls_peer: None,
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            on_close: Notify::new(),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn peer(&self) -> Option<&Address> {
        self.peer.as_ref()
    }

    #[cfg(feature = "tls")]
    pub(crate) fn set_tls_peer(&mut self, peer: Option<std::sync::Arc<crate::tls::PeerIdentity>>) {
        self.tls_peer = peer;
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls_peer(&self) -> Option<&crate::tls::PeerIdentity> {
        self.tls_peer.as_deref()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks the connection as closing gracefully and wakes every [`Identity::draining`] waiter.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.on_close.notify_waiters();
    }

    /// Marks the connection ended and wakes every [`Identity::closed`] and
    /// [`Identity::draining`] waiter.
    pub(crate) fn close(&self) {
        self.draining.store(true, Ordering::Release);
        self.closed.store(true, Ordering::Release);
        self.on_close.notify_waiters();
    }

    /// Resolves once the connection has ended (at once if it already has).
    pub(crate) async fn closed(&self) {
        self.until(Self::is_closed).await;
    }

    /// Resolves once the connection is closing gracefully or has ended (at once if so).
    pub(crate) async fn draining(&self) {
        self.until(Self::is_draining).await;
    }

    async fn until(&self, done: fn(&Self) -> bool) {
        loop {
            let notified = self.on_close.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }
}
