//! `BalancedChannelBuilder`: a balanced channel's options, and its start (the endpoint set,
//! the maintenance task, the metrics registration).

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::client::ClientBuilder;
use crate::error::Error;
use crate::net::{Address, ToAddress};
use crate::sync::Arc;
use crate::wire::MethodId;

use super::budget::{DEFAULT_MIN_RETRIES_PER_SECOND, DEFAULT_RETRY_RATIO, RetryBudget};
use super::channel::{BalancedChannel, Inner};
use super::hedge::{HedgePolicy, LatencyWindow};
use super::lifecycle::EjectionPolicy;
use super::load::DEFAULT_DECAY;
use super::maintain::{self, DEFAULT_RESOLVE_INTERVAL, Maintenance};
use super::resolver::{Resolver, StaticResolver};

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
