//! `BalancedChannel`: calls spread over many endpoints with power of two choices, and the rules
//! for sending a call again: on another endpoint when it was never started, within the retry
//! budget when it is idempotent, and as a hedged second copy after a delay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{CallOptions, Client, ClientBuilder, MAX_TRANSPARENT_RETRIES};
use crate::error::Error;
use crate::method::CallTarget;
use crate::net::{Address, ToAddress};
use crate::response::Response;
use crate::status::{Code, Status};
use crate::sync::Arc;
use crate::wire::MethodId;

use super::budget::{DEFAULT_MIN_RETRIES_PER_SECOND, DEFAULT_RETRY_RATIO, RetryBudget};
use super::endpoint::{ConnectFailed, Endpoint};
use super::hedge::{HedgePolicy, LatencyWindow};
use super::lifecycle::EjectionPolicy;
use super::load::{DEFAULT_DECAY, LOAD_METADATA_KEY, LOAD_REQUEST, parse_report, since};
use super::maintain::{self, DEFAULT_RESOLVE_INTERVAL, Maintenance};
use super::picker::{pick, random_unit};
use super::resolver::{Resolver, StaticResolver};
use super::stats::{Attempt, EndpointSnapshot};

/// Retries of a call that may have started (idempotent, failed with UNAVAILABLE), budget
/// permitting (2): a third endpoint failing the same call points at the call, not the endpoints.
pub const MAX_RETRIES: u32 = 2;

/// Configures a [`BalancedChannel`].
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use volley::balance::{BalancedChannel, DnsResolver, HedgePolicy};
/// use volley::MethodId;
///
/// let channel = BalancedChannel::builder()
///     .timeout(Duration::from_secs(2))
///     .idempotent(MethodId::from_name("/orders.Orders/Get"))
///     .hedging(HedgePolicy::percentile(0.95))
///     .resolve_interval(Duration::from_secs(30))
///     .resolver(DnsResolver::new("orders.prod.svc.cluster.local", 7000))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BalancedChannelBuilder {
    client: ClientBuilder,
    ejection: EjectionPolicy,
    decay: Duration,
    budget: (f64, u32),
    hedge: Option<HedgePolicy>,
    idempotent: Vec<MethodId>,
    resolve_interval: Duration,
    /// The `channel` label of the per-endpoint series (feature `metrics`).
    name: Option<String>,
}

impl Default for BalancedChannelBuilder {
    fn default() -> Self {
        Self {
            client: ClientBuilder::default(),
            ejection: EjectionPolicy::default(),
            decay: DEFAULT_DECAY,
            budget: (DEFAULT_RETRY_RATIO, DEFAULT_MIN_RETRIES_PER_SECOND),
            hedge: None,
            idempotent: Vec::new(),
            resolve_interval: DEFAULT_RESOLVE_INTERVAL,
            name: None,
        }
    }
}

impl BalancedChannelBuilder {
    /// Options for every connection the channel opens.
    #[must_use]
    pub fn client(mut self, client: ClientBuilder) -> Self {
        self.client = client;
        self
    }

    /// The timeout of every call that sets no deadline of its own. Retries and hedges share the
    /// first attempt's deadline: nothing is sent after it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.timeout = Some(timeout);
        self
    }

    /// When endpoints back off, are ejected and probed.
    #[must_use]
    pub fn ejection(mut self, policy: EjectionPolicy) -> Self {
        self.ejection = policy;
        self
    }

    /// How fast the latency average forgets ([`super::DEFAULT_DECAY`]).
    #[must_use]
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay.max(Duration::from_micros(1));
        self
    }

    /// Retries and hedges together may add `ratio` of the calls of the last 10 s plus
    /// `min_per_second` a second (defaults 10 % and 10); see [`RetryBudget`].
    #[must_use]
    pub fn retry_budget(mut self, ratio: f64, min_per_second: u32) -> Self {
        self.budget = (ratio, min_per_second);
        self
    }

    /// Sends a second copy of an idempotent call that has not answered after the policy's delay.
    #[must_use]
    pub fn hedging(mut self, policy: HedgePolicy) -> Self {
        self.hedge = Some(policy);
        self
    }

    /// Marks `method` idempotent: a call to it that failed with UNAVAILABLE may be retried on
    /// another endpoint, and hedged. A call can also say so itself
    /// ([`CallOptions::idempotent`]); generated clients do for methods whose `.proto` sets
    /// `option idempotency_level = IDEMPOTENT` (or `NO_SIDE_EFFECTS`).
    #[must_use]
    pub fn idempotent(mut self, method: MethodId) -> Self {
        if !self.idempotent.contains(&method) {
            self.idempotent.push(method);
        }
        self
    }

    /// How often the resolver is asked again ([`DEFAULT_RESOLVE_INTERVAL`]); it is also asked
    /// soon after a connection is lost.
    #[must_use]
    pub fn resolve_interval(mut self, interval: Duration) -> Self {
        self.resolve_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Records the channel's connections and calls in `metrics` (as
    /// [`ClientBuilder::metrics`] does) and exposes its endpoints there: per endpoint (labels
    /// `channel` and `endpoint`) attempts, errors, latency, calls in flight, retries, hedges and
    /// ejections, read on each scrape (docs/scale-out.md, "Per-endpoint metrics"). A channel
    /// whose [`BalancedChannelBuilder::client`] carries a `Metrics` is exposed there too; set
    /// this after `client`. Feature `metrics`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), volley::Error> {
    /// use volley::balance::BalancedChannel;
    /// use volley::metrics::Metrics;
    ///
    /// let metrics = Metrics::new();
    /// let _channel = BalancedChannel::builder().metrics(metrics.clone()).name("orders").build(["127.0.0.1:7001"])?;
    /// let mut text = String::new();
    /// metrics.encode(&mut text).expect("writing to a String does not fail");
    /// assert!(text.contains(r#"volley_endpoint_calls_total{channel="orders",endpoint="127.0.0.1:7001"} 0"#));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.client = self.client.metrics(metrics);
        self
    }

    /// The `channel` label of this channel's per-endpoint series (default `balanced-N`, N
    /// counting the channels registered with the same `Metrics`); a name already in use there
    /// gets a `-N` suffix, so every series stays distinct.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A channel over a fixed list of addresses; connections open on first use. Must be called
    /// inside a tokio runtime (the channel runs a small task that probes and re-resolves).
    pub fn build<A: ToAddress>(self, addresses: impl IntoIterator<Item = A>) -> Result<BalancedChannel, Error> {
        let addresses = addresses.into_iter().map(|a| a.to_address()).collect::<Result<Vec<_>, _>>()?;
        if addresses.is_empty() {
            return Err(Error::Config("a balanced channel needs at least one address".into()));
        }
        self.start(addresses.clone(), Arc::new(StaticResolver::new(addresses)), false)
    }

    /// A channel over what `resolver` answers, asked once now (an error if it fails) and again
    /// on the interval. Must be awaited inside a tokio runtime.
    pub async fn resolver(self, resolver: impl Resolver) -> Result<BalancedChannel, Error> {
        let addresses = resolver.resolve().await?;
        self.start(addresses, Arc::new(resolver), true)
    }

    fn start(self, addresses: Vec<Address>, resolver: Arc<dyn Resolver>, resolving: bool) -> Result<BalancedChannel, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("a balanced channel must be built inside a tokio runtime".into()))?;
        let inner = Arc::new(Inner {
            set: if resolving {
                super::set::EndpointSet::new(&addresses)
            } else {
                super::set::EndpointSet::fixed(&addresses)
            },
            timeout: self.client.timeout,
            client: self.client,
            ejection: self.ejection,
            decay: self.decay,
            budget: RetryBudget::new(self.budget.0, self.budget.1),
            hedge: self.hedge,
            latencies: LatencyWindow::new(),
            idempotent: self.idempotent.into(),
            epoch: Instant::now(),
            budget_second: AtomicU64::new(0),
            maintenance: Maintenance::new(resolver, resolving, self.resolve_interval),
        });
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &inner.client.config.metrics {
            let source: Arc<dyn crate::metrics::EndpointSource> = inner.clone();
            metrics.register_balanced_channel(self.name.as_deref(), Arc::downgrade(&source));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = self.name;
        runtime.spawn(maintain::run(Arc::downgrade(&inner)));
        Ok(BalancedChannel { inner })
    }
}

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
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) set: super::set::EndpointSet,
    pub(crate) client: ClientBuilder,
    timeout: Option<Duration>,
    pub(crate) ejection: EjectionPolicy,
    decay: Duration,
    budget: RetryBudget,
    pub(crate) hedge: Option<HedgePolicy>,
    pub(crate) latencies: LatencyWindow,
    idempotent: Box<[MethodId]>,
    epoch: Instant,
    /// Seconds since `epoch` as of the maintenance task's last tick (50 ms): the second a call
    /// is counted in for the retry budget, read without a clock read of its own. A withdrawal,
    /// rare, reads the clock.
    budget_second: AtomicU64,
    pub(crate) maintenance: Maintenance,
}

/// How an attempt failed.
#[derive(Debug)]
struct Failed {
    status: Status,
    /// The server certainly never started the call: safe to send anywhere.
    not_started: bool,
    /// The endpoint tried, if one was.
    endpoint: Option<usize>,
}

/// Which copy of a hedged call finished first.
enum Winner<T> {
    First(T),
    Second(T),
}

impl Failed {
    fn is_unavailable(&self) -> bool {
        self.not_started || self.status.code() == Code::Unavailable
    }

    fn no_endpoint(status: Status) -> Self {
        Self {
            status,
            not_started: true,
            endpoint: None,
        }
    }
}

/// What one call needs to send its attempts.
struct CallPlan<'a, Req> {
    /// When the call started: the first attempt's start too (one clock read fewer).
    start: Instant,
    endpoints: &'a [Arc<Endpoint>],
    method: MethodId,
    request: &'a Req,
    options: &'a CallOptions,
    deadline: Option<Instant>,
}

impl BalancedChannel {
    /// A builder.
    pub fn builder() -> BalancedChannelBuilder {
        BalancedChannelBuilder::default()
    }

    /// A unary call to the endpoint p2c picks; see [`crate::Client::unary`] and the retry rules
    /// on [`BalancedChannel`].
    pub async fn unary<Req, Resp>(&self, method: impl CallTarget<Req, Resp>, request: &Req, options: CallOptions) -> Result<Resp, Status>
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        crate::client::decode_response(self.call(method.method_id(), request, options).await?.into_inner())
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
    pub(crate) async fn call<Req: prost::Message + Sync>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> Result<Response<Bytes>, Status> {
        let inner = &*self.inner;
        let start = Instant::now();
        let deadline = options.deadline_from(start, inner.timeout);
        let mut options = match deadline {
            Some(at) => options.deadline(at),
            None => options,
        };
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

    /// One attempt on the endpoint p2c picks.
    async fn single<Req: prost::Message + Sync>(
        &self,
        plan: &CallPlan<'_, Req>,
        tried: &[usize],
        kind: Attempt,
    ) -> Result<Response<Bytes>, Failed> {
        let index = match self.try_choose(plan.endpoints, tried) {
            Some(index) => index,
            None => self.choose(plan.endpoints, tried, plan.deadline).await?,
        };
        self.attempt(plan, index, kind).await
    }

    /// [`BalancedChannel::choose`] when an endpoint may take the call now: no future to build
    /// (and move) on the common path.
    #[inline]
    fn try_choose(&self, endpoints: &[Arc<Endpoint>], tried: &[usize]) -> Option<usize> {
        if let [only] = endpoints {
            // One endpoint: nothing to draw or compare, whatever this call tried before.
            return only.is_pickable().then_some(0);
        }
        let now_ns = || since(self.inner.epoch, Instant::now());
        pick(endpoints, tried, now_ns, self.inner.decay).or_else(|| pick(endpoints, &[], now_ns, self.inner.decay))
    }

    /// An attempt, and a second copy on another endpoint if the first has not answered after
    /// the hedging delay and the budget allows; the first good answer wins, the other is
    /// cancelled (dropping its future cancels it on the server).
    async fn hedged<Req: prost::Message + Sync>(
        &self,
        plan: &CallPlan<'_, Req>,
        tried: &[usize],
        kind: Attempt,
        policy: HedgePolicy,
    ) -> Result<Response<Bytes>, Failed> {
        let Some(delay) = policy.delay(&self.inner.latencies) else {
            return self.single(plan, tried, kind).await;
        };
        let index = self.choose(plan.endpoints, tried, plan.deadline).await?;
        let first = self.attempt(plan, index, kind);
        tokio::pin!(first);
        tokio::select! {
            biased;
            result = &mut first => return result,
            () = tokio::time::sleep(delay) => {}
        }
        let now = Instant::now();
        let mut exclude = tried.to_vec();
        exclude.push(index);
        let other = pick(plan.endpoints, &exclude, || since(self.inner.epoch, now), self.inner.decay);
        let Some(other) = other.filter(|_| self.inner.budget.try_withdraw(self.second(now))) else {
            return first.await;
        };
        let second = self.attempt(plan, other, Attempt::Hedge);
        tokio::pin!(second);
        let winner = tokio::select! {
            result = &mut first => Winner::First(result),
            result = &mut second => Winner::Second(result),
        };
        // A copy that failed for want of a server leaves the answer to the other.
        match winner {
            Winner::First(Err(failure)) if failure.is_unavailable() => second.await,
            Winner::Second(Err(failure)) if failure.is_unavailable() => first.await,
            Winner::First(result) | Winner::Second(result) => result,
        }
    }

    /// Picks an endpoint this call has not tried; if it tried them all, any; if none may take a
    /// call (all backing off or ejected), waits for the first one whose probe is due before the
    /// deadline.
    async fn choose(&self, endpoints: &[Arc<Endpoint>], tried: &[usize], deadline: Option<Instant>) -> Result<usize, Failed> {
        if let Some(index) = self.try_choose(endpoints, tried) {
            return Ok(index);
        }
        let due = endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_removed())
            .filter_map(|(i, e)| e.phase().probe_at().map(|at| (at, i)))
            .min();
        match due {
            Some((at, index)) if deadline.is_some_and(|d| at < d) => {
                tokio::time::sleep_until(at.into()).await;
                Ok(index)
            }
            _ => Err(Failed::no_endpoint(Status::unavailable(format!(
                "no endpoint can take the call: {} endpoints, all backing off or ejected",
                endpoints.len()
            )))),
        }
    }

    /// One attempt on endpoint `index`: connects if needed, counts the call in flight for the
    /// duration, then feeds the outcome to the endpoint's load and lifecycle.
    async fn attempt<Req: prost::Message + Sync>(
        &self,
        plan: &CallPlan<'_, Req>,
        index: usize,
        kind: Attempt,
    ) -> Result<Response<Bytes>, Failed> {
        let inner = &*self.inner;
        let endpoint = &plan.endpoints[index];
        // The open connection without building the connect's future (the common path).
        let (client, connected) = match endpoint.healthy_client() {
            Some(client) => (client, false),
            None => endpoint
                .ready_client(&inner.client, plan.deadline, &inner.ejection, random_unit())
                .await
                .map_err(|ConnectFailed(status)| Failed {
                    status,
                    not_started: true,
                    endpoint: Some(index),
                })?,
        };
        // The call's start serves a first attempt that found its connection open; after a
        // connect, the latency starts now, so the connect does not count as the endpoint's.
        let began = match kind {
            Attempt::First if !connected => plan.start,
            _ => Instant::now(),
        };
        let mut in_flight = InFlight::start(endpoint, inner, kind, began);
        // The first call on a fresh connection pays its warm-up (the server's first task, cold
        // buffers); it must not set the endpoint's average. Over one endpoint nothing compares
        // averages: the update is skipped (a clock conversion, float math and two stores).
        in_flight.observe = !connected && plan.endpoints.len() > 1;
        let result = client.unary_attempt(plan.method, plan.request, plan.options, began).await;
        // Where endpoints are compared (their averages, a percentile hedge), an attempt ends
        // when its caller has the answer, as p2c was tuned and tested with. Otherwise (one
        // endpoint, no percentile hedging) only the endpoint's latency total reads it: the
        // answer's read time serves, and the call reads the clock no more often than a
        // `Channel` call does (a read costs about 4 % of a call at 128 in flight on the VM of
        // BENCHMARKS.md). A failure, rare, reads the clock.
        let compared = in_flight.observe || inner.hedge.is_some_and(|h| h.quantile().is_some());
        let now = match &result {
            Ok(answered) if !compared => answered.received_at,
            _ => Instant::now(),
        };
        in_flight.finish(result.is_ok(), now);
        let result = result.map(|answered| answered.response);
        match result {
            // Over one endpoint a report has nothing to be compared with (and none was asked).
            Ok(response) if plan.endpoints.len() < 2 => Ok(response),
            Ok(response) => {
                if let Some(report) = response.metadata().get(LOAD_METADATA_KEY).and_then(parse_report) {
                    endpoint.load.handle_report(since(inner.epoch, now), report);
                }
                Ok(response)
            }
            Err(failure) => {
                if !failure.not_started && client.is_closed() {
                    // The connection was lost under the call: count it against the endpoint
                    // once, and ask the resolver whether the replica is still there.
                    endpoint.handle_lost(&client, &inner.ejection, random_unit());
                    inner.maintenance.resolve_soon();
                }
                Err(Failed {
                    status: failure.status,
                    not_started: failure.not_started,
                    endpoint: Some(index),
                })
            }
        }
    }

    /// Seconds since the channel started: the retry budget's clock.
    fn second(&self, now: Instant) -> u64 {
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

/// A call counted in flight on an endpoint; a dropped (cancelled) attempt still feeds the
/// latency it had reached, so a stalled endpoint that lost a hedge race looks slow.
struct InFlight<'a> {
    endpoint: &'a Endpoint,
    inner: &'a Inner,
    began: Instant,
    done: bool,
    /// Whether the latency feeds the endpoint's average.
    observe: bool,
}

impl<'a> InFlight<'a> {
    fn start(endpoint: &'a Endpoint, inner: &'a Inner, kind: Attempt, began: Instant) -> Self {
        endpoint.load.start();
        endpoint.counters.started(kind);
        Self {
            endpoint,
            inner,
            began,
            done: false,
            observe: true,
        }
    }

    /// Ends the attempt, answered (or failed) at `now`.
    fn finish(&mut self, ok: bool, now: Instant) {
        self.done = true;
        self.end(ok, now);
    }

    fn end(&self, ok: bool, now: Instant) {
        let elapsed = now.saturating_duration_since(self.began);
        self.endpoint.load.finish();
        if self.observe {
            self.endpoint.load.observe(since(self.inner.epoch, now), elapsed, self.inner.decay);
        }
        self.endpoint.counters.finished(ok, elapsed);
        // Only a percentile hedging delay reads the window.
        if ok && self.inner.hedge.is_some_and(|h| h.quantile().is_some()) {
            self.inner.latencies.record(elapsed);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.end(false, Instant::now());
        }
    }
}
