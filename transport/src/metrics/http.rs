//! A tiny HTTP/1.1 endpoint serving `GET /metrics`, for examples and quick looks. Production
//! services usually mount [`Metrics::encode`] or [`Metrics::register`] in their own HTTP server.
//!
//! It answers one request per connection and closes it, reads at most [`MAX_REQUEST_HEAD`]
//! bytes within [`REQUEST_TIMEOUT`], and serves at most [`MAX_SCRAPERS`] connections at once.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use prometheus_client::registry::Registry;

use super::Metrics;
use super::exposition::CONTENT_TYPE;

/// Where the examples serve metrics: loopback only, port 9464 (the port OpenTelemetry's
/// Prometheus exporter uses). Binding any other address exposes the metrics to that network.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// Bytes of request head read at most (8 KiB): a scrape's head is a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Time a scraper has to send its request (5 s), so an idle connection cannot hold a slot.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once (16); more are closed at accept.
const MAX_SCRAPERS: usize = 16;

/// A running metrics endpoint. Dropping it leaves it serving; [`MetricsEndpoint::shutdown`]
/// stops it.
#[derive(Debug)]
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl MetricsEndpoint {
    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting scrapes.
    pub fn shutdown(self) {
        self.accept.abort();
    }
}

impl Metrics {
    /// Serves these metrics at `http://{address}/metrics` on the current tokio runtime; see
    /// [`DEFAULT_METRICS_ADDR`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let metrics = volley::metrics::Metrics::new();
    /// let endpoint = metrics.serve_http("127.0.0.1:0").await?;
    /// println!("scrape http://{}/metrics", endpoint.local_addr());
    /// endpoint.shutdown();
    /// # Ok(()) }
    /// ```
    pub async fn serve_http(&self, address: impl ToSocketAddrs) -> io::Result<MetricsEndpoint> {
        serve(Exposition::Metrics(self.clone()), address).await
    }
}

/// Serves a whole `prometheus-client` registry (yours, with [`Metrics::register`] in it) at
/// `http://{address}/metrics` on the current tokio runtime, in the Prometheus text format.
///
/// ```
/// use std::sync::Arc;
/// use volley::metrics::prometheus_client::{metrics::counter::Counter, registry::Registry};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let metrics = volley::metrics::Metrics::new();
/// let mut registry = Registry::default();
/// let orders: Counter = Counter::default();
/// registry.register("orders", "Orders accepted", orders.clone());
/// metrics.register(&mut registry);
/// let endpoint = volley::metrics::serve_registry(Arc::new(registry), "127.0.0.1:0").await?;
/// println!("scrape http://{}/metrics", endpoint.local_addr());
/// endpoint.shutdown();
/// # Ok(()) }
/// ```
pub async fn serve_registry(registry: Arc<Registry>, address: impl ToSocketAddrs) -> io::Result<MetricsEndpoint> {
    serve(Exposition::Registry(registry), address).await
}

/// What an endpoint serves.
#[derive(Clone)]
enum Exposition {
    Metrics(Metrics),
    Registry(Arc<Registry>),
}

impl Exposition {
    fn encode(&self, out: &mut String) -> std::fmt::Result {
        match self {
            Self::Metrics(metrics) => metrics.encode(out),
            Self::Registry(registry) => prometheus_client::encoding::prometheus_text::encode(out, registry),
        }
    }
}

async fn serve(exposition: Exposition, address: impl ToSocketAddrs) -> io::Result<MetricsEndpoint> {
    let listener = TcpListener::bind(address).await?;
    let local_addr = listener.local_addr()?;
    let accept = tokio::spawn(accept_loop(exposition, listener));
    Ok(MetricsEndpoint { local_addr, accept })
}

async fn accept_loop(metrics: Exposition, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPERS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!("metrics endpoint: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // Too many scrapers: dropping the stream closes it.
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(err) = serve_one(&metrics, stream).await {
                tracing::debug!("metrics endpoint: {err}");
            }
            drop(permit);
        });
    }
}

/// Reads one request head and answers it.
async fn serve_one(metrics: &Exposition, mut stream: TcpStream) -> io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream, &mut head))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request head in time"))??;
    let response = if complete {
        respond(metrics, &head)
    } else {
        plain(431, "Request Header Fields Too Large", "request head too large\n")
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// Reads until the blank line ending the head; `false` if it is longer than allowed.
async fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(true);
        }
        if head.len() >= MAX_REQUEST_HEAD {
            return Ok(false);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// The whole response to a request head.
fn respond(metrics: &Exposition, head: &[u8]) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => {
            let mut body = String::with_capacity(16 * 1024);
            if metrics.encode(&mut body).is_err() {
                return plain(500, "Internal Server Error", "could not encode the metrics\n");
            }
            let mut answer = response(200, "OK", CONTENT_TYPE, body.as_bytes());
            if method == b"HEAD" {
                answer.truncate(answer.len() - body.len());
            }
            answer
        }
        (b"GET" | b"HEAD", _) => plain(404, "Not Found", "metrics are at /metrics\n"),
        _ => plain(405, "Method Not Allowed", "only GET /metrics is served\n"),
    }
}

fn plain(status: u16, reason: &str, body: &str) -> Vec<u8> {
    response(status, reason, "text/plain; charset=utf-8", body.as_bytes())
}

fn response(status: u16, reason: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &[u8]) -> String {
        String::from_utf8(response.to_vec()).expect("utf-8")
    }

    #[test]
    fn get_metrics_is_answered_with_the_exposition() {
        let metrics = Metrics::new();
        metrics.register_client_method("/a.B/C");
        let answer = text(&respond(
            &Exposition::Metrics(metrics.clone()),
            b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        ));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE));
        assert!(answer.contains("volley_client_calls_started_total{method=\"/a.B/C\"} 0"));
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        let metrics = Metrics::new();
        assert!(text(&respond(&Exposition::Metrics(metrics.clone()), b"GET / HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 404"));
        assert!(text(&respond(&Exposition::Metrics(metrics.clone()), b"POST /metrics HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 405"));
        assert!(text(&respond(&Exposition::Metrics(metrics.clone()), b"\r\n\r\n")).starts_with("HTTP/1.1 405"));
    }

    #[test]
    fn head_gets_the_headers_of_get_without_the_body() {
        let metrics = Metrics::new();
        let get = text(&respond(&Exposition::Metrics(metrics.clone()), b"GET /metrics HTTP/1.1\r\n\r\n"));
        let head = text(&respond(&Exposition::Metrics(metrics.clone()), b"HEAD /metrics HTTP/1.1\r\n\r\n"));
        let (headers, _body) = get.split_once("\r\n\r\n").expect("a head");
        assert_eq!(head, format!("{headers}\r\n\r\n"));
    }

    #[test]
    fn a_registry_is_served_with_its_own_metrics_beside_volleys() {
        use prometheus_client::metrics::counter::Counter;
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        let orders: Counter = Counter::default();
        orders.inc_by(3);
        registry.register("orders", "Orders accepted", orders);
        metrics.register(&mut registry);
        let answer = text(&respond(
            &Exposition::Registry(Arc::new(registry)),
            b"GET /metrics HTTP/1.1\r\n\r\n",
        ));
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("orders_total 3"), "{answer}");
        assert!(answer.contains("volley_connections_open"), "{answer}");
    }
}
