//! Kernel busy polling on a socket: `SO_BUSY_POLL` and `SO_PREFER_BUSY_POLL`, set and read back.

use socket2::SockRef;

use super::KernelBusyPoll;

/// `SO_PREFER_BUSY_POLL` (Linux 5.11). The libc crate exports it only for some targets; its
/// value is 69 on every architecture Volley builds for (the generic `asm/socket.h`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SO_PREFER_BUSY_POLL: libc::c_int = 69;

/// What the kernel reports after [`KernelBusyPoll`] was applied, and a warning per refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppliedKernelBusyPoll {
    /// `SO_BUSY_POLL` as read back.
    pub micros: Option<u32>,
    /// `SO_PREFER_BUSY_POLL` as read back.
    pub prefer: Option<bool>,
    /// One line per option that could not be set or read (e.g. `EPERM` without
    /// `CAP_NET_ADMIN`), naming it and the OS error.
    pub warnings: Vec<String>,
}

/// Sets `SO_BUSY_POLL` and `SO_PREFER_BUSY_POLL` on `socket` and reads both back. A refusal is
/// a warning in the result (and a log line), never an error: the poller works without them.
///
/// ```
/// use volley::busy_poll::{KernelBusyPoll, apply_kernel_busy_poll};
///
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
/// let applied = apply_kernel_busy_poll(socket2::SockRef::from(&socket), KernelBusyPoll { micros: 0, prefer: false });
/// assert!(applied.micros == Some(0) || !applied.warnings.is_empty());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn apply_kernel_busy_poll(socket: SockRef<'_>, wanted: KernelBusyPoll) -> AppliedKernelBusyPoll {
    let mut applied = AppliedKernelBusyPoll::default();
    let mut warn = |what: &str, err: std::io::Error| {
        let line = format!("socket option {what} not applied: {err}");
        tracing::warn!("{line}");
        applied.warnings.push(line);
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if let Err(err) = socket.set_busy_poll(wanted.micros) {
            warn("SO_BUSY_POLL", err);
        }
        if let Err(err) = set_int(&socket, SO_PREFER_BUSY_POLL, i32::from(wanted.prefer)) {
            warn("SO_PREFER_BUSY_POLL", err);
        }
        applied.micros = socket.busy_poll().ok();
        applied.prefer = int(&socket, SO_PREFER_BUSY_POLL).ok().map(|value| value != 0);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (socket, wanted);
        warn("SO_BUSY_POLL", std::io::ErrorKind::Unsupported.into());
        warn("SO_PREFER_BUSY_POLL", std::io::ErrorKind::Unsupported.into());
    }
    applied
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn set_int(socket: &SockRef<'_>, option: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the borrow's life; the kernel reads `len` bytes from a
    // live `c_int`.
    let rc = unsafe { libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, option, (&raw const value).cast(), len) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[allow(unsafe_code)]
fn int(socket: &SockRef<'_>, option: libc::c_int) -> std::io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the borrow's life; the kernel writes at most `len`
    // bytes into a live `c_int` and updates `len`.
    let rc = unsafe { libc::getsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, option, (&raw mut value).cast(), &raw mut len) };
    if rc == 0 { Ok(value) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn kernel_busy_poll_is_read_back_or_its_refusal_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let applied = apply_kernel_busy_poll(SockRef::from(&socket), KernelBusyPoll { micros: 50, prefer: true });
        // Root (CAP_NET_ADMIN) gets both; anyone else an EPERM warning naming the option.
        match applied.micros {
            Some(50) => {}
            _ => assert!(applied.warnings.iter().any(|w| w.contains("SO_BUSY_POLL")), "{applied:?}"),
        }
        match applied.prefer {
            Some(true) => {}
            _ => assert!(applied.warnings.iter().any(|w| w.contains("SO_PREFER_BUSY_POLL")), "{applied:?}"),
        }
    }
}
