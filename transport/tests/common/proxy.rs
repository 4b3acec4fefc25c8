//! An in-process fault proxy: a tokio task between a client and a server on loopback TCP that
//! forwards bytes through a fixed buffer per direction and, switchable at run time through its
//! handle, adds latency and jitter, caps bandwidth, slices writes into tiny pieces, resets
//! connections, cuts the server's stream after a number of bytes, or black-holes traffic.
//!
//! Memory is bounded by construction: each direction of each connection owns one buffer of
//! [`CHUNK`] bytes and reads nothing more until that buffer is written out. Latency is applied
//! per chunk read, so while a chunk waits the direction reads nothing: a delay also caps the
//! throughput at one chunk per delay, which is what a slow path does to a window-limited stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use volley::ServerHandle;
use volley::net::Address;

/// Bytes each direction of a connection reads at a time: the proxy's whole buffer per direction.
pub const CHUNK: usize = 16 * 1024;

/// How often a black-holed direction looks again whether it may resume.
const BLACK_HOLE_POLL: Duration = Duration::from_millis(5);

/// Which way bytes flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (requests).
    Up,
    /// Server to client (responses).
    Down,
}

/// The faults applied to one direction; the default forwards untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to every chunk before it is written.
    pub latency: Duration,
    /// A further delay in `[0, jitter)`, drawn from the proxy's seeded generator per chunk.
    pub jitter: Duration,
    /// At most this many bytes a second, if set.
    pub bytes_per_second: Option<u64>,
    /// Writes pieces of 1 to this many bytes (seeded), each with its own write call, if set.
    pub max_piece: Option<usize>,
    /// Neither reads nor writes (the sockets stay open) while set.
    pub black_hole: bool,
}

/// What the connection tasks read: the faults, commands and counters.
#[derive(Debug)]
struct Shared {
    faults: Mutex<[Faults; 2]>,
    /// Bytes of server-to-client data still forwarded before the stream is cut; `u64::MAX` = off.
    cut_after: AtomicU64,
    /// Bumped to reset every live connection.
    resets: watch::Sender<u64>,
    accepted: AtomicUsize,
    live: AtomicUsize,
    forwarded: [AtomicU64; 2],
    seed: u64,
}

/// A running proxy. Dropping it stops accepting; live connections end when the runtime does or
/// when they are reset.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on an ephemeral loopback port in front of `server` (a TCP server).
    pub async fn start(server: &ServerHandle) -> Self {
        let Address::Tcp(target) = server.local_addr().clone() else {
            panic!("the fault proxy forwards TCP only")
        };
        Self::start_to(target, 0x5eed_f00d).await
    }

    /// A proxy in front of `target`, its jitter and slicing drawn from `seed`.
    pub async fn start_to(target: SocketAddr, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            faults: Mutex::new([Faults::default(); 2]),
            cut_after: AtomicU64::new(u64::MAX),
            resets: watch::channel(0).0,
            accepted: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
            seed,
        });
        let accept = tokio::spawn(accept_loop(listener, target, shared.clone()));
        Self { shared, local, accept }
    }

    /// The address clients connect to.
    pub fn address(&self) -> Address {
        Address::Tcp(self.local)
    }

    /// Replaces the faults of one direction (they apply from the next chunk on).
    pub fn set(&self, direction: Direction, faults: Faults) {
        self.shared.faults.lock().unwrap()[direction as usize] = faults;
    }

    /// Replaces the faults of both directions.
    pub fn set_both(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = [faults; 2];
    }

    /// Forwards untouched again (a pending cut is disarmed too).
    pub fn clear(&self) {
        self.set_both(Faults::default());
        self.shared.cut_after.store(u64::MAX, Ordering::SeqCst);
    }

    /// Stops (or resumes) both directions without closing anything: a half-open path.
    pub fn black_hole(&self, on: bool) {
        let mut faults = self.shared.faults.lock().unwrap();
        for faults in faults.iter_mut() {
            faults.black_hole = on;
        }
    }

    /// Resets every live connection on both sides (SO_LINGER 0, then close: the peers get RST).
    pub fn reset_all(&self) {
        self.shared.resets.send_modify(|generation| *generation += 1);
    }

    /// Forwards `bytes` more bytes of server-to-client data, then closes the connection (both
    /// sides). Counted over all connections; disarmed once it fires.
    pub fn cut_after(&self, bytes: u64) {
        self.shared.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    /// Bytes forwarded in `direction` so far, over all connections.
    pub fn forwarded(&self, direction: Direction) -> u64 {
        self.shared.forwarded[direction as usize].load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let index = shared.accepted.fetch_add(1, Ordering::SeqCst) as u64;
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(target).await else {
                return; // Nobody listens: the client sees its connection closed.
            };
            shared.live.fetch_add(1, Ordering::SeqCst);
            serve(client, server, &shared, index).await;
            shared.live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// How one direction ended.
enum End {
    /// The source closed its side; the destination was shut down for writing.
    Eof,
    /// A socket failed (the peer reset it, say).
    Failed,
    /// The cut fired: close the whole connection.
    Cut,
}

async fn serve(mut client: TcpStream, mut server: TcpStream, shared: &Shared, index: u64) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut resets = shared.resets.subscribe();
    resets.mark_unchanged();
    let reset = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let seed = shared.seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let up = pump(client_read, server_write, Direction::Up, shared, Rng::new(seed));
        let down = pump(server_read, client_write, Direction::Down, shared, Rng::new(!seed));
        let both = async {
            tokio::pin!(up, down);
            // A cut or a failure in one direction ends the connection; an EOF waits for the other.
            tokio::select! {
                end = &mut up => if matches!(end, End::Eof) { down.await; },
                end = &mut down => if matches!(end, End::Eof) { up.await; },
            }
        };
        tokio::select! {
            () = both => false,
            _ = resets.changed() => true,
        }
    };
    if reset {
        for stream in [&client, &server] {
            let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
        }
    }
    // Dropping the sockets closes them: with linger 0 the kernel sends RST.
}

async fn pump<R, W>(mut from: R, mut to: W, direction: Direction, shared: &Shared, mut rng: Rng) -> End
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = [0u8; CHUNK];
    loop {
        wait_while_black_holed(shared, direction).await;
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return End::Eof;
            }
            Ok(n) => n,
            Err(_) => return End::Failed,
        };
        let faults = shared.faults.lock().unwrap()[direction as usize];
        let delay = faults.latency + rng.below(faults.jitter);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let (n, cut) = match direction {
            Direction::Down => take_cut_budget(shared, n),
            Direction::Up => (n, false),
        };
        let mut sent = 0;
        while sent < n {
            wait_while_black_holed(shared, direction).await;
            let faults = shared.faults.lock().unwrap()[direction as usize];
            let mut piece = n - sent;
            if let Some(max) = faults.max_piece {
                piece = piece.min(1 + rng.below_usize(max.max(1)));
            }
            if let Some(rate) = faults.bytes_per_second {
                // Pace in pieces of at most 1/50 of a second's worth.
                piece = piece.min((rate / 50).max(1) as usize);
            }
            if to.write_all(&buf[sent..sent + piece]).await.is_err() {
                return End::Failed;
            }
            shared.forwarded[direction as usize].fetch_add(piece as u64, Ordering::SeqCst);
            sent += piece;
            if let Some(rate) = faults.bytes_per_second {
                tokio::time::sleep(Duration::from_secs_f64(piece as f64 / rate.max(1) as f64)).await;
            }
        }
        if cut {
            let _ = to.flush().await;
            return End::Cut;
        }
    }
}

/// How many of `n` bytes may pass before the cut, and whether the cut fires after them.
fn take_cut_budget(shared: &Shared, n: usize) -> (usize, bool) {
    let mut left = shared.cut_after.load(Ordering::SeqCst);
    loop {
        if left == u64::MAX {
            return (n, false);
        }
        let allowed = left.min(n as u64);
        let next = if allowed == left { u64::MAX } else { left - allowed };
        match shared.cut_after.compare_exchange(left, next, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return (allowed as usize, allowed == left),
            Err(actual) => left = actual,
        }
    }
}

async fn wait_while_black_holed(shared: &Shared, direction: Direction) {
    while shared.faults.lock().unwrap()[direction as usize].black_hole {
        tokio::time::sleep(BLACK_HOLE_POLL).await;
    }
}

/// xorshift64*: deterministic from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `[0, n)`; 0 when `n` is 0.
    fn below_usize(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// A duration in `[0, max)`, in whole microseconds.
    fn below(&mut self, max: Duration) -> Duration {
        let micros = max.as_micros() as u64;
        if micros == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(self.next() % micros)
        }
    }
}
