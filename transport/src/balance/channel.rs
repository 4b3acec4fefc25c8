//! `BalancedChannel`: calls spread over many endpoints with power of two choices, and the rules
//! for sending a call again: on another endpoint when it was never started, within the retry
//! budget when it is idempotent, and as a hedged second copy after a delay. Each attempt is in
//! `attempt.rs`; the options and the start in `builder.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{CallOptions, Client, ClientBuilder, MAX_TRANSPARENT_RETRIES};
use crate::method::CallTarget;
use crate::response::Response;
use crate::status::{Code, Status};
use crate::sync::Arc;
use crate::wire::MethodId;

use super::attempt::CallPlan;
use super::budget::RetryBudget;
use super::builder::BalancedChannelBuilder;
use super::endpoint::{ConnectFailed, Endpoint};
use super::hedge::{HedgePolicy, LatencyWindow};
use super::lifecycle::EjectionPolicy;
use super::load::{LOAD_METADATA_KEY, LOAD_REQUEST, since};
use super::maintain::Maintenance;
use super::picker::random_unit;
use super::stats::{Attempt, EndpointSnapshot};

/// Retries of a call that may have started (idempotent, failed with UNAVAILABLE), budget
/// permitting (2): a third endpoint failing the same call points at the call, not the endpoints.
pub const MAX_RETRIES: u32 = 2;

/// A channel over many endpoints: each call goes to the less loaded of two endpoints drawn at
/// random (calls in flight times a moving average of latency, raised by the server's own load
/// report), connections open lazily, endpoints that fail back off and are ejected, then probed
/// and readmitted, a GoAway drains an endpoint without failing calls. Generated clients take it
/// like a [`crate::Channel`] (it implements [`crate::Caller`]). Cheap to clone.
///
/// A unary call is sent again, on another endpoint, when it certainly never started (at no
/// cost), or when its method is idempotent and it failed with UNAVAILABLE (within the retry
/// budget, at most [`MAX_RETRIES`] times); never after its deadline. Streaming calls go to one
/// picked endpoint and are not retried.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use volley::{CallOptions, Channel, MethodId};
///
/// let channel = Channel::balance_list(["127.0.0.1:7001", "127.0.0.2:7001", "127.0.0.3:7001"])?;
/// let get = MethodId::from_name("/kv.Kv/Get");
/// let reply: String = channel.unary(get, &"key".to_owned(), CallOptions::new().idempotent(true)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct BalancedChannel {
    pub(super) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) set: super::set::EndpointSet,
    pub(crate) client: ClientBuilder,
    pub(super) timeout: Option<Duration>,
    pub(crate) ejection: EjectionPolicy,
    pub(super) decay: Duration,
    pub(super) budget: RetryBudget,
    pub(crate) hedge: Option<HedgePolicy>,
    pub(crate) latencies: LatencyWindow,
    pub(super) idempotent: Box<[MethodId]>,
    pub(super) epoch: Instant,
    /// Seconds since `epoch` as of the maintenance task's last tick (50 ms): the second a call
    /// is counted in for the retry budget, read without a clock read of its own. A withdrawal,
    /// rare, reads the clock.
    pub(super) budget_second: AtomicU64,
    pub(crate) maintenance: Maintenance,
}

impl BalancedChannel {
    /// A builder.
    pub fn builder() -> BalancedChannelBuilder {
        BalancedChannelBuilder::default()
    }

    /// A unary call to the endpoint p2c picks; see [`crate::Client::unary`] and the retry rules
    /// on [`BalancedChannel`].
    pub fn unary<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Status>>
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        // An `async` block, as in `Channel::unary`: an `async fn` would keep room for its
        // arguments twice in the call's future.
        let method = method.method_id();
        async move { crate::client::decode_response(self.call(method, request, options).await?.into_inner()) }
    }

    /// Like [`BalancedChannel::unary`], with the response's metadata.
    pub async fn unary_response<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        crate::client::decode_response_parts(self.call(method.method_id(), request, options).await?)
    }

    /// The endpoints now, with their counters.
    pub fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.inner.snapshot()
    }

    /// A connection to the endpoint p2c picks, for a call that must start by `deadline`
    /// (streaming calls use it).
    pub async fn ready_client(&self, deadline: Option<Instant>) -> Result<Client, Status> {
        let endpoints = self.inner.set.current();
        Ok(self.ready_endpoint(&endpoints, deadline).await?.1)
    }

    /// The endpoint p2c picks among `endpoints` and its connection, trying others while
    /// connects fail.
    async fn ready_endpoint(&self, endpoints: &[Arc<Endpoint>], deadline: Option<Instant>) -> Result<(usize, Client), Status> {
        let mut tried = Vec::new();
        loop {
            let index = self.choose(endpoints, &tried, deadline).await.map_err(|f| f.status)?;
            let endpoint = &endpoints[index];
            match endpoint
                .ready_client(&self.inner.client, deadline, &self.inner.ejection, random_unit())
                .await
            {
                Ok((client, _)) => return Ok((index, client)),
                Err(ConnectFailed(status)) if tried.len() >= endpoints.len() => return Err(status),
                Err(ConnectFailed(_)) => tried.push(index),
            }
        }
    }

    /// A connection for one streaming call, picked like a unary call's endpoint (its open
    /// streams count in the endpoint's load) and counted in the endpoint's attempts; a connect
    /// that fails moves on to another endpoint. The stream itself is not retried.
    pub(crate) async fn stream_client(&self, deadline: Option<Instant>) -> Result<Client, Status> {
        let endpoints = self.inner.set.current();
        let (index, client) = self.ready_endpoint(&endpoints, deadline).await?;
        endpoints[index].counters.started(Attempt::First);
        Ok(client)
    }

    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.inner.timeout
    }

    /// A unary call with the balancer's retries and hedging: the response undecoded.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice in its future")]
    pub(crate) fn call<Req: prost::Message + Sync>(
        &self,
        method: MethodId,
        request: &Req,
        mut options: CallOptions,
    ) -> impl Future<Output = Result<Response<Bytes>, Status>> {
        // An `async` block, as in `Channel::unary`.
        async move {
            let inner = &*self.inner;
            let start = Instant::now();
            let deadline = options.deadline_from(start, inner.timeout);
            // Set in place: a second `CallOptions` local would take room of its own in the
            // call's future.
            if deadline.is_some() {
                options.deadline = deadline;
            }
            let idempotent = options.is_idempotent() || inner.idempotent.contains(&method);
            let endpoints = inner.set.current();
            if endpoints.len() > 1 {
                // Asks the server for its load report (PROTOCOL.md section 14); over one endpoint
                // there is nothing to compare it with.
                if options.metadata.is_empty() {
                    options.metadata = LOAD_REQUEST;
                } else if options.metadata.get(LOAD_METADATA_KEY).is_none() {
                    let _ = options.metadata.insert(LOAD_METADATA_KEY, "");
                }
            }
            inner.budget.deposit(inner.budget_second.load(Ordering::Relaxed));
            let plan = CallPlan {
                start,
                endpoints: &endpoints,
                method,
                request,
                options: &options,
                deadline,
            };
            let mut tried = Vec::new();
            let mut kind = Attempt::First;
            let (mut unstarted, mut retries) = (0, 0);
            loop {
                let result = match inner.hedge.filter(|_| idempotent) {
                    // Boxed: two attempts in flight make a future twice the size, which the
                    // plain path should not carry (nor move) on every call.
                    Some(policy) => Box::pin(self.hedged(&plan, &tried, kind, policy)).await,
                    None => self.single(&plan, &tried, kind).await,
                };
                let failure = match result {
                    Ok(response) => return Ok(response),
                    Err(failure) => failure,
                };
                let now = Instant::now();
                if deadline.is_some_and(|at| now >= at) {
                    return Err(failure.status);
                }
                match failure.endpoint {
                    Some(index) => tried.push(index),
                    None => return Err(failure.status),
                }
                if failure.not_started {
                    // Free: no server saw it. Bounded so that nothing loops on refusing servers.
                    unstarted += 1;
                    if unstarted > endpoints.len() as u32 + MAX_TRANSPARENT_RETRIES {
                        return Err(failure.status);
                    }
                    tracing::debug!("sending a call no endpoint started again: {}", failure.status);
                    continue;
                }
                if !idempotent || failure.status.code() != Code::Unavailable || retries >= MAX_RETRIES {
                    return Err(failure.status);
                }
                if !inner.budget.try_withdraw(self.second(now)) {
                    tracing::debug!("retry budget spent; not retrying: {}", failure.status);
                    return Err(failure.status);
                }
                retries += 1;
                kind = Attempt::Retry;
            }
        }
    }

    /// Seconds since the channel started: the retry budget's clock.
    pub(super) fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.inner.epoch).as_secs()
    }
}

impl Inner {
    /// Moves the retry budget's clock to `now` (the maintenance task's tick).
    pub(crate) fn tick_budget_clock(&self, now: Instant) {
        self.budget_second
            .store(now.saturating_duration_since(self.epoch).as_secs(), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Vec<EndpointSnapshot> {
        let now_ns = since(self.epoch, Instant::now());
        self.set
            .current()
            .iter()
            .map(|e| {
                let average = Duration::from_nanos(e.load.rtt_ns(now_ns, self.decay) as u64);
                let in_flight = e.load.in_flight().max(e.open_calls());
                EndpointSnapshot::read(e.address.clone(), e.phase(), in_flight, e.ejections(), average, &e.counters)
            })
            .collect()
    }
}

#[cfg(feature = "metrics")]
impl crate::metrics::EndpointSource for Inner {
    fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.snapshot()
    }
}
