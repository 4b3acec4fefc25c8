//! Limits and timeouts of one connection, each with its default and the reason for it.

use std::time::Duration;

use super::RateBudget;
use crate::wire::Settings;

/// How long a peer has, from accept, to send its preface and settings (5 s): long enough for a
/// loaded client, short enough that idle sockets cannot hold server slots.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a frame may stay partly received with no more of its bytes arriving (30 s): a peer
/// that sends part of a frame and stops holds a buffer (up to a max frame size) and, with calls
/// open, is caught by no other timeout. Each byte of the frame that arrives restarts the clock,
/// so a large message on a slow link is never cut off.
pub const DEFAULT_PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server keeps a connection with no calls before closing it with a graceful GoAway
/// (5 minutes): idle connections cost memory and a file descriptor each; a client's `Channel`
/// reconnects when it needs to.
pub const DEFAULT_IDLE_TIMEOUT: Option<Duration> = Some(Duration::from_secs(300));

/// How long without a frame from the peer before we ping it (none by default on servers; clients
/// set it through `Channel`).
pub const DEFAULT_KEEPALIVE_INTERVAL: Option<Duration> = None;

/// How long a keepalive ping may go unanswered before the peer is declared dead (10 s).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings received faster than the announced minimum interval that close the connection (3):
/// a misconfigured client is warned twice by the count, a flood is stopped.
pub const DEFAULT_MAX_PING_STRIKES: u32 = 3;

/// Cancels a peer may send: a burst of 1,000, refilled at 200 per second. A busy legitimate
/// client cancels far less; a rapid-reset flood (thousands per second) exhausts it in seconds.
pub const DEFAULT_CANCEL_BUDGET: RateBudget = RateBudget {
    burst: 1_000,
    per_second: 200,
};

/// Error replies Volley generates for a peer's bad frames or refused calls: a burst of 1,000,
/// refilled at 100 per second, so a peer cannot make us do unbounded work by misbehaving.
pub const DEFAULT_ERROR_BUDGET: RateBudget = RateBudget {
    burst: 1_000,
    per_second: 100,
};

/// Stream messages with a payload shorter than this many bytes (8) are "small frames", charged
/// to the small-frame budget: such a frame is at least two thirds header (16 bytes), and the
/// flow-control window, which counts payload bytes only, charges it almost nothing (an empty
/// message nothing at all). Real messages of 8 bytes and more are never charged.
pub const SMALL_FRAME_PAYLOAD: usize = 8;

/// Cheap frames a peer may send: a burst of 10,000, refilled at 10,000 per second. Cheap frames
/// cost the peer a header and us per-frame work that no other limit counts: stream messages under
/// [`SMALL_FRAME_PAYLOAD`], Credit frames beyond those our messages earned
/// ([`FREE_CREDITS_PER_MESSAGE`]), Pongs that answer no ping of ours, GoAways, and EndOfStream,
/// Response or Status frames for a call that is no longer open. A stream of empty heartbeats or
/// tiny counters at up to 10,000 a second never touches it, nor does a legitimate peer's handful
/// of the others; a flood of any of them (millions a second over loopback) exhausts it within
/// milliseconds, before the per-frame work and queue entries it costs add up.
pub const DEFAULT_SMALL_FRAME_BUDGET: RateBudget = RateBudget {
    burst: 10_000,
    per_second: 10_000,
};

/// Credit frames a peer may send free of the small-frame budget for each stream message we sent
/// it (2): a receiver that grants credit after every message it reads sends one Credit for the
/// call and one for the connection, at whatever rate we stream, so it is never charged. Credits
/// beyond that are charged, so a credit flood costs the budget while a peer can never send more
/// free credits than twice the messages we chose to send it.
pub const FREE_CREDITS_PER_MESSAGE: u64 = 2;

/// A metadata block this many times over the limit closes the connection instead of failing
/// only the call (4): a slightly-too-large block is a bug, a huge one is abuse.
pub const METADATA_ABUSE_FACTOR: usize = 4;

/// Calls a peer may break by sending beyond its flow-control window before the connection
/// closes (3): one is a bug worth a reset, a pattern is abuse.
pub const MAX_FLOW_VIOLATIONS: u32 = 3;

/// Everything that configures one side of a connection.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// The settings we announce (and enforce on what we receive).
    pub settings: Settings,
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`DEFAULT_PARTIAL_FRAME_TIMEOUT`].
    pub partial_frame_timeout: Duration,
    /// See [`DEFAULT_KEEPALIVE_INTERVAL`].
    pub keepalive_interval: Option<Duration>,
    /// See [`DEFAULT_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`]; servers only.
    pub idle_timeout: Option<Duration>,
    /// See [`DEFAULT_MAX_PING_STRIKES`].
    pub max_ping_strikes: u32,
    /// See [`DEFAULT_CANCEL_BUDGET`].
    pub cancel_budget: RateBudget,
    /// See [`DEFAULT_ERROR_BUDGET`].
    pub error_budget: RateBudget,
    /// See [`DEFAULT_SMALL_FRAME_BUDGET`].
    pub small_frame_budget: RateBudget,
    /// Chunk payload bytes this side's writer keeps sent and unacknowledged toward a peer that
    /// acknowledges chunks (`RECEIVE_CHUNKS` = 2); 0 keeps no window. See
    /// [`crate::wire::DEFAULT_CHUNK_WINDOW`] and [`ConnectionConfig::chunk_window`].
    pub chunk_window: usize,
    /// Chunk payload this side's writer cuts a large frame into, toward a peer that reassembles
    /// chunks; see [`crate::wire::DEFAULT_CHUNK_SIZE`] and [`ConnectionConfig::chunk_size`].
    pub chunk_size: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            // Chunk reassembly is not announced: see `ConnectionConfig::receive_chunks`.
            settings: Settings::default(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            partial_frame_timeout: DEFAULT_PARTIAL_FRAME_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_ping_strikes: DEFAULT_MAX_PING_STRIKES,
            cancel_budget: DEFAULT_CANCEL_BUDGET,
            error_budget: DEFAULT_ERROR_BUDGET,
            small_frame_budget: DEFAULT_SMALL_FRAME_BUDGET,
            chunk_window: crate::wire::DEFAULT_CHUNK_WINDOW,
            chunk_size: crate::wire::DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ConnectionConfig {
    /// Announces (or not) that this side puts chunked frames back together
    /// (`RECEIVE_CHUNKS`, docs/PROTOCOL.md section 5.12), so that a peer cuts its frames over
    /// 64 KiB into chunks and sends the frames of other calls between them: a 64-byte call then
    /// no longer waits behind a 16 MiB message on the same connection. Off by default: the
    /// reassembly now copies each byte once, into one buffer of the frame's length, but 1 MiB
    /// one-way throughput with chunks is still 0.71-0.75x of whole frames on one CPU
    /// (docs/BENCHMARKS.md, "Zero-copy reassembly and the chunk window"). On, it announces 1
    /// (no acknowledgements); see [`ConnectionConfig::acknowledge_chunks`] for 2.
    ///
    /// ```
    /// use volley::protocol::ConnectionConfig;
    ///
    /// assert_eq!(ConnectionConfig::default().settings.receive_chunks, 0);
    /// let config = ConnectionConfig::default().receive_chunks(true);
    /// assert_eq!(config.settings.receive_chunks, 1);
    /// ```
    #[must_use]
    pub fn receive_chunks(mut self, on: bool) -> Self {
        self.settings.receive_chunks = u32::from(on);
        self
    }

    /// Announces `RECEIVE_CHUNKS` = 2 (or 1 when `false`): this side reassembles chunks and acknowledges the chunk
    /// bytes it takes (ChunkAck, docs/PROTOCOL.md section 5.12), so the peer's writer keeps at
    /// most its chunk window of a bulk message in the socket buffers ahead of a small call.
    /// Off by default: on one CPU the acknowledgements (one per read) and the window's waits
    /// cost 1 MiB messages about half their throughput (docs/BENCHMARKS.md, "Zero-copy
    /// reassembly and the chunk window"); turn it on where a small call's latency beside bulk
    /// matters more.
    ///
    /// ```
    /// use volley::protocol::ConnectionConfig;
    ///
    /// let config = ConnectionConfig::default().acknowledge_chunks(true);
    /// assert_eq!(config.settings.receive_chunks, 2);
    /// assert_eq!(config.acknowledge_chunks(false).settings.receive_chunks, 1);
    /// ```
    #[must_use]
    pub fn acknowledge_chunks(mut self, on: bool) -> Self {
        self.settings.receive_chunks = if on { crate::wire::RECEIVE_CHUNKS_ACKED } else { 1 };
        self
    }

    /// Sets the chunk window: at most `bytes` of chunk payload sent and not yet acknowledged
    /// toward a peer that acknowledges chunks (docs/PROTOCOL.md section 5.12); 0 keeps none.
    /// Smaller keeps less of a bulk message ahead of a small call in the socket buffers (its
    /// latency beside bulk); larger costs bulk throughput fewer round trips for
    /// acknowledgements (docs/BENCHMARKS.md, "Zero-copy reassembly and the chunk window").
    ///
    /// ```
    /// use volley::protocol::ConnectionConfig;
    ///
    /// let config = ConnectionConfig::default().chunk_window(256 * 1024);
    /// assert_eq!(config.chunk_window, 256 * 1024);
    /// ```
    #[must_use]
    pub fn chunk_window(mut self, bytes: usize) -> Self {
        self.chunk_window = bytes;
        self
    }

    /// The chunk payload this side's writer cuts frames over it into, toward a peer that
    /// reassembles chunks (at least [`crate::wire::MIN_CHUNK_PAYLOAD`], 1 KiB; default
    /// [`crate::wire::DEFAULT_CHUNK_SIZE`], 64 KiB). A frame of another call waits behind at
    /// most one chunk (plus the chunk window): smaller chunks cut that wait, at the cost of bulk
    /// throughput. With client and server on one CPU, 16 KiB chunks and a 16 KiB window kept a
    /// 64-byte high-priority call's p99 beside ten 16 MiB answers a second within 1.2-1.8x of
    /// idle (2.8-2.9x with 64 KiB), and carried 30 instead of 67 answers a second back to back
    /// (docs/BENCHMARKS.md, "Smaller chunks"). Receivers take any chunk size; this changes only
    /// what this side sends.
    ///
    /// ```
    /// use volley::protocol::ConnectionConfig;
    ///
    /// let config = ConnectionConfig::default().acknowledge_chunks(true).chunk_size(16 * 1024).chunk_window(16 * 1024);
    /// assert_eq!(config.chunk_size, 16 * 1024);
    /// ```
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(crate::wire::MIN_CHUNK_PAYLOAD);
        self
    }
}
