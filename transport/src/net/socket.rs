//! Socket tuning, applied on both sides of a TCP connection and read back.

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

/// Socket options for TCP connections. Unix sockets take none of them.
///
/// The defaults favour latency: `TCP_NODELAY` on, kernel buffer sizes left to autotuning, TCP
/// keepalive after 30 s idle. Options the platform lacks produce a warning in
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
    /// `SO_SNDBUF` in bytes; `None` leaves the kernel's autotuning (default).
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
        let mut warn = |what: &str, err: std::io::Error| {
            let line = format!("socket option {what} not applied: {err}");
            tracing::warn!("{line}");
            applied.warnings.push(line);
        };
        if let Err(err) = socket.set_tcp_nodelay(self.nodelay) {
            warn("TCP_NODELAY", err);
        }
        if let Some(size) = self.send_buffer_size
            && let Err(err) = socket.set_send_buffer_size(size)
        {
            warn("SO_SNDBUF", err);
        }
        if let Some(size) = self.recv_buffer_size
            && let Err(err) = socket.set_recv_buffer_size(size)
        {
            warn("SO_RCVBUF", err);
        }
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

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn read_back_linux(_socket: &SockRef<'_>, _applied: &mut AppliedSocketOptions) {}
