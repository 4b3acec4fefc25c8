//! How a connection uses QUIC: the stream mapping it offers, the per-call mapping's memory
//! budget, and (clients) whether replay-safe calls may go in 0-RTT data.

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
    early_data: bool,
}

impl Default for QuicOptions {
    fn default() -> Self {
        Self {
            mapping: QuicMapping::PerCall,
            partial_frame_budget: DEFAULT_PARTIAL_FRAME_BUDGET,
            early_data: false,
        }
    }
}

impl QuicOptions {
    /// The defaults: the per-call mapping, [`DEFAULT_PARTIAL_FRAME_BUDGET`], no 0-RTT.
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

    /// Whether 0-RTT is enabled (see [`QuicOptions::early_data`]).
    pub fn is_early_data(&self) -> bool {
        self.early_data
    }

    /// Client: on a resumed session, send calls marked idempotent
    /// ([`CallOptions::idempotent`](crate::CallOptions::idempotent)) in 0-RTT data, before the
    /// handshake is confirmed; other calls wait for it. Off by default: 0-RTT data can be
    /// replayed by an attacker.
    #[must_use]
    pub fn early_data(mut self, early_data: bool) -> Self {
        self.early_data = early_data;
        self
    }

    /// The ALPN ids to offer, most preferred first.
    pub(crate) fn alpn(&self) -> Vec<Vec<u8>> {
        match self.mapping {
            QuicMapping::PerCall => vec![ALPN_VOLLEY_QUIC.to_vec(), crate::tls::ALPN_VOLLEY.to_vec()],
            QuicMapping::OneStream => vec![crate::tls::ALPN_VOLLEY.to_vec()],
        }
    }
}
