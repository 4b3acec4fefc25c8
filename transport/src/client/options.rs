//! Per-call options: deadline, metadata, priority, flush hint.

use std::time::{Duration, Instant};

use crate::wire::Metadata;

/// Options for one call. The default has no deadline, no metadata, priority 0 and flushes at once.
///
/// ```
/// use std::time::Duration;
/// use volley::{CallOptions, Metadata};
///
/// let mut metadata = Metadata::new();
/// metadata.insert("x-trace-id", "4bf92f35").unwrap();
/// let options = CallOptions::new().timeout(Duration::from_millis(50)).metadata(metadata).priority(7);
/// assert_eq!(options.priority_value(), 7);
/// ```
#[derive(Clone, Debug)]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) metadata: Metadata,
    pub(crate) priority: u8,
    pub(crate) flush: bool,
    pub(crate) idempotent: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            deadline: None,
            metadata: Metadata::new(),
            priority: 0,
            flush: true,
            idempotent: false,
        }
    }
}

impl CallOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the call with DEADLINE_EXCEEDED if it has not finished `timeout` after it starts.
    /// The time covers waiting for a call slot, writing and waiting for the answer; the server
    /// receives what is left of it. Without it (and without [`CallOptions::deadline`]) the
    /// client's default applies ([`crate::client::ClientBuilder::timeout`],
    /// [`crate::client::ChannelBuilder::timeout`]); with neither, the call has no deadline.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Like [`CallOptions::timeout`], as an absolute instant. With both, the earlier wins.
    #[must_use]
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Metadata sent in the call head.
    #[must_use]
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Scheduling priority, 0 (the default) to 255 (most urgent), carried in the call head.
    ///
    /// - **128 to 255 is the high lane**, on both sides of the connection: the Request of a
    ///   call that sends nothing after it (unary and server-streaming calls) and the server's
    ///   answer to it are written ahead of every frame queued in the normal lane, and between
    ///   two 64 KiB chunks of a large message even where normal frames must wait behind it (a
    ///   second large message queued before them). 0 to 127 is the normal lane: the order
    ///   queued. A high Request that finds another Request still waiting to be written goes in
    ///   the normal lane (call ids reach the server in order); a streamed answer's messages stay
    ///   in the normal lane.
    /// - **Nothing starves**: every write takes both lanes (high frames first), and a large
    ///   message advances by at least one 64 KiB chunk between two writes of smaller frames.
    /// - **The server dispatches** the calls one read brings highest priority first
    ///   ([`crate::server::CallContext::priority`] tells a handler its call's priority).
    ///
    /// Chunks, and so the lanes' effect beside large messages, need
    /// `ConnectionConfig::receive_chunks(true)` on both sides (docs/PROTOCOL.md section 5.12,
    /// "Lanes").
    ///
    /// ```
    /// use volley::CallOptions;
    ///
    /// // An order that must not wait behind a 16 MiB report on the same connection.
    /// let urgent = CallOptions::new().priority(255);
    /// assert_eq!(urgent.priority_value(), 255);
    /// // The default: the normal lane.
    /// assert_eq!(CallOptions::new().priority_value(), 0);
    /// ```
    #[must_use]
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The priority set.
    pub fn priority_value(&self) -> u8 {
        self.priority
    }

    /// With `false`, the request is queued without waking the writer: it goes out with the next
    /// call that flushes (the default), which lets a sender of a burst make one write syscall
    /// for all of it. The last call of a burst must flush.
    #[must_use]
    pub fn flush(mut self, flush: bool) -> Self {
        self.flush = flush;
        self
    }

    /// Declares the call idempotent: sending it twice does no more than sending it once. A
    /// [`crate::balance::BalancedChannel`] may then retry it on another endpoint after it failed
    /// with UNAVAILABLE (within its retry budget) and hedge it. Generated clients set it for
    /// methods whose `.proto` says `option idempotency_level = IDEMPOTENT` (or `NO_SIDE_EFFECTS`).
    ///
    /// ```
    /// use volley::CallOptions;
    ///
    /// assert!(CallOptions::new().idempotent(true).is_idempotent());
    /// assert!(!CallOptions::new().is_idempotent());
    /// ```
    #[must_use]
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Whether the call was declared idempotent.
    pub fn is_idempotent(&self) -> bool {
        self.idempotent
    }

    /// `timeout` as the call's timeout unless it sets a deadline of its own: how a client's
    /// default timeout applies (generated clients use it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use volley::CallOptions;
    ///
    /// let own = CallOptions::new().timeout(Duration::from_secs(1)).timeout_if_unset(Some(Duration::from_secs(9)));
    /// let default = CallOptions::new().timeout_if_unset(Some(Duration::from_secs(9)));
    /// assert!(own.has_deadline() && default.has_deadline());
    /// ```
    #[must_use]
    pub fn timeout_if_unset(mut self, timeout: Option<Duration>) -> Self {
        if !self.has_deadline() {
            self.timeout = timeout;
        }
        self
    }

    /// Whether the call sets its own deadline (a timeout or an instant).
    pub fn has_deadline(&self) -> bool {
        self.timeout.is_some() || self.deadline.is_some()
    }

    /// The instant the call must finish by, if any, counting from `start`; `default_timeout`
    /// (the client's, see [`crate::client::ClientBuilder::timeout`]) applies when the call sets none.
    pub(crate) fn deadline_from(&self, start: Instant, default_timeout: Option<Duration>) -> Option<Instant> {
        let from_timeout = self
            .timeout
            .or(default_timeout.filter(|_| self.deadline.is_none()))
            .map(|t| start + t);
        match (from_timeout, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
