//! `Channel`: a client that reconnects, with exponential backoff and jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio_util::either::Either;

use super::connection::{decode_response, decode_response_parts};
use super::{CallOptions, Client, ClientBuilder};
use crate::error::Error;
use crate::interceptor::{ClientInterceptor, ClientInterceptors, Target};
use crate::method::CallTarget;
use crate::net::{Address, ToAddress};
use crate::response::Response;
use crate::stats::StatsSnapshot;
use crate::status::{Code, Status};
use crate::streaming::{ClientStreamingCall, StreamSender, Streaming};
use crate::sync::{Mutex, lock};
use crate::wire::MethodId;

/// Times a [`Channel`] sends a unary call again after the server refused it unstarted (3): one
/// covers a graceful restart; more covers servers restarting in a row, yet a server that refuses
/// everything cannot keep a call looping.
pub const MAX_TRANSPARENT_RETRIES: u32 = 3;

/// Reconnection delays: `initial`, then multiplied by `multiplier` per failed attempt up to
/// `max`, each spread by ±`jitter` (a fraction) so many clients do not reconnect in step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// Delay after the first failure (default 50 ms).
    pub initial: Duration,
    /// Largest delay (default 5 s).
    pub max: Duration,
    /// Growth per failure (default 2.0).
    pub multiplier: f64,
    /// Random spread as a fraction of the delay (default 0.2, so ±20 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before attempt number `failures + 1`, given a random `unit` in [0, 1).
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * self.multiplier.powi(failures.saturating_sub(1).min(64) as i32);
        let base = base.min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base * spread).max(0.0))
    }
}

/// Configures a [`Channel`].
#[derive(Clone, Debug, Default)]
pub struct ChannelBuilder {
    client: ClientBuilder,
    backoff: Backoff,
    interceptors: ClientInterceptors,
}

impl ChannelBuilder {
    /// Options for each connection the channel opens.
    #[must_use]
    pub fn client(mut self, client: ClientBuilder) -> Self {
        self.client = client;
        self
    }

    /// The timeout of every call that sets no deadline of its own; see
    /// [`ClientBuilder::timeout`].
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.timeout = Some(timeout);
        self
    }

    /// Connects (and reconnects) with TLS (feature `tls`); see [`ClientBuilder::tls`].
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::ClientTls) -> Self {
        self.client.tls = Some(tls);
        self
    }

    /// Reads each connection the channel opens with a busy-polling thread instead of the reader
    /// task; see [`ClientBuilder::busy_poll`] and [`crate::busy_poll`]. A reconnection gets a
    /// poller of its own; the old one ends with the old connection.
    #[must_use]
    pub fn busy_poll(mut self, busy_poll: crate::busy_poll::BusyPoll) -> Self {
        self.client.config.busy_poll = Some(busy_poll);
        self
    }

    /// The reconnection schedule.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Runs `interceptor` around every call of the channel: it sees and may change the call
    /// head before anything is written, may fail the call, and observes the outcome.
    /// Interceptors run in the order installed. Its
    /// [`on_connect`](ClientInterceptor::on_connect) runs when the channel is built and may
    /// refuse the address (a [`BearerToken`](crate::interceptor::BearerToken) refuses to send
    /// a token in plaintext to another host). See [`crate::interceptor`].
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use volley::Channel;
    /// use volley::interceptor::BearerToken;
    ///
    /// let channel = Channel::builder().interceptor(BearerToken::new("s3cret")?).connect("127.0.0.1:7000").await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn interceptor(mut self, interceptor: impl ClientInterceptor) -> Self {
        self.interceptors.push(interceptor);
        self
    }

    /// A channel that connects on its first call.
    pub fn connect_lazy(self, address: impl ToAddress) -> Result<Channel, Error> {
        let address = address.to_address()?;
        #[cfg(feature = "tls")]
        let secure = self.client.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let secure = false;
        self.interceptors.check(&Target::new(&address, secure))?;
        Ok(Channel {
            inner: Arc::new(Inner {
                interceptors: self.interceptors,
                address,
                builder: self.client,
                backoff: self.backoff,
                current: Mutex::new(None),
                reconnect: tokio::sync::Mutex::new(Attempts {
                    failures: 0,
                    next_attempt: None,
                    last_error: String::new(),
                }),
                random: Mutex::new(RandomState::new().build_hasher().finish() | 1),
            }),
        })
    }

    /// A channel with its first connection open.
    pub async fn connect(self, address: impl ToAddress) -> Result<Channel, Error> {
        let channel = self.connect_lazy(address)?;
        let client = channel.inner.builder.clone().connect(&channel.inner.address).await?;
        *lock(&channel.inner.current) = Some(client);
        Ok(channel)
    }
}

/// A client that keeps a connection to one address open: when the connection drops or the
/// server sends a GoAway, the next call opens a new one, waiting out an exponential backoff
/// with jitter after failed attempts. Cheap to clone.
///
/// Calls that were running on a lost connection fail with UNAVAILABLE; the channel does not
/// retry them, since only the caller knows whether a call is safe to repeat. Unary calls the
/// server certainly never started (refused by its GoAway, or never written) are the exception:
/// they are sent again on a new connection (see [`Channel::unary_bytes`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use volley::{CallOptions, Channel, MethodId};
///
/// let channel = Channel::builder().connect_lazy("127.0.0.1:7000")?;
/// let reply: String = channel.unary(MethodId::from_name("/echo.Echo/Say"), &"hi".to_owned(), CallOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Channel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Empty unless interceptors were installed: then calls go through them.
    interceptors: ClientInterceptors,
    address: Address,
    builder: ClientBuilder,
    backoff: Backoff,
    current: Mutex<Option<Client>>,
    reconnect: tokio::sync::Mutex<Attempts>,
    random: Mutex<u64>,
}

#[derive(Debug)]
struct Attempts {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: String,
}

impl Channel {
    /// A builder.
    pub fn builder() -> ChannelBuilder {
        ChannelBuilder::default()
    }

    /// A [`BalancedChannel`](crate::balance::BalancedChannel) over a fixed list of addresses,
    /// with default options (see [`BalancedChannel::builder`](crate::balance::BalancedChannel::builder)
    /// for the others): calls go to the less loaded of two endpoints drawn at random;
    /// connections open on first use. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use volley::Channel;
    ///
    /// let channel = Channel::balance_list(["127.0.0.1:7001", "127.0.0.2:7001"])?;
    /// assert_eq!(channel.endpoints().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn balance_list<A: ToAddress>(addresses: impl IntoIterator<Item = A>) -> Result<crate::balance::BalancedChannel, Error> {
        crate::balance::BalancedChannel::builder().build(addresses)
    }

    /// A unary call over the current connection, opening one first if needed. See
    /// [`Client::unary`].
    pub fn unary<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Status>>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        // An `async` block over `call`, not an `async fn` over `unary_bytes`: each `async fn`
        // layer keeps its own copies of the arguments in the call's future (see
        // `Client::unary_attempt`), which a task spawned per call moves whole.
        let method = method.method_id();
        async move { decode_response(self.call(method, request, options).await?.into_inner()) }
    }

    /// Like [`Channel::unary`], returning the response with its head metadata and trailers; see
    /// [`Client::unary_response`].
    pub async fn unary_response<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        decode_response_parts(self.call(method.method_id(), request, options).await?)
    }

    /// Like [`Channel::unary`], returning the response's encoded bytes.
    ///
    /// A call the server certainly never started (the connection was closing before it was
    /// written, or the server's GoAway refused it) is sent again on a new connection, up to
    /// [`MAX_TRANSPARENT_RETRIES`] times within the call's deadline: a graceful server restart
    /// shows no errors to callers that set a deadline.
    pub async fn unary_bytes<Req: prost::Message>(&self, method: MethodId, request: &Req, options: CallOptions) -> Result<Bytes, Status> {
        self.call(method, request, options).await.map(Response::into_inner)
    }

    /// A unary call through the interceptors, if any.
    pub(crate) fn call<Req: prost::Message>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response<Bytes>, Status>> {
        // Picks the future up front rather than awaiting one inside another, which would keep
        // room for the arguments in both.
        if self.inner.interceptors.is_empty() {
            Either::Right(self.call_plain(method, request, options))
        } else {
            // Boxed, so the intercepted path does not grow the plain call's future.
            Either::Left(Box::pin(crate::interceptor::intercept_unary(self, method, request, options)))
        }
    }

    /// The channel's interceptors.
    pub(crate) fn interceptors(&self) -> &ClientInterceptors {
        &self.inner.interceptors
    }

    /// A unary call with its transparent retries: the response undecoded, with its metadata.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice in its future")]
    pub(crate) fn call_plain<Req: prost::Message>(
        &self,
        method: MethodId,
        request: &Req,
        mut options: CallOptions,
    ) -> impl Future<Output = Result<Response<Bytes>, Status>> {
        async move {
            let start = Instant::now();
            let deadline = options.deadline_from(start, self.inner.builder.timeout);
            // Retries share the first attempt's deadline. Set in place: a second `CallOptions`
            // local would take room of its own in the call's future.
            if deadline.is_some() {
                options.deadline = deadline;
            }
            let mut retries = 0;
            loop {
                // Connected: no await. Connecting is rare and its future large, so it is boxed
                // rather than kept in every call's future.
                let client = match self.healthy() {
                    Some(client) => client,
                    None => Box::pin(self.ready_client(deadline)).await?,
                };
                match client.unary_attempt(method, request, &options, start).await {
                    Err(failure)
                        if failure.not_started && failure.status.code() == Code::Unavailable && retries < MAX_TRANSPARENT_RETRIES =>
                    {
                        tracing::debug!(address = %self.inner.address, "retrying a call the server did not start: {}", failure.status);
                        retries += 1;
                    }
                    result => return result.map(|answered| answered.response).map_err(|failure| failure.status),
                }
            }
        }
    }

    /// The deadline of calls that set none ([`ChannelBuilder::timeout`]).
    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.inner.builder.timeout
    }

    /// A server-streaming call on the current connection, opening one first if needed; see
    /// [`Client::server_streaming`]. A stream lives on the connection it started on: when that
    /// connection ends, the stream fails and the next call opens a new one.
    pub async fn server_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        if !self.inner.interceptors.is_empty() {
            return Box::pin(crate::interceptor::intercept_server_streaming(
                self,
                method.method_id(),
                request,
                options,
            ))
            .await;
        }
        let client = self
            .ready_client(options.deadline_from(Instant::now(), self.default_timeout()))
            .await?;
        client.server_streaming(method, request, options).await
    }

    /// A client-streaming call; see [`Client::client_streaming`] and
    /// [`Channel::server_streaming`].
    pub async fn client_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        options: CallOptions,
    ) -> Result<ClientStreamingCall<Req, Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        if !self.inner.interceptors.is_empty() {
            return Box::pin(crate::interceptor::intercept_client_streaming(self, method.method_id(), options)).await;
        }
        let client = self
            .ready_client(options.deadline_from(Instant::now(), self.default_timeout()))
            .await?;
        client.client_streaming(method, options).await
    }

    /// A bidirectional-streaming call; see [`Client::bidi_streaming`] and
    /// [`Channel::server_streaming`].
    pub async fn bidi_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        options: CallOptions,
    ) -> Result<(StreamSender<Req>, Streaming<Resp>), Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        if !self.inner.interceptors.is_empty() {
            return Box::pin(crate::interceptor::intercept_bidi_streaming(self, method.method_id(), options)).await;
        }
        let client = self
            .ready_client(options.deadline_from(Instant::now(), self.default_timeout()))
            .await?;
        client.bidi_streaming(method, options).await
    }

    /// Counters of the current connection, if one is open.
    pub fn stats(&self) -> Option<StatsSnapshot> {
        lock(&self.inner.current).as_ref().map(Client::stats)
    }

    /// A connection that is open and not draining, connecting if needed.
    pub async fn ready_client(&self, deadline: Option<Instant>) -> Result<Client, Status> {
        if let Some(client) = self.healthy() {
            return Ok(client);
        }
        let mut attempts = self.inner.reconnect.lock().await;
        loop {
            // Another caller may have reconnected while we waited for the lock.
            if let Some(client) = self.healthy() {
                return Ok(client);
            }
            if let Some(at) = attempts.next_attempt {
                if deadline.is_some_and(|d| d < at) {
                    return Err(Status::unavailable(format!(
                        "not connected to {} and the next reconnect attempt is after the call's deadline; last error: {}",
                        self.inner.address, attempts.last_error
                    )));
                }
                tokio::time::sleep_until(at.into()).await;
            }
            let connect = self.inner.builder.clone().connect(&self.inner.address);
            let result = match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), connect)
                    .await
                    .unwrap_or_else(|_| Err(Error::Config("connect timed out".into()))),
                None => connect.await,
            };
            match result {
                Ok(client) => {
                    attempts.failures = 0;
                    attempts.next_attempt = None;
                    *lock(&self.inner.current) = Some(client.clone());
                    return Ok(client);
                }
                Err(err) => {
                    attempts.failures += 1;
                    let delay = self.inner.backoff.delay(attempts.failures, self.next_random());
                    attempts.next_attempt = Some(Instant::now() + delay);
                    attempts.last_error = err.to_string();
                    tracing::debug!(address = %self.inner.address, failures = attempts.failures, ?delay, "reconnect failed: {err}");
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(Status::unavailable(format!("could not connect to {}: {err}", self.inner.address)));
                    }
                    if deadline.is_none() {
                        return Err(Status::unavailable(format!(
                            "could not connect to {}: {err}; the channel will retry after {delay:?}",
                            self.inner.address
                        )));
                    }
                }
            }
        }
    }

    fn healthy(&self) -> Option<Client> {
        let current = lock(&self.inner.current);
        current.as_ref().filter(|c| !c.is_closed() && !c.is_draining()).cloned()
    }

    /// xorshift64*: enough randomness to spread reconnects, no dependency.
    fn next_random(&self) -> f64 {
        let mut state = lock(&self.inner.random);
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let value = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1, 0.5), Duration::from_millis(50));
        assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(200));
        assert_eq!(backoff.delay(30, 0.5), Duration::from_secs(5));
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(40));
        assert!(backoff.delay(1, 0.999) <= Duration::from_millis(60));
    }
}
