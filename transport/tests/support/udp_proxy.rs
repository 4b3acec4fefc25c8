//! An in-process UDP fault proxy on loopback: a tokio task between QUIC clients and a server that
//! forwards datagrams and, switchable at run time, drops a share of them, reorders a share (held
//! back by [`UdpFaults::reorder_delay`] so later datagrams overtake them) and delays all of them.
//!
//! Each client address gets its own upstream socket, so the server sees one peer per client.
//! Memory is bounded: at most [`MAX_HELD`] datagrams wait in timers at once (more are dropped, as
//! a full router queue would), and at most [`MAX_PEERS`] client addresses are tracked.
//! Dropping the proxy stops it.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Largest datagram forwarded (QUIC's packets are at most 1,452 bytes on loopback's 64 KiB MTU
/// unless raised; a UDP datagram is at most 65,535).
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams waiting in delay timers at most; more are dropped.
pub const MAX_HELD: usize = 4_096;

/// Client addresses tracked at most; datagrams from further ones are dropped.
pub const MAX_PEERS: usize = 1_024;

/// Kernel receive and send buffers asked for each of the proxy's sockets (4 MiB, as Volley's QUIC
/// endpoints ask): at Linux's 208 KiB default a burst of 64 KiB loopback datagrams overflowed
/// them, a loss the proxy neither chose nor counted (`RcvbufErrors` in /proc/net/snmp).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Which way datagrams flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Client to server.
    Up = 0,
    /// Server to client.
    Down = 1,
}

/// The faults applied to one direction; the default forwards untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct UdpFaults {
    /// Share of datagrams dropped, 0.0 to 1.0.
    pub drop: f64,
    /// Share of datagrams held back by `reorder_delay` (so later ones overtake them), 0.0 to 1.0.
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_delay: Duration,
    /// Added to every datagram.
    pub delay: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
    reordered: [AtomicU64; 2],
}

#[derive(Debug)]
struct Shared {
    faults: Mutex<[UdpFaults; 2]>,
    rng: Mutex<u64>,
    held: AtomicUsize,
    counters: Counters,
}

impl Shared {
    /// A uniform draw in [0, 1) from the seeded xorshift generator.
    fn draw(&self) -> f64 {
        let mut state = self.rng.lock().unwrap();
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        (*state >> 11) as f64 / (1u64 << 53) as f64
    }

    /// What to do with one datagram going `way`: `None` drops it, `Some(delay)` forwards it
    /// after `delay`.
    fn decide(&self, way: Way) -> Option<Duration> {
        let faults = self.faults.lock().unwrap()[way as usize];
        if faults.drop > 0.0 && self.draw() < faults.drop {
            self.counters.dropped[way as usize].fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let mut delay = faults.delay;
        if faults.reorder > 0.0 && self.draw() < faults.reorder {
            self.counters.reordered[way as usize].fetch_add(1, Ordering::Relaxed);
            delay += faults.reorder_delay;
        }
        Some(delay)
    }
}

/// A running UDP fault proxy.
#[derive(Debug)]
pub struct UdpFaultProxy {
    shared: Arc<Shared>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for UdpFaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl UdpFaultProxy {
    /// A proxy on an ephemeral loopback port in front of the UDP address `target`, its draws
    /// from `seed`.
    pub async fn start(target: SocketAddr, seed: u64) -> Self {
        assert!(target.ip().is_loopback(), "the UDP fault proxy forwards to loopback only");
        let front = Arc::new(bind_loopback());
        let local = front.local_addr().unwrap();
        let shared = Arc::new(Shared {
            faults: Mutex::new([UdpFaults::default(); 2]),
            rng: Mutex::new(seed | 1),
            held: AtomicUsize::new(0),
            counters: Counters::default(),
        });
        let task = tokio::spawn(run(front, target, shared.clone()));
        Self { shared, local, task }
    }

    /// The UDP address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sets the faults of one direction.
    pub fn set(&self, way: Way, faults: UdpFaults) {
        self.shared.faults.lock().unwrap()[way as usize] = faults;
    }

    /// Sets the same faults both ways.
    pub fn set_both(&self, faults: UdpFaults) {
        *self.shared.faults.lock().unwrap() = [faults; 2];
    }

    /// Datagrams forwarded `way` so far.
    pub fn forwarded(&self, way: Way) -> u64 {
        self.shared.counters.forwarded[way as usize].load(Ordering::Relaxed)
    }

    /// Datagrams dropped `way` so far.
    pub fn dropped(&self, way: Way) -> u64 {
        self.shared.counters.dropped[way as usize].load(Ordering::Relaxed)
    }

    /// Datagrams held back `way` so far.
    pub fn reordered(&self, way: Way) -> u64 {
        self.shared.counters.reordered[way as usize].load(Ordering::Relaxed)
    }
}

/// Forwards client datagrams to `target` through one upstream socket per client, and each
/// upstream socket's datagrams back to its client.
async fn run(front: Arc<UdpSocket>, target: SocketAddr, shared: Arc<Shared>) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let upstream = match upstreams.get(&client) {
            Some(upstream) => upstream.clone(),
            None if upstreams.len() >= MAX_PEERS => continue,
            None => {
                let upstream = Arc::new(bind_loopback());
                upstream.connect(target).await.unwrap();
                upstreams.insert(client, upstream.clone());
                tasks.spawn(downstream(upstream.clone(), front.clone(), client, shared.clone()));
                upstream
            }
        };
        forward(&shared, Way::Up, &buf[..n], move |datagram| async move {
            let _ = upstream.send(&datagram).await;
        })
        .await;
    }
}

/// A UDP socket on an ephemeral loopback port with [`SOCKET_BUFFER`]-sized kernel buffers (as
/// far as the kernel allows).
fn bind_loopback() -> UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP)).unwrap();
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    UdpSocket::from_std(socket.into()).unwrap()
}

/// Forwards what the server sends to `client`'s upstream socket back to `client`.
async fn downstream(upstream: Arc<UdpSocket>, front: Arc<UdpSocket>, client: SocketAddr, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else { continue };
        let front = front.clone();
        forward(&shared, Way::Down, &buf[..n], move |datagram| async move {
            let _ = front.send_to(&datagram, client).await;
        })
        .await;
    }
}

/// Sends `datagram` now, later (in a timer task, within [`MAX_HELD`]) or not at all.
async fn forward<F, Fut>(shared: &Arc<Shared>, way: Way, datagram: &[u8], send: F)
where
    F: FnOnce(Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let Some(delay) = shared.decide(way) else { return };
    if delay.is_zero() {
        shared.counters.forwarded[way as usize].fetch_add(1, Ordering::Relaxed);
        send(datagram.to_vec()).await;
        return;
    }
    if shared.held.fetch_add(1, Ordering::Relaxed) >= MAX_HELD {
        shared.held.fetch_sub(1, Ordering::Relaxed);
        shared.counters.dropped[way as usize].fetch_add(1, Ordering::Relaxed);
        return;
    }
    shared.counters.forwarded[way as usize].fetch_add(1, Ordering::Relaxed);
    let datagram = datagram.to_vec();
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        send(datagram).await;
        shared.held.fetch_sub(1, Ordering::Relaxed);
    });
}
