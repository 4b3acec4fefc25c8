//! How a connection uses QUIC: the stream mapping it offers, the per-call mapping's memory
//! budget, and 0-RTT: which replay-safe methods a client sends in early data, whether a server
//! accepts it.

use crate::wire::MethodId;

/// The ALPN id of the per-call stream mapping (`volley-quic/2`): one QUIC stream per call and a
/// control stream (docs/PROTOCOL.md, "QUIC"). Clients that ask for that mapping offer it before
/// [`ALPN_VOLLEY`](crate::tls::ALPN_VOLLEY); servers accept either and prefer it when offered.
pub const ALPN_VOLLEY_QUIC: &[u8] = b"volley-quic/2";

/// Bytes of incomplete frames the per-call mapping holds for all of a connection's streams
/// together (64 MiB, four default connection windows): frames arrive whole on each stream only
/// once their last packet is in, and a peer must not make us hold partial frames on thousands of
/// streams. Over it the connection closes with [`MappingError::PartialFramesOverBudget`](crate::quic::MappingError).
pub const DEFAULT_PARTIAL_FRAME_BUDGET: usize = 64 * 1024 * 1024;

/// Which stream mapping a QUIC connection offers (client) or accepts (server).
///
/// The one-stream mapping is the default: on loopback it keeps QUIC's p50 for small calls within
/// 1.5x TCP's, where a stream per call costs about 1.4 us of quinn's CPU per call (3.3x TCP's
/// p50 at 128 calls in flight), and under 1 % loss its p99 was as good or better in every case
/// measured; a stream per call can pay off where a lost packet would hold up other calls for
/// long (docs/PROTOCOL.md, "QUIC", has the figures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuicMapping {
    /// Every frame on one bidirectional stream (ALPN `volley/1`), as over TCP: a lost packet
    /// delays every call behind it. The default.
    #[default]
    OneStream,
    /// One QUIC stream per call plus a control stream (ALPN `volley-quic/2`), falling back to
    /// [`QuicMapping::OneStream`] with a peer that offers only `volley/1`. Needed for 0-RTT
    /// ([`QuicOptions::early_data_for`]).
    PerCall,
}

/// QUIC options of a client or server (feature `quic`), set with `ClientBuilder::quic` or
/// `ServerBuilder::quic`.
///
/// A client offers the one-stream mapping unless asked for a stream per call; a server accepts
/// both unless restricted to one stream:
///
/// ```
/// use volley::quic::{QuicMapping, QuicOptions};
///
/// assert_eq!(QuicOptions::new().mapping_offered(), QuicMapping::OneStream);
/// let options = QuicOptions::new().mapping(QuicMapping::PerCall).partial_frame_budget(8 << 20);
/// assert_eq!(options.mapping_offered(), QuicMapping::PerCall);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicOptions {
    /// The mapping asked for; `None` is the default: clients offer one stream, servers accept both.
    mapping: Option<QuicMapping>,
    partial_frame_budget: usize,
    /// Client: methods whose calls may go in 0-RTT data (replay-safe, marked by the user).
    early_data_methods: Vec<MethodId>,
    /// Server: accept 0-RTT data.
    accept_early_data: bool,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            mapping: None,
            partial_frame_budget: DEFAULT_PARTIAL_FRAME_BUDGET,
            early_data_methods: Vec::new(),
            accept_early_data: false,
        }
    }
}

impl QuicOptions {
    /// The defaults: clients offer the one-stream mapping, servers accept both mappings;
    /// [`DEFAULT_PARTIAL_FRAME_BUDGET`], no 0-RTT either way.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stream mapping to offer (clients) or accept (servers). A client given
    /// [`QuicMapping::PerCall`] offers `volley-quic/2` first and `volley/1` second; a server given
    /// [`QuicMapping::OneStream`] accepts only `volley/1` (a per-call client then falls back to
    /// one stream). Servers accept both mappings by default, clients offer one stream.
    ///
    /// ```
    /// use volley::quic::{QuicMapping, QuicOptions};
    ///
    /// // A client that wants a stream per call (no head-of-line blocking between calls).
    /// let options = QuicOptions::new().mapping(QuicMapping::PerCall);
    /// assert_eq!(options.mapping_offered(), QuicMapping::PerCall);
    /// ```
    #[must_use]
    pub fn mapping(mut self, mapping: QuicMapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// See [`DEFAULT_PARTIAL_FRAME_BUDGET`].
    #[must_use]
    pub fn partial_frame_budget(mut self, bytes: usize) -> Self {
        self.partial_frame_budget = bytes;
        self
    }

    /// The mapping a client offers: the one set with [`QuicOptions::mapping`], else
    /// [`QuicMapping::OneStream`].
    pub fn mapping_offered(&self) -> QuicMapping {
        self.mapping.unwrap_or_default()
    }

    /// Whether a server accepts the per-call mapping: unless restricted to
    /// [`QuicMapping::OneStream`].
    pub fn accepts_per_call(&self) -> bool {
        self.mapping != Some(QuicMapping::OneStream)
    }

    /// The partial-frame budget.
    pub fn partial_frame_budget_bytes(&self) -> usize {
        self.partial_frame_budget
    }

    /// Client: marks `method` idempotent for 0-RTT. 0-RTT needs the per-call mapping (the server
    /// tells early calls apart by their stream): a client on the one-stream mapping, the default,
    /// never sends early data, so ask for [`QuicMapping::PerCall`] too. On a resumed TLS session
    /// (the same `ClientTls` used again) such a client with at least one such method connects in 0-RTT: its
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
    /// use volley::quic::{QuicMapping, QuicOptions};
    ///
    /// let options = QuicOptions::new()
    ///     .mapping(QuicMapping::PerCall)
    ///     .early_data_for(MethodId::from_name("/kv.Store/Get"));
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

    /// The ALPN ids a client offers, most preferred first.
    pub(crate) fn client_alpn(&self) -> Vec<Vec<u8>> {
        match self.mapping_offered() {
            QuicMapping::PerCall => vec![ALPN_VOLLEY_QUIC.to_vec(), crate::tls::ALPN_VOLLEY.to_vec()],
            QuicMapping::OneStream => vec![crate::tls::ALPN_VOLLEY.to_vec()],
        }
    }

    /// The ALPN ids a server accepts, most preferred first (rustls picks the first the client
    /// offered): `volley-quic/2` wins only with a client that asked for it.
    pub(crate) fn server_alpn(&self) -> Vec<Vec<u8>> {
        if self.accepts_per_call() {
            vec![ALPN_VOLLEY_QUIC.to_vec(), crate::tls::ALPN_VOLLEY.to_vec()]
        } else {
            vec![crate::tls::ALPN_VOLLEY.to_vec()]
        }
    }
}
