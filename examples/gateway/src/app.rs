//! Starting and stopping a whole gateway: journal replay, the Volley server with the services,
//! the metrics endpoint, and a graceful shutdown.

use std::net::SocketAddr;

use volley::metrics::MetricsEndpoint;
use volley::net::Address;
use volley::{Server, ServerHandle};

use crate::config::Config;
use crate::gateway::{Gateway, GatewayError, ReplaySummary};
use crate::journal::JournalError;
use crate::metrics::GatewayMetrics;
use crate::proto::admin_server::AdminServer;
use crate::proto::order_entry_server::OrderEntryServer;
use crate::service::Services;

/// A gateway that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The journal could not be opened or replayed.
    #[error("cannot open the gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// The listen address is not an address.
    #[error("bad listen address: {0}")]
    Address(String),
    /// The server could not be built or bound.
    #[error("cannot serve order entry on {address}: {source}; choose another --listen address")]
    Serve {
        /// Where it tried.
        address: String,
        /// Why it failed.
        source: volley::Error,
    },
    /// The metrics endpoint could not be bound.
    #[error("cannot serve metrics on {address}: {source}; choose another --metrics address or `off`")]
    Metrics {
        /// Where it tried.
        address: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// A running gateway.
#[derive(Debug)]
pub struct RunningGateway {
    gateway: Gateway,
    server: ServerHandle,
    metrics: Option<MetricsEndpoint>,
    replay: ReplaySummary,
}

impl RunningGateway {
    /// Replays the journal, then serves order entry and (if configured) metrics.
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let address: Address = config
            .listen
            .parse()
            .map_err(|err: volley::net::AddressParseError| StartError::Address(err.to_string()))?;
        let metrics = GatewayMetrics::new();
        let (gateway, replay) = Gateway::open(config, metrics.clone())?;
        if replay.records > 0 || replay.truncated_bytes > 0 {
            tracing::info!(
                records = replay.records,
                truncated_bytes = replay.truncated_bytes,
                "journal replayed"
            );
        }
        let services = Services::new(gateway.clone());
        let serve_error = |source| StartError::Serve {
            address: config.listen.clone(),
            source,
        };
        let mut builder = Server::builder();
        if let Some(interval) = config.keepalive_interval {
            builder = builder.keepalive(interval, config.keepalive_timeout);
        }
        let server = builder
            .add_service(OrderEntryServer::new(services.clone()))
            .add_service(AdminServer::new(services))
            .max_connections(config.max_connections)
            .drain_timeout(config.drain_timeout)
            .metrics(metrics.transport.clone())
            .build()
            .map_err(serve_error)?
            .serve(address)
            .await
            .map_err(serve_error)?;
        let endpoint = match &config.metrics {
            Some(address) => Some(
                volley::metrics::serve_registry(metrics.registry(), address.as_str())
                    .await
                    .map_err(|source| StartError::Metrics {
                        address: address.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        Ok(Self {
            gateway,
            server,
            metrics: endpoint,
            replay,
        })
    }

    /// Where order entry is served (with the real port when bound to port 0).
    pub fn local_addr(&self) -> &Address {
        self.server.local_addr()
    }

    /// Where metrics are served, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsEndpoint::local_addr)
    }

    /// What the journal replay found at start.
    pub fn replay(&self) -> ReplaySummary {
        self.replay
    }

    /// The gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The Volley server's transport statistics.
    pub fn server_stats(&self) -> volley::stats::StatsSnapshot {
        self.server.stats()
    }

    /// Shuts down gracefully: ends the subscriptions, stops accepting connections and calls
    /// (GoAway), lets the calls in flight finish (within the drain timeout), then flushes and
    /// syncs the journal.
    pub async fn shutdown(self) -> Result<(), JournalError> {
        self.gateway.fanout().close();
        self.server.shutdown().await;
        let result = self.gateway.close().await;
        if let Some(endpoint) = self.metrics {
            endpoint.shutdown();
        }
        result
    }

    /// Stops at once, as a crash would, except that the journal's writer still finishes what it
    /// was given (for tests of the graceful path's absence, use a real process and SIGKILL).
    pub fn abort(self) {
        self.gateway.stop_accepting();
        self.server.abort();
        if let Some(endpoint) = self.metrics {
            endpoint.shutdown();
        }
    }
}
