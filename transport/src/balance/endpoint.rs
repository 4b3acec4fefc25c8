//! One endpoint of a balanced channel: its address, its connection (opened on first use), its
//! lifecycle and its load. Calls read the phase and the load without a lock; only connecting,
//! failing and probing take the lifecycle's.

use std::time::{Duration, Instant};

use crate::client::{Client, ClientBuilder};
use crate::net::Address;
use crate::status::Status;
use crate::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use crate::sync::{Arc, Mutex, lock};

use super::lifecycle::{EjectionPolicy, Lifecycle, Phase};
use super::load::Load;
use super::stats::EndpointCounters;

/// Phase codes in `Endpoint::pickable`, so a pick reads one byte.
const PICKABLE: u8 = 1;
const UNPICKABLE: u8 = 0;
const REMOVED: u8 = 2;

/// One replica behind a balanced channel.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) address: Address,
    /// Whether a call may pick the endpoint (mirrors the lifecycle's phase).
    pickable: AtomicU8,
    client: Mutex<Option<Client>>,
    /// One connect at a time: callers that pick an endpoint being connected wait for it.
    connecting: tokio::sync::Mutex<()>,
    lifecycle: Mutex<Lifecycle>,
    /// A probe task is running.
    probing: AtomicBool,
    pub(crate) load: Load,
    pub(crate) counters: EndpointCounters,
}

/// Why an endpoint has no connection for a call; either way the call was not started.
#[derive(Debug)]
pub(crate) struct ConnectFailed(pub(crate) Status);

impl Endpoint {
    pub(crate) fn new(address: Address) -> Self {
        Self {
            address,
            pickable: AtomicU8::new(PICKABLE),
            client: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            lifecycle: Mutex::new(Lifecycle::default()),
            probing: AtomicBool::new(false),
            load: Load::new(),
            counters: EndpointCounters::default(),
        }
    }

    /// Whether a call may pick it now (one relaxed load).
    pub(crate) fn is_pickable(&self) -> bool {
        self.pickable.load(Ordering::Relaxed) == PICKABLE
    }

    pub(crate) fn phase(&self) -> Phase {
        lock(&self.lifecycle).phase()
    }

    pub(crate) fn ejections(&self) -> u64 {
        lock(&self.lifecycle).ejections_total()
    }

    /// Calls open now on the endpoint's connection: unary calls and streams, all this channel's
    /// (the connection is its own). Takes the connection's state lock: only picks that compare
    /// two endpoints read it, and scrapes.
    pub(crate) fn open_calls(&self) -> u32 {
        let slot = lock(&self.client);
        let Some(client) = slot.as_ref() else {
            return 0;
        };
        let open = client.shared().lock_state().proto.open_calls();
        u32::try_from(open).unwrap_or(u32::MAX)
    }

    /// What p2c compares ([`Load::cost`]), with the calls open on the connection (streams
    /// included) counted in the queue.
    pub(crate) fn cost(&self, now_ns: u64, decay: Duration) -> f64 {
        self.load.cost(now_ns, decay, self.open_calls())
    }

    /// The resolver no longer lists it: no new calls; its connection closes when the calls on it end.
    pub(crate) fn remove(&self) {
        self.pickable.store(REMOVED, Ordering::Relaxed);
        lock(&self.client).take();
    }

    pub(crate) fn is_removed(&self) -> bool {
        self.pickable.load(Ordering::Relaxed) == REMOVED
    }

    /// The open, not draining connection, if there is one. A draining or closed one is dropped
    /// here (calls running on it finish), and the endpoint reconnects on its next pick.
    pub(crate) fn healthy_client(&self) -> Option<Client> {
        let mut slot = lock(&self.client);
        let client = slot.as_ref()?;
        if !client.is_closed() && !client.is_draining() {
            return Some(client.clone());
        }
        let closed = client.is_closed();
        slot.take();
        drop(slot);
        tracing::debug!(address = %self.address, closed, "endpoint's connection ended or drains; reconnecting on the next pick");
        self.update(|life| life.handle_drained());
        None
    }

    /// A connection for a call that must start by `deadline`, opening one if needed; `true`
    /// with it if this call waited for a connect.
    pub(crate) async fn ready_client(
        &self,
        builder: &ClientBuilder,
        deadline: Option<Instant>,
        policy: &EjectionPolicy,
        unit: f64,
    ) -> Result<(Client, bool), ConnectFailed> {
        if let Some(client) = self.healthy_client() {
            return Ok((client, false));
        }
        // Boxed: connecting is rare and its future large; inline, every call's future would
        // carry (and a task spawned per call move) room for it.
        Ok((Box::pin(self.connect(builder, deadline, policy, unit)).await?, true))
    }

    /// Opens a connection (one at a time); on failure the endpoint backs off or is ejected.
    pub(crate) async fn connect(
        &self,
        builder: &ClientBuilder,
        deadline: Option<Instant>,
        policy: &EjectionPolicy,
        unit: f64,
    ) -> Result<Client, ConnectFailed> {
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(client) = self.healthy_client() {
            return Ok(client);
        }
        if self.is_removed() {
            return Err(ConnectFailed(Status::unavailable(format!("endpoint {} was removed", self.address))));
        }
        if !self.is_pickable() && self.phase().probe_at().is_some_and(|at| at > Instant::now()) {
            // Another caller's connect just failed.
            return Err(ConnectFailed(Status::unavailable(format!(
                "endpoint {} is backing off",
                self.address
            ))));
        }
        let connect = builder.clone().connect(&self.address);
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), connect).await {
                Ok(result) => result.map_err(|err| err.to_string()),
                Err(_) => Err("the connect did not finish within the call's deadline".to_owned()),
            },
            None => connect.await.map_err(|err| err.to_string()),
        };
        match result {
            Ok(client) => {
                *lock(&self.client) = Some(client.clone());
                self.update(Lifecycle::handle_connected);
                Ok(client)
            }
            Err(err) => {
                self.handle_failure(policy, unit);
                tracing::debug!(address = %self.address, "endpoint connect failed: {err}");
                Err(ConnectFailed(Status::unavailable(format!(
                    "could not connect to {}: {err}",
                    self.address
                ))))
            }
        }
    }

    /// A connect failed or a connection was lost under calls.
    pub(crate) fn handle_failure(&self, policy: &EjectionPolicy, unit: f64) {
        let now = Instant::now();
        self.update(|life| life.handle_failure(now, policy, unit));
        if matches!(self.phase(), Phase::Ejected { .. }) {
            tracing::info!(address = %self.address, "endpoint ejected after repeated failures");
        }
    }

    /// Whether a probe should try to connect now; marks the probe as running if so.
    pub(crate) fn try_begin_probe(&self, now: Instant) -> bool {
        if self.is_removed() || self.phase().probe_at().is_none_or(|at| at > now) {
            return false;
        }
        !self.probing.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_probe(&self) {
        self.probing.store(false, Ordering::Release);
    }

    /// Checks a ready endpoint's connection between calls, so a GoAway takes it out of the
    /// rotation even when no call picks it.
    /// Returns whether the connection ended or drains.
    pub(crate) fn check_connection(&self) -> bool {
        self.phase() == Phase::Ready && self.healthy_client().is_none()
    }

    /// Applies `change` to the lifecycle and mirrors the phase for picks.
    fn update(&self, change: impl FnOnce(&mut Lifecycle)) {
        let mut life = lock(&self.lifecycle);
        change(&mut life);
        if self.pickable.load(Ordering::Relaxed) != REMOVED {
            let code = if life.phase().is_pickable() { PICKABLE } else { UNPICKABLE };
            self.pickable.store(code, Ordering::Relaxed);
        }
    }
}

/// The longest a probe's connect may take (1 s): a black-holed replica must not hold a probe.
pub(crate) const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs a half-open probe of `endpoint`: a connect, which readmits it or extends its ejection.
pub(crate) async fn probe(endpoint: Arc<Endpoint>, builder: ClientBuilder, policy: EjectionPolicy, unit: f64) {
    let deadline = Instant::now() + PROBE_CONNECT_TIMEOUT;
    if endpoint.connect(&builder, Some(deadline), &policy, unit).await.is_ok() {
        tracing::info!(address = %endpoint.address, "endpoint readmitted");
    }
    endpoint.end_probe();
}

impl Endpoint {
    /// `client`'s connection was lost under a call: a failure, counted once per connection
    /// (the first call to see it takes the connection out; the others find it gone).
    pub(crate) fn handle_lost(&self, client: &Client, policy: &EjectionPolicy, unit: f64) {
        let mut slot = lock(&self.client);
        let same = slot.as_ref().is_some_and(|current| Arc::ptr_eq(current.shared(), client.shared()));
        if !same {
            return;
        }
        slot.take();
        drop(slot);
        tracing::debug!(address = %self.address, "endpoint's connection was lost under calls");
        self.handle_failure(policy, unit);
    }
}
