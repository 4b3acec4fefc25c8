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
//! This is a model, not a measurement of TCP: BENCHMARKS.md says so beside its figures. The
//! burst the proxy reads at once stands for what was in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

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

/// A running proxy; dropping it stops accepting (live connections end with the runtime).
#[derive(Debug)]
pub(crate) struct LossyTcpProxy {
    /// The loss probability's `f64` bits.
    loss: Arc<AtomicU64>,
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
        let loss = Arc::new(AtomicU64::new(0f64.to_bits()));
        let shared = loss.clone();
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
        Self { loss, local, accept }
    }

    /// The address clients connect to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sets the loss probability per segment, 0.0 to 1.0.
    pub(crate) fn set_loss(&self, loss: f64) {
        self.loss.store(loss.to_bits(), Ordering::Relaxed);
    }
}

/// Forwards `from` to `to`, holding back each lost segment (and what follows it) by its stall.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, loss: Arc<AtomicU64>, mut rng: u64) {
    let mut buf = vec![0u8; CHUNK];
    let mut draw = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 11) as f64 / (1u64 << 53) as f64
    };
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let p = f64::from_bits(loss.load(Ordering::Relaxed));
        let segments = n.div_ceil(SEGMENT);
        let mut sent = 0;
        for i in 0..segments {
            if p > 0.0 && draw() < p {
                // Everything before the lost segment goes now; it and the rest wait.
                let start = i * SEGMENT;
                if to.write_all(&buf[sent..start]).await.is_err() {
                    return;
                }
                sent = start;
                let stall = match (segments, i + 1 == segments) {
                    (1, _) => LONE_SEGMENT_STALL,
                    (_, true) => TAIL_STALL,
                    _ => NON_TAIL_STALL,
                };
                tokio::time::sleep(stall).await;
            }
        }
        if to.write_all(&buf[sent..n]).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}
