//! Replicas on 127.0.0.x that count their calls, and load loops over a balanced channel that
//! stop by themselves (a call count or a deadline).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use volley::balance::{BalancedChannel, EjectionPolicy};
use volley::client::Backoff;
use volley::net::Address;
use volley::{CallOptions, Request, Server, ServerHandle, Status};

use crate::common::{ECHO, ECHO_ID, Echo, echo};

/// Held alone by the tests that compare latencies or shares, and shared by the others, so a
/// measurement never shares the two CPUs with another test's load loop.
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// For a test that measures: no other test of this binary runs beside it.
pub(crate) async fn timing() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    TIMING.write().await
}

/// For every other test: they may run beside each other, not beside a measurement.
pub(crate) async fn beside_others() -> tokio::sync::RwLockReadGuard<'static, ()> {
    TIMING.read().await
}

/// Every call's deadline: far above any latency here, so a hang shows as an error.
pub(crate) const DEADLINE: Duration = Duration::from_secs(5);

/// What a replica's handler does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Behaviour {
    /// Echoes at once.
    Echo,
    /// Fails every call with UNAVAILABLE.
    Unavailable,
    /// Echoes, but every `every`-th call first sleeps `stall`.
    Stall { every: u64, stall: Duration },
}

/// One replica: a server on its own loopback address that counts the calls it receives.
pub(crate) struct Replica {
    pub(crate) handle: Option<ServerHandle>,
    pub(crate) address: Address,
    pub(crate) calls: Arc<AtomicU64>,
}

impl Replica {
    /// A replica on `ip` (port chosen by the kernel).
    pub(crate) async fn start(ip: &str, behaviour: Behaviour) -> Self {
        Self::start_at(&format!("{ip}:0"), behaviour, Arc::new(AtomicU64::new(0))).await
    }

    pub(crate) async fn start_at(address: &str, behaviour: Behaviour, calls: Arc<AtomicU64>) -> Self {
        let counter = calls.clone();
        let handle = Server::builder()
            .unary(ECHO, move |request: Request<Echo>| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    match behaviour {
                        Behaviour::Echo => {}
                        Behaviour::Unavailable => return Err(Status::unavailable("this replica fails everything")),
                        Behaviour::Stall { every, stall } => {
                            if n.is_multiple_of(every) {
                                tokio::time::sleep(stall).await;
                            }
                        }
                    }
                    Ok(request.into_inner())
                }
            })
            .drain_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
            .serve(address)
            .await
            .unwrap();
        Self {
            address: handle.local_addr().clone(),
            handle: Some(handle),
            calls,
        }
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// Starts it again on the same address, counting into the same counter.
    pub(crate) async fn restart(&mut self, behaviour: Behaviour) {
        let again = Self::start_at(&self.address.to_string(), behaviour, self.calls.clone()).await;
        self.handle = again.handle;
    }
}

pub(crate) async fn replicas(n: usize, behaviour: Behaviour) -> Vec<Replica> {
    let mut replicas = Vec::new();
    for i in 0..n {
        replicas.push(Replica::start(&format!("127.0.0.{}", i + 1), behaviour).await);
    }
    replicas
}

pub(crate) fn addresses(replicas: &[Replica]) -> Vec<Address> {
    replicas.iter().map(|r| r.address.clone()).collect()
}

/// Short backoffs and ejections, so a test sees a whole lifecycle within a second or two.
pub(crate) fn quick_ejection() -> EjectionPolicy {
    EjectionPolicy {
        eject_after: 3,
        base_ejection: Duration::from_millis(100),
        max_ejection: Duration::from_millis(200),
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: 0.2,
        },
    }
}

pub(crate) fn idempotent() -> CallOptions {
    CallOptions::new().timeout(DEADLINE).idempotent(true)
}

/// What a load run saw.
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) errors: Vec<Status>,
}

impl Run {
    pub(crate) fn calls(&self) -> usize {
        self.latencies.len() + self.errors.len()
    }

    pub(crate) fn p99(&self) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[(sorted.len() * 99).div_ceil(100) - 1]
    }
}

/// `tasks` callers share `calls` calls.
pub(crate) async fn load(channel: &BalancedChannel, tasks: usize, calls: usize, options: CallOptions) -> Run {
    let remaining = Arc::new(AtomicU64::new(calls as u64));
    run(channel, tasks, options, move || {
        remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    })
    .await
}

/// `tasks` callers call until `stop` is set (or 10 s pass, whichever comes first).
pub(crate) async fn load_until(channel: &BalancedChannel, tasks: usize, options: CallOptions, stop: Arc<AtomicBool>) -> Run {
    let limit = Instant::now() + Duration::from_secs(10);
    run(channel, tasks, options, move || {
        !stop.load(Ordering::SeqCst) && Instant::now() < limit
    })
    .await
}

async fn run(channel: &BalancedChannel, tasks: usize, options: CallOptions, more: impl Fn() -> bool + Send + Sync + 'static) -> Run {
    let more = Arc::new(more);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (channel, options, more) = (channel.clone(), options.clone(), more.clone());
        handles.push(tokio::spawn(async move {
            let mut run = Run::default();
            while more() {
                let began = Instant::now();
                match channel.unary::<Echo, Echo>(ECHO_ID, &echo("ping"), options.clone()).await {
                    Ok(reply) => {
                        assert_eq!(reply.payload, "ping");
                        run.latencies.push(began.elapsed());
                    }
                    Err(status) => run.errors.push(status),
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for handle in handles {
        let run = handle.await.unwrap();
        total.latencies.extend(run.latencies);
        total.errors.extend(run.errors);
    }
    total
}
