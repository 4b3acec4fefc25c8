//! `ClientBuilder`: a [`Client`]'s options, and opening its connection.

use std::time::Duration;

use super::Client;
use super::connect::connect;
use crate::driver::DriverConfig;
use crate::error::Error;
use crate::net::{SocketConfig, ToAddress};
use crate::protocol::ConnectionConfig;

/// Configures and opens a [`Client`].
#[derive(Clone, Debug, Default)]
pub struct ClientBuilder {
    pub(crate) config: DriverConfig,
    pub(crate) timeout: Option<Duration>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::ClientTls>,
}

impl ClientBuilder {
    /// TCP socket options.
    #[must_use]
    pub fn socket_config(mut self, socket: SocketConfig) -> Self {
        self.config.socket = socket;
        self
    }

    /// Protocol settings, limits and timeouts.
    #[must_use]
    pub fn connection_config(mut self, connection: ConnectionConfig) -> Self {
        self.config.connection = connection;
        self
    }

    /// The timeout of every call that sets no deadline of its own ([`CallOptions::timeout`] or
    /// [`CallOptions::deadline`] override it). Without it, such calls wait as long as the
    /// connection lives, like tonic's default.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use volley::Client;
    ///
    /// let client = Client::builder().timeout(Duration::from_secs(2)).connect("127.0.0.1:7000").await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Pings the server after `interval` without traffic; the connection fails with
    /// UNAVAILABLE when no pong arrives within `timeout`.
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.connection.keepalive_interval = Some(interval);
        self.config.connection.keepalive_timeout = timeout;
        self
    }

    /// Largest frame this client accepts (responses); see `docs/PROTOCOL.md`.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.config.connection.settings.max_frame_size = bytes;
        self
    }

    /// Bytes the write queue may hold before callers wait.
    #[must_use]
    pub fn write_queue_cap(mut self, bytes: usize) -> Self {
        self.config.write_queue_cap = bytes;
        self
    }

    /// How long the server may read nothing while this client has bytes for it before the
    /// connection fails with UNAVAILABLE; see [`crate::driver::DEFAULT_WRITE_STALL_TIMEOUT`].
    #[must_use]
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_stall_timeout = timeout;
        self
    }

    /// Records this client's calls, latencies and connections in `metrics` (feature `metrics`).
    /// Calls to methods registered with
    /// [`Metrics::register_client_method`](crate::metrics::Metrics::register_client_method) get
    /// their own series; the others count under `other`.
    ///
    /// ```no_run
    /// use volley::metrics::Metrics;
    /// use volley::{CallOptions, Client};
    ///
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let metrics = Metrics::new();
    /// let say = metrics.register_client_method("/echo.Echo/Say");
    /// let client = Client::builder().metrics(metrics.clone()).connect("127.0.0.1:7000").await?;
    /// let reply: String = client.unary(say, &"hi".to_owned(), CallOptions::default()).await?;
    /// let p99 = metrics.snapshot().method("/echo.Echo/Say").map(|m| m.client.round_trip.quantile(0.99));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.config.metrics = Some(metrics);
        self
    }

    /// Connects with TLS (feature `tls`; TCP addresses only): verifies the server's certificate
    /// as `tls` says, and presents a client certificate if it has one.
    ///
    /// ```no_run
    /// # async fn demo(ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// use volley::Client;
    /// use volley::tls::ClientTls;
    ///
    /// let tls = ClientTls::builder().ca_pem(ca_pem)?.server_name("localhost").build()?;
    /// let client = Client::builder().tls(tls).connect("127.0.0.1:7443").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Connects and completes the handshake.
    pub async fn connect(self, address: impl ToAddress) -> Result<Client, Error> {
        let address = address.to_address()?;
        self.config
            .connection
            .settings
            .validate()
            .map_err(|err| Error::Config(err.to_string()))?;
        #[cfg(feature = "tls")]
        let (shared, socket) = connect(&address, &self.config, self.tls.as_ref()).await?;
        #[cfg(not(feature = "tls"))]
        let (shared, socket) = connect(&address, &self.config).await?;
        Ok(Client::over(shared, address, socket, self.timeout))
    }
}
