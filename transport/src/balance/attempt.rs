//! One call's attempts on a balanced channel: the endpoint p2c picks (or the first whose probe
//! is due), a hedged second copy after the delay, and the attempt itself, counted in flight on
//! its endpoint and fed to the endpoint's load and lifecycle when it ends.

use std::time::Instant;

use bytes::Bytes;

use crate::client::CallOptions;
use crate::response::Response;
use crate::status::{Code, Status};
use crate::sync::Arc;
use crate::wire::MethodId;

use super::channel::{BalancedChannel, Inner};
use super::endpoint::{ConnectFailed, Endpoint};
use super::hedge::HedgePolicy;
use super::load::{LOAD_METADATA_KEY, parse_report, since};
use super::picker::{pick, random_unit};
use super::stats::Attempt;

/// How an attempt failed.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) status: Status,
    /// The server certainly never started the call: safe to send anywhere.
    pub(super) not_started: bool,
    /// The endpoint tried, if one was.
    pub(super) endpoint: Option<usize>,
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
pub(super) struct CallPlan<'a, Req> {
    /// When the call started: the first attempt's start too (one clock read fewer).
    pub(super) start: Instant,
    pub(super) endpoints: &'a [Arc<Endpoint>],
    pub(super) method: MethodId,
    pub(super) request: &'a Req,
    pub(super) options: &'a CallOptions,
    pub(super) deadline: Option<Instant>,
}

impl BalancedChannel {
    /// One attempt on the endpoint p2c picks.
    pub(super) async fn single<Req: prost::Message + Sync>(
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
    pub(super) async fn hedged<Req: prost::Message + Sync>(
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
    pub(super) async fn choose(&self, endpoints: &[Arc<Endpoint>], tried: &[usize], deadline: Option<Instant>) -> Result<usize, Failed> {
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
