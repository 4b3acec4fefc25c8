//! How a connection uses QUIC: the stream mapping it offers, the per-call mapping's memory
//! budget, and 0-RTT: which replay-safe methods a client sends in early data, whether a server
//! accepts it.

use crate::wire::MethodId;

/// The ALPN id of the per-call stream mapping (`volley-quic/2`): one QUIC stream per call and a
/// control stream (docs/PROTOCOL.md, "QUIC"). Clients offer it before
/// [`ALPN_VOLLEY`](crate::tls::ALPN_VOLLEY), servers prefer it.
pub const ALPN_VOLLEY_QUIC: &[u8] = b"volley-quic/2";

/// Bytes of incomplete frames the per-call mapping holds for all of a connection's streams
/// together (64 MiB, four default connection windows): frames arrive whole on each stream only
/// once their last packet is in, and a peer must not make us hold partial frames on thousands of
/// streams. Over it the connection closes with [`MappingError::PartialFramesOverBudget`](crate::quic::MappingError).
pub const DEFAULT_PARTIAL_FRAME_BUDGET: usize = 64 * 1024 * 1024;

/// Which stream mapping a QUIC connection offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuicMapping {
    /// One QUIC stream per call plus a control stream (ALPN `volley-quic/2`), falling back to
    /// [`QuicMapping::OneStream`] with a peer that offers only `volley/1`. The default.
    #[default]
    PerCall,
    /// Every frame on one bidirectional stream (ALPN `volley/1` only), as over TCP: a lost
    /// packet delays every call behind it.
    OneStream,
}

/// QUIC options of a client or server (feature `quic`), set with `ClientBuilder::quic` or
/// `ServerBuilder::quic`.
///
/// ```
/// use volley::quic::{QuicMapping, QuicOptions};
///
/// let options = QuicOptions::new().mapping(QuicMapping::OneStream).partial_frame_budget(8 << 20);
/// assert_eq!(options.mapping_offered(), QuicMapping::OneStream);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicOptions {
    mapping: QuicMapping,
    partial_frame_budget: usize,
    /// Client: methods whose calls may go in 0-RTT data (replay-safe, marked by the user).
    early_data_methods: Vec<MethodId>,
    /// Server: accept 0-RTT data.
    accept_early_data: bool,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            mapping: QuicMapping::PerCall,
            partial_frame_budget: DEFAULT_PARTIAL_FRAME_BUDGET,
            early_data_methods: Vec::new(),
            accept_early_data: false,
        }
    }
}

impl QuicOptions {
    /// The defaults: the per-call mapping, [`DEFAULT_PARTIAL_FRAME_BUDGET`], no 0-RTT either way.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream mapping to offer (clients) or accept (servers).
    #[must_use]
    pub fn mapping(mut self, mapping: QuicMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// See [`DEFAULT_PARTIAL_FRAME_BUDGET`].
    #[must_use]
    pub fn partial_frame_budget(mut self, bytes: usize) -> Self {
        self.partial_frame_budget = bytes;
        self
    }

    /// The mapping offered.
    pub fn mapping_offered(&self) -> QuicMapping {
        self.mapping
    }

    /// The partial-frame budget.
    pub fn partial_frame_budget_bytes(&self) -> usize {
        self.partial_frame_budget
    }

    /// Client: marks `method` idempotent for 0-RTT. On a resumed TLS session (the same
    /// `ClientTls` used again) a client with at least one such method connects in 0-RTT: its
    /// preface and Settings, and Requests of these methods, go in early data before the
    /// handshake is confirmed; a Request of any other method waits for the confirmation, and
    /// everything written after it too. Early data can be replayed by an attacker who recorded
    /// it, so mark only methods whose repetition is harmless (as for
    /// [`BalancedChannelBuilder::idempotent`](crate::balance::BalancedChannelBuilder::idempotent) retries).
    /// [`CallOptions::idempotent`](crate::CallOptions::idempotent) is not consulted: the choice
    /// is made per method, on the wire. A server that refuses the early data (or does not accept
    /// any, the default) makes the client send the same bytes again once the handshake is done.
    ///
    /// ```
    /// use volley::MethodId;
    /// use volley::quic::QuicOptions;
    ///
    /// let options = QuicOptions::new().early_data_for(MethodId::from_name("/kv.Store/Get"));
    /// assert_eq!(options.early_data_methods(), &[MethodId::from_name("/kv.Store/Get")]);
    /// ```
    #[must_use]
    pub fn early_data_for(mut self, method: MethodId) -> Self {
        if !self.early_data_methods.contains(&method) {
            self.early_data_methods.push(method);
        }
        self
    }

    /// The methods whose calls may go in 0-RTT data (client).
    pub fn early_data_methods(&self) -> &[MethodId] {
        &self.early_data_methods
    }

    /// Server: accept 0-RTT data from clients resuming a session (rustls
    /// `max_early_data_size` = `u32::MAX`, as QUIC requires), and serve the calls in it at once
    /// (0.5-RTT). Off by default. Servers that require client certificates never serve early
    /// data before the handshake is done: the client's certificate is not checked yet.
    #[must_use]
    pub fn accept_early_data(mut self, accept: bool) -> Self {
        self.accept_early_data = accept;
        self
    }

    /// Whether the server accepts 0-RTT data.
    pub fn accepts_early_data(&self) -> bool {
        self.accept_early_data
    }

    /// The ALPN ids to offer, most preferred first.
    pub(crate) fn alpn(&self) -> Vec<Vec<u8>> {
        match self.mapping {
            QuicMapping::PerCall => vec![ALPN_VOLLEY_QUIC.to_vec(), crate::tls::ALPN_VOLLEY.to_vec()],
            QuicMapping::OneStream => vec![crate::tls::ALPN_VOLLEY.to_vec()],
        }
    }
}
