//! Socket tuning, applied on both sides of a TCP connection (and the buffer sizes on both sides
//! of a Unix socket connection) and read back.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// TCP keepalive probes (the kernel's, below Volley's own ping keepalive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Idle time before the first probe.
    pub time: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub retries: u32,
}

/// `SO_SNDBUF` a Unix socket asks for when [`SocketConfig::send_buffer_size`] is `None`
/// (192 KiB, which Linux doubles to 384 KiB): Unix sockets have no autotuning, and with the
/// kernel's default (208 KiB) a 1 MiB one-way call with both ends on one CPU ran about 9 % slower;
/// 768 KiB and more ran slower still, the bytes in flight no longer fitting the cache beside the
/// message (docs/BENCHMARKS.md, "1 MiB one way over Unix sockets"). A cap on what a connection
/// may queue in the kernel unread, not memory it takes.
pub const DEFAULT_UNIX_SEND_BUFFER: usize = 192 * 1024;

/// Socket options for TCP connections. Unix sockets take the buffer sizes only.
///
/// The defaults favour latency: `TCP_NODELAY` on, kernel buffer sizes left to autotuning (a Unix
/// socket's send buffer: [`DEFAULT_UNIX_SEND_BUFFER`]), TCP keepalive after 30 s idle. Options the platform lacks produce a warning in
/// [`AppliedSocketOptions::warnings`], never a failure.
///
/// ```
/// use std::time::Duration;
/// use volley::net::SocketConfig;
///
/// let config = SocketConfig { busy_poll_micros: Some(50), user_timeout: Some(Duration::from_secs(10)), ..SocketConfig::default() };
/// assert!(config.nodelay);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    /// `TCP_NODELAY`: send small frames at once instead of waiting to coalesce (default on).
    pub nodelay: bool,
    /// `SO_SNDBUF` in bytes; `None` leaves the kernel's autotuning on TCP (default) and asks
    /// for [`DEFAULT_UNIX_SEND_BUFFER`] on a Unix socket.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` in bytes; `None` leaves the kernel's autotuning (default).
    pub recv_buffer_size: Option<usize>,
    /// TCP keepalive probes (default: 30 s, 10 s, 3 retries).
    pub keepalive: Option<KeepaliveConfig>,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged (Linux; default none).
    pub user_timeout: Option<Duration>,
    /// `TCP_QUICKACK`: acknowledge at once rather than delaying ACKs (Linux; default off, since
    /// the kernel resets it after each ACK and it costs a syscall to renew).
    pub quickack: bool,
    /// `SO_BUSY_POLL` in microseconds: spin on the device queue on blocking reads (Linux; default
    /// none; often needs CAP_NET_ADMIN to raise).
    pub busy_poll_micros: Option<u32>,
    /// `IP_TOS` (IPv4) or `IPV6_TCLASS` (IPv6): DSCP and ECN bits (default none).
    pub tos: Option<u32>,
    /// `SO_REUSEPORT` on listeners, so several servers can share a port (default off).
    pub reuse_port: bool,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            nodelay: true,
            send_buffer_size: None,
            recv_buffer_size: None,
            keepalive: Some(KeepaliveConfig {
                time: Duration::from_secs(30),
                interval: Duration::from_secs(10),
                retries: 3,
            }),
            user_timeout: None,
            quickack: false,
            busy_poll_micros: None,
            tos: None,
            reuse_port: false,
        }
    }
}

/// The values the kernel reports after [`SocketConfig`] was applied (it doubles or caps buffer
/// sizes), and a warning for each option it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedSocketOptions {
    /// `TCP_NODELAY` as read back.
    pub nodelay: Option<bool>,
    /// `SO_SNDBUF` as read back.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` as read back.
    pub recv_buffer_size: Option<usize>,
    /// `SO_KEEPALIVE` as read back.
    pub keepalive: Option<bool>,
    /// `TCP_USER_TIMEOUT` as read back.
    pub user_timeout: Option<Duration>,
    /// `TCP_QUICKACK` as read back.
    pub quickack: Option<bool>,
    /// `SO_BUSY_POLL` as read back.
    pub busy_poll_micros: Option<u32>,
    /// `IP_TOS` / `IPV6_TCLASS` as read back.
    pub tos: Option<u32>,
    /// One line per option that could not be set or read, naming it and the OS error.
    pub warnings: Vec<String>,
}

impl SocketConfig {
    /// Applies the options to a connected TCP socket and reads back what took effect.
    pub fn apply(&self, socket: SockRef<'_>) -> AppliedSocketOptions {
        let mut applied = AppliedSocketOptions::default();
        let mut warn = |what: &str, err: std::io::Error| applied.warn(what, err);
        if let Err(err) = socket.set_tcp_nodelay(self.nodelay) {
            warn("TCP_NODELAY", err);
        }
        apply_buffer_sizes(&socket, self.send_buffer_size, self.recv_buffer_size, &mut warn);
        if let Some(ka) = self.keepalive {
            let params = TcpKeepalive::new()
                .with_time(ka.time)
                .with_interval(ka.interval)
                .with_retries(ka.retries);
            if let Err(err) = socket.set_tcp_keepalive(&params) {
                warn("SO_KEEPALIVE", err);
            }
        }
        let is_v6 = socket.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.is_ipv6());
        if let Some(tos) = self.tos {
            let result = if is_v6 { socket.set_tclass_v6(tos) } else { socket.set_tos_v4(tos) };
            if let Err(err) = result {
                warn("IP_TOS", err);
            }
        }
        self.apply_linux(&socket, &mut warn);
        applied.nodelay = socket.tcp_nodelay().ok();
        applied.send_buffer_size = socket.send_buffer_size().ok();
        applied.recv_buffer_size = socket.recv_buffer_size().ok();
        applied.keepalive = socket.keepalive().ok();
        applied.tos = if is_v6 { socket.tclass_v6().ok() } else { socket.tos_v4().ok() };
        read_back_linux(&socket, &mut applied);
        applied
    }

    /// Applies the options a Unix socket takes, its buffer sizes (`SO_SNDBUF` is
    /// [`DEFAULT_UNIX_SEND_BUFFER`] unless set), and reads them back.
    pub fn apply_unix(&self, socket: SockRef<'_>) -> AppliedSocketOptions {
        let mut applied = AppliedSocketOptions::default();
        let send = self.send_buffer_size.or(Some(DEFAULT_UNIX_SEND_BUFFER));
        apply_buffer_sizes(&socket, send, self.recv_buffer_size, &mut |what, err| applied.warn(what, err));
        applied.send_buffer_size = socket.send_buffer_size().ok();
        applied.recv_buffer_size = socket.recv_buffer_size().ok();
        applied
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn apply_linux(&self, socket: &SockRef<'_>, warn: &mut impl FnMut(&str, std::io::Error)) {
        if self.user_timeout.is_some()
            && let Err(err) = socket.set_tcp_user_timeout(self.user_timeout)
        {
            warn("TCP_USER_TIMEOUT", err);
        }
        if self.quickack
            && let Err(err) = socket.set_tcp_quickack(true)
        {
            warn("TCP_QUICKACK", err);
        }
        if let Some(micros) = self.busy_poll_micros
            && let Err(err) = socket.set_busy_poll(micros)
        {
            warn("SO_BUSY_POLL", err);
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn apply_linux(&self, _socket: &SockRef<'_>, warn: &mut impl FnMut(&str, std::io::Error)) {
        let unsupported = || std::io::Error::new(std::io::ErrorKind::Unsupported, "not available on this platform");
        if self.user_timeout.is_some() {
            warn("TCP_USER_TIMEOUT", unsupported());
        }
        if self.quickack {
            warn("TCP_QUICKACK", unsupported());
        }
        if self.busy_poll_micros.is_some() {
            warn("SO_BUSY_POLL", unsupported());
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn read_back_linux(socket: &SockRef<'_>, applied: &mut AppliedSocketOptions) {
    applied.user_timeout = socket.tcp_user_timeout().ok().flatten();
    applied.quickack = socket.tcp_quickack().ok();
    applied.busy_poll_micros = socket.busy_poll().ok();
}

impl AppliedSocketOptions {
    /// Records (and logs) an option that could not be set.
    fn warn(&mut self, what: &str, err: std::io::Error) {
        let line = format!("socket option {what} not applied: {err}");
        tracing::warn!("{line}");
        self.warnings.push(line);
    }
}

/// Sets the kernel buffer sizes asked for (`None` leaves one as it is), on a TCP or a Unix
/// socket.
fn apply_buffer_sizes(socket: &SockRef<'_>, send: Option<usize>, recv: Option<usize>, warn: &mut impl FnMut(&str, std::io::Error)) {
    if let Some(size) = send
        && let Err(err) = socket.set_send_buffer_size(size)
    {
        warn("SO_SNDBUF", err);
    }
    if let Some(size) = recv
        && let Err(err) = socket.set_recv_buffer_size(size)
    {
        warn("SO_RCVBUF", err);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn read_back_linux(_socket: &SockRef<'_>, _applied: &mut AppliedSocketOptions) {}

#[cfg(all(test, not(loom), target_os = "linux"))]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn a_unix_socket_gets_the_default_send_buffer_unless_one_is_set() {
        let (ours, _peer) = UnixStream::pair().unwrap();
        let applied = SocketConfig::default().apply_unix(SockRef::from(&ours));
        // Linux doubles what is asked (for its bookkeeping) and reports the doubled size.
        assert_eq!(applied.send_buffer_size, Some(2 * DEFAULT_UNIX_SEND_BUFFER));
        assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
        let config = SocketConfig {
            send_buffer_size: Some(64 * 1024),
            ..SocketConfig::default()
        };
        assert_eq!(config.apply_unix(SockRef::from(&ours)).send_buffer_size, Some(128 * 1024));
    }
}
