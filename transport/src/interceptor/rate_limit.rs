//! Rate limiting with token buckets: [`RateLimit`], a server interceptor with one bucket per
//! peer and one per method.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{InboundCall, ServerInterceptor};
use crate::status::Status;
use crate::sync::{Mutex, lock};
use crate::wire::Metadata;

/// Peers a [`RateLimit`] keeps a bucket for (10,000): about 40 bytes each, so at most about
/// 1 MiB with the map. Past it, buckets of idle peers are dropped; if none is idle, the
/// untracked peers share one bucket, so a flood of addresses cannot grow memory.
pub const DEFAULT_MAX_TRACKED_PEERS: usize = 10_000;

/// How often, at most, a full peer table is swept for idle buckets (1 s): a sweep walks the
/// whole table, so a flood of new addresses cannot make every call pay for one.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How many calls a bucket admits: `burst` at once, refilled at one call per `interval`.
///
/// ```
/// use std::time::Duration;
/// use volley::interceptor::Quota;
///
/// let quota = Quota::per_second(100).burst(20);
/// assert_eq!(quota.interval(), Duration::from_millis(10));
/// assert_eq!(quota.burst_size(), 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    interval: Duration,
    burst: u32,
}

impl Quota {
    /// `calls` per second, with a burst of `calls` (at least 1).
    pub fn per_second(calls: u32) -> Self {
        Self::with_period(calls, Duration::from_secs(1))
    }

    /// `calls` per minute, with a burst of `calls` (at least 1).
    pub fn per_minute(calls: u32) -> Self {
        Self::with_period(calls, Duration::from_secs(60))
    }

    /// `calls` per `period`, with a burst of `calls` (at least 1).
    pub fn with_period(calls: u32, period: Duration) -> Self {
        let calls = calls.max(1);
        Self {
            interval: period / calls,
            burst: calls,
        }
    }

    /// With a burst of `burst` calls (at least 1): how many may come at once after a quiet time.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// The time one call's token takes to come back.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The largest burst.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }
}

/// One token bucket, kept as the time it is next full (the GCRA form: one instant, no float,
/// no timer). Give it the time; it reads no clock.
///
/// ```
/// use std::time::{Duration, Instant};
/// use volley::interceptor::{Quota, TokenBucket};
///
/// let mut bucket = TokenBucket::new(Quota::per_second(10).burst(2));
/// let start = Instant::now();
/// assert!(bucket.try_acquire(start).is_ok());
/// assert!(bucket.try_acquire(start).is_ok());
/// assert_eq!(bucket.try_acquire(start), Err(Duration::from_millis(100)));
/// assert!(bucket.try_acquire(start + Duration::from_millis(100)).is_ok());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    quota: Quota,
    /// When the bucket would be full again if no call came; `None`: full.
    full_at: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(quota: Quota) -> Self {
        Self { quota, full_at: None }
    }

    /// The bucket's quota.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes a token at `now`, or says how long until one is there.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.full_at = Some(self.check(now)?);
        Ok(())
    }

    /// Whether the bucket is full at `now` (its peer has been quiet).
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at.is_none_or(|at| at <= now)
    }

    /// What `full_at` becomes if a token is taken at `now`, or the wait for one.
    fn check(&self, now: Instant) -> Result<Instant, Duration> {
        let full_at = self.full_at.map_or(now, |at| at.max(now));
        // The bucket holds `burst` tokens: it may be at most `burst - 1` intervals from full
        // before this call takes one more.
        let slack = self.quota.interval * (self.quota.burst - 1);
        let ahead = full_at - now;
        if ahead > slack {
            return Err(ahead - slack);
        }
        Ok(full_at + self.quota.interval)
    }
}

/// Where a call's peer bucket is: its IP address, or its connection over a Unix socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum PeerKey {
    Ip(IpAddr),
    Connection(u64),
    Unknown,
}

/// A server interceptor that admits calls while their peer's bucket and their method's bucket
/// hold tokens, and refuses the others with RESOURCE_EXHAUSTED and metadata `retry-after-ms`,
/// before their request is decoded.
///
/// A peer is an IP address (all its connections share a bucket) or, over a Unix socket, one
/// connection. A method's bucket is shared by all callers. A call must fit both; one that is
/// refused takes no token from either.
///
/// ```
/// use volley::interceptor::{Quota, RateLimit};
/// use volley::{Request, Server, Status};
///
/// let limit = RateLimit::builder()
///     .per_peer(Quota::per_second(200).burst(50))
///     .per_method("/orders.Orders/Place", Quota::per_second(1_000))
///     .build();
/// let server = Server::builder()
///     .interceptor(limit)
///     .unary("/orders.Orders/Place", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
///     .build()?;
/// # let _ = server;
/// # Ok::<(), volley::Error>(())
/// ```
pub struct RateLimit {
    per_peer: Option<Quota>,
    max_peers: usize,
    clock: Arc<dyn Fn() -> Instant + Send + Sync>,
    state: Mutex<Buckets>,
}

struct Buckets {
    peers: HashMap<PeerKey, TokenBucket>,
    /// Shared by peers beyond the tracking cap.
    overflow: Option<TokenBucket>,
    /// When the full peer table was last swept for idle buckets.
    last_sweep: Option<Instant>,
    methods: HashMap<String, TokenBucket>,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("RateLimit")
            .field("per_peer", &self.per_peer)
            .field("tracked_peers", &state.peers.len())
            .field("methods", &state.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Configures a [`RateLimit`].
pub struct RateLimitBuilder {
    per_peer: Option<Quota>,
    methods: HashMap<String, TokenBucket>,
    max_peers: usize,
    clock: Arc<dyn Fn() -> Instant + Send + Sync>,
}

impl fmt::Debug for RateLimitBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitBuilder")
            .field("per_peer", &self.per_peer)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .field("max_peers", &self.max_peers)
            .finish_non_exhaustive()
    }
}

impl RateLimitBuilder {
    /// Each peer's calls, over all methods, within `quota`.
    #[must_use]
    pub fn per_peer(mut self, quota: Quota) -> Self {
        self.per_peer = Some(quota);
        self
    }

    /// All calls to `method` (a full name), from all peers, within `quota`.
    #[must_use]
    pub fn per_method(mut self, method: impl Into<String>, quota: Quota) -> Self {
        self.methods.insert(method.into(), TokenBucket::new(quota));
        self
    }

    /// See [`DEFAULT_MAX_TRACKED_PEERS`].
    #[must_use]
    pub fn max_tracked_peers(mut self, peers: usize) -> Self {
        self.max_peers = peers.max(1);
        self
    }

    /// The clock buckets refill by (tests inject one). The default is tokio's clock, so a
    /// test with paused time controls it too.
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The interceptor.
    pub fn build(self) -> RateLimit {
        RateLimit {
            per_peer: self.per_peer,
            max_peers: self.max_peers,
            clock: self.clock,
            state: Mutex::new(Buckets {
                peers: HashMap::new(),
                overflow: None,
                last_sweep: None,
                methods: self.methods,
            }),
        }
    }
}

impl RateLimit {
    /// A builder; with nothing set, every call is admitted.
    pub fn builder() -> RateLimitBuilder {
        RateLimitBuilder {
            per_peer: None,
            methods: HashMap::new(),
            max_peers: DEFAULT_MAX_TRACKED_PEERS,
            clock: Arc::new(|| tokio::time::Instant::now().into_std()),
        }
    }

    /// Takes a token for `call` from its peer's and its method's buckets, or refuses it.
    fn admit(&self, call: &InboundCall) -> Result<(), Status> {
        let now = (self.clock)();
        let peer = match call.connection() {
            Some(connection) => match connection.peer_addr() {
                Some(crate::net::Address::Tcp(addr)) => PeerKey::Ip(addr.ip().to_canonical()),
                #[cfg(feature = "quic")]
                Some(crate::net::Address::Quic(addr)) => PeerKey::Ip(addr.ip().to_canonical()),
                _ => PeerKey::Connection(connection.id()),
            },
            None => PeerKey::Unknown,
        };
        let mut state = lock(&self.state);
        let Buckets {
            peers,
            overflow,
            last_sweep,
            methods,
        } = &mut *state;
        let peer_bucket = self.per_peer.map(|quota| {
            let table = PeerTable {
                peers,
                overflow,
                last_sweep,
                max: self.max_peers,
            };
            table.bucket(peer, quota, now)
        });
        let method_bucket = methods.get_mut(call.method());
        let peer_next = peer_bucket.as_ref().map(|b| b.check(now)).transpose();
        let method_next = method_bucket.as_ref().map(|b| b.check(now)).transpose();
        match (peer_next, method_next) {
            (Ok(peer_next), Ok(method_next)) => {
                if let (Some(bucket), Some(at)) = (peer_bucket, peer_next) {
                    bucket.full_at = Some(at);
                }
                if let (Some(bucket), Some(at)) = (method_bucket, method_next) {
                    bucket.full_at = Some(at);
                }
                Ok(())
            }
            (Err(wait), _) => Err(refusal(format!("peer {}", describe(peer)), wait)),
            (_, Err(wait)) => Err(refusal(format!("method {}", call.method()), wait)),
        }
    }
}

/// The peer buckets, borrowed for one lookup.
struct PeerTable<'a> {
    peers: &'a mut HashMap<PeerKey, TokenBucket>,
    overflow: &'a mut Option<TokenBucket>,
    last_sweep: &'a mut Option<Instant>,
    max: usize,
}

impl<'a> PeerTable<'a> {
    /// The bucket of `peer`, made if new. With `max` peers tracked, idle buckets are dropped
    /// (at most once per [`SWEEP_INTERVAL`]); if none is, the peer shares the overflow bucket.
    fn bucket(self, peer: PeerKey, quota: Quota, now: Instant) -> &'a mut TokenBucket {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.max {
            if self.last_sweep.is_none_or(|at| now >= at + SWEEP_INTERVAL) {
                *self.last_sweep = Some(now);
                self.peers.retain(|_, bucket| !bucket.is_full(now));
            }
            if self.peers.len() >= self.max {
                return self.overflow.get_or_insert_with(|| TokenBucket::new(quota));
            }
        }
        self.peers.entry(peer).or_insert_with(|| TokenBucket::new(quota))
    }
}

fn describe(peer: PeerKey) -> String {
    match peer {
        PeerKey::Ip(ip) => ip.to_string(),
        PeerKey::Connection(id) => format!("connection {id}"),
        PeerKey::Unknown => "unknown".to_owned(),
    }
}

/// RESOURCE_EXHAUSTED naming the exhausted bucket, with `retry-after-ms` metadata.
fn refusal(what: String, wait: Duration) -> Status {
    let millis = wait.as_millis().max(1);
    let mut metadata = Metadata::new();
    // A decimal number and a fixed key always fit.
    let _ = metadata.insert("retry-after-ms", millis.to_string());
    Status::with_metadata(
        crate::status::Code::ResourceExhausted,
        format!("rate limit of {what} exceeded; retry after {millis} ms (see the retry-after-ms metadata)"),
        metadata,
    )
}

impl ServerInterceptor for RateLimit {
    fn on_call(&self, call: &mut InboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(self.admit(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_one_call_per_interval() {
        let mut bucket = TokenBucket::new(Quota::per_second(10).burst(3));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(bucket.try_acquire(t0).is_ok());
        }
        assert_eq!(bucket.try_acquire(t0), Err(Duration::from_millis(100)));
        assert_eq!(bucket.try_acquire(t0 + Duration::from_millis(40)), Err(Duration::from_millis(60)));
        assert!(bucket.try_acquire(t0 + Duration::from_millis(100)).is_ok());
        assert!(bucket.try_acquire(t0 + Duration::from_millis(100)).is_err());
        // After a quiet second the whole burst is back, and no more.
        let later = t0 + Duration::from_secs(2);
        assert!(bucket.is_full(later));
        for _ in 0..3 {
            assert!(bucket.try_acquire(later).is_ok());
        }
        assert!(bucket.try_acquire(later).is_err());
    }

    #[test]
    fn a_refused_call_takes_no_token() {
        let mut bucket = TokenBucket::new(Quota::per_second(1).burst(1));
        let t0 = Instant::now();
        assert!(bucket.try_acquire(t0).is_ok());
        for _ in 0..100 {
            assert!(bucket.try_acquire(t0 + Duration::from_millis(500)).is_err());
        }
        assert!(bucket.try_acquire(t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn peers_past_the_cap_share_the_overflow_bucket_until_others_go_idle() {
        let quota = Quota::per_minute(1);
        let mut peers = HashMap::new();
        let mut overflow = None;
        let mut last_sweep = None;
        let t0 = Instant::now();
        let ip = |n: u8| PeerKey::Ip(IpAddr::from([10, 0, 0, n]));
        let mut take = |n: u8, now: Instant| {
            let table = PeerTable {
                peers: &mut peers,
                overflow: &mut overflow,
                last_sweep: &mut last_sweep,
                max: 2,
            };
            table.bucket(ip(n), quota, now).try_acquire(now).is_ok()
        };
        assert!(take(0, t0) && take(1, t0));
        assert!(take(2, t0), "a third peer over a cap of 2 gets the overflow bucket");
        assert!(!take(3, t0), "a fourth shares it, now empty");
        // A minute later the first two are idle and make room.
        assert!(take(3, t0 + Duration::from_secs(61)));
        assert_eq!(peers.len(), 1);
        assert!(overflow.is_some());
    }
}
