//! A TCP proxy on loopback that models packet loss for TCP, for the loss comparison of
//! `volley-bench quic`. The kernel here has no `netem` and no random-drop tc action, so TCP
//! cannot lose packets on loopback; instead this proxy charges each 1,448-byte segment it
//! forwards (an Ethernet path's MSS) a loss with the set probability, and a lost segment is held
//! back for the time Linux takes to recover it, with everything behind it in that direction
//! (TCP's head-of-line blocking):
//!
//! - the only segment of its burst (a lone small message, one packet in flight): the tail-loss
//!   probe fires after 2·SRTT + `tcp_rto_min` (200 ms) when one packet is out
//!   (`tcp_schedule_loss_probe`), so [`LONE_SEGMENT_STALL`];
//! - the last of several: the probe fires after 2·SRTT + `TCP_TIMEOUT_MIN` (2 jiffies, 8 ms at
//!   HZ=250), so [`TAIL_STALL`];
//! - any other: later segments are acknowledged, RACK marks it lost within about a round trip
//!   plus its reordering window, so [`NON_TAIL_STALL`].
//!
//! With a round-trip time set ([`LossyTcpProxy::set_rtt`]), every byte is held back by half of
//! it in each direction (in order), and each stall grows as Linux's does with SRTT: the probes by
//! 2·SRTT, RACK by one SRTT.
//!
//! This is a model, not a measurement of TCP: BENCHMARKS.md says so beside its figures. The
//! burst the proxy reads at once stands for what was in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes of one modelled segment (Ethernet MTU 1,500 less IP, TCP and timestamp headers).
const SEGMENT: usize = 1_448;

/// Bytes each direction reads at once.
const CHUNK: usize = 64 * 1024;

/// Stall of a lost lone segment: Linux's tail-loss probe with one packet in flight.
pub(crate) const LONE_SEGMENT_STALL: Duration = Duration::from_millis(200);

/// Stall of a lost last segment of several: the tail-loss probe's minimum at HZ=250.
pub(crate) const TAIL_STALL: Duration = Duration::from_millis(8);

/// Stall of a lost segment with later ones acknowledged: RACK's detection, about a round trip.
pub(crate) const NON_TAIL_STALL: Duration = Duration::from_millis(1);

/// Chunks waiting for their release time per direction at most (each at most [`CHUNK`] bytes):
/// a reader that gets this far ahead waits, as a sender whose window is full would.
const MAX_QUEUED_CHUNKS: usize = 256;

/// The stall of a lost segment: `base` (one of the constants above) plus what the round-trip
/// time adds to it in Linux (2·SRTT to a probe timeout, one SRTT to RACK's detection).
fn stall(base: Duration, rtt: Duration) -> Duration {
    if base == NON_TAIL_STALL { base + rtt } else { base + 2 * rtt }
}

/// The impairment the proxy applies, shared with its connections.
#[derive(Debug, Default)]
struct Impairment {
    /// The loss probability's `f64` bits.
    loss: AtomicU64,
    /// The modelled round-trip time, in microseconds.
    rtt_us: AtomicU64,
}

/// A running proxy; dropping it stops accepting (live connections end with the runtime).
#[derive(Debug)]
pub(crate) struct LossyTcpProxy {
    impairment: Arc<Impairment>,
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for LossyTcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl LossyTcpProxy {
    /// A proxy on an ephemeral loopback port in front of `target`, its draws from `seed`.
    pub(crate) async fn start(target: SocketAddr, seed: u64) -> Self {
        assert!(target.ip().is_loopback(), "the lossy TCP proxy forwards to loopback only");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let local = listener.local_addr().expect("proxy address");
        let impairment = Arc::new(Impairment::default());
        let shared = impairment.clone();
        let accept = tokio::spawn(async move {
            let mut seed = seed | 1;
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                tokio::spawn(pump(client_rx, server_tx, shared.clone(), seed));
                tokio::spawn(pump(server_rx, client_tx, shared.clone(), seed ^ 0xa5a5));
            }
        });
        Self { impairment, local, accept }
    }

    /// The address clients connect to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sets the loss probability per segment, 0.0 to 1.0.
    pub(crate) fn set_loss(&self, loss: f64) {
        self.impairment.loss.store(loss.to_bits(), Ordering::Relaxed);
    }

    /// Sets the modelled round-trip time (half of it added each way); zero forwards at once.
    pub(crate) fn set_rtt(&self, rtt: Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        self.impairment.rtt_us.store(micros, Ordering::Relaxed);
    }
}

/// Writes the chunks of one direction to `to`, each at its release time, in order.
async fn release(mut to: OwnedWriteHalf, mut chunks: mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Some((at, chunk)) = chunks.recv().await {
        // tokio's timer rounds up to the next millisecond: a chunk due now goes now.
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Forwards `from` to `to`, holding back each lost segment (and what follows it) by its stall,
/// and everything by half the round-trip time when one is set.
async fn pump(mut from: OwnedReadHalf, to: OwnedWriteHalf, impairment: Arc<Impairment>, mut rng: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut draw = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    let (queue, chunks) = mpsc::channel(MAX_QUEUED_CHUNKS);
    let writer = tokio::spawn(release(to, chunks));
    // The release time of the last chunk queued: nothing overtakes it.
    let mut last = Instant::now();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let p = f64::from_bits(impairment.loss.load(Ordering::Relaxed));
        let rtt = Duration::from_micros(impairment.rtt_us.load(Ordering::Relaxed));
        let now = Instant::now();
        let mut at = (now + rtt / 2).max(last);
        let segments = n.div_ceil(SEGMENT);
        let mut sent = 0;
        for i in 0..segments {
            if p > 0.0 && draw() < p {
                // Everything before the lost segment goes now; it and the rest wait.
                let start = i * SEGMENT;
                if start > sent && queue.send((at, buf[sent..start].to_vec())).await.is_err() {
                    return;
                }
                sent = start;
                let base = match (segments, i + 1 == segments) {
                    (1, _) => LONE_SEGMENT_STALL,
                    (_, true) => TAIL_STALL,
                    _ => NON_TAIL_STALL,
                };
                at += stall(base, rtt);
            }
        }
        if queue.send((at, buf[sent..n].to_vec())).await.is_err() {
            return;
        }
        last = at;
    }
    drop(queue);
    let _ = writer.await;
}
