//! The client's QUIC options (feature `quic`).

use super::ClientBuilder;
use crate::quic::QuicOptions;

impl ClientBuilder {
    /// QUIC options for `quic://` addresses: the stream mapping offered (every frame on one QUIC
    /// stream by default; [`QuicMapping::PerCall`](crate::quic::QuicMapping::PerCall) for a stream
    /// per call, falling back to one stream with a `volley/1`-only server) and 0-RTT (which needs
    /// the per-call mapping).
    ///
    /// ```no_run
    /// use volley::Client;
    /// use volley::quic::{QuicMapping, QuicOptions};
    /// use volley::tls::ClientTls;
    ///
    /// # async fn demo(ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// let tls = ClientTls::builder().ca_pem(ca_pem)?.server_name("echo.example").build()?;
    /// let client = Client::builder()
    ///     .tls(tls)
    ///     .quic(QuicOptions::new().mapping(QuicMapping::PerCall))
    ///     .connect("quic://127.0.0.1:7443")
    ///     .await?;
    /// # drop(client);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn quic(mut self, options: QuicOptions) -> Self {
        self.config.quic = options;
        self
    }
}
