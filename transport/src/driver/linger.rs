//! The lingering close: after our final frames and FIN, keep reading (and discarding) for a short
//! bounded time, so the peer reads our GoAway before the socket closes.
//!
//! Closing a socket with unread bytes in its receive buffer, or receiving bytes after the close,
//! makes the kernel answer with RST. A peer still sending when we end the connection (an attacker
//! we just sent GoAway `RESOURCE_EXHAUSTED`, a client mid-stream) then sees "connection reset" or
//! "broken pipe" instead of our reason, and the RST can discard the GoAway itself. Reading until
//! the peer's EOF (it closes once it has read our GoAway and FIN) avoids that.

use std::io;
use std::time::Duration;

use crate::net::Stream;

/// How long a connection we ended keeps reading after its FIN (1 s): many round trips even on a
/// slow network, enough for the peer to read the GoAway and close; short enough that a peer that
/// never closes costs a socket only briefly. Only the connection's writer task waits for it;
/// nothing else (server shutdown, other connections) does.
pub(crate) const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// Bytes discarded at most while lingering (64 MiB): a peer flooding us cannot make us copy more
/// than that after we closed (some 10 ms of one core at loopback speed, bytes it paid to send),
/// while a peer still gets time to read our GoAway: over loopback on a busy 2-core machine a
/// flooding peer sent up to 14 MB before it had read it (`bad_input` tests), so 4 MiB was too few.
pub(crate) const LINGER_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Bytes read per discarding `read` (4 KiB), into a stack buffer that lives only for the
/// syscall: lingering takes no heap. A pooled 64 KiB buffer per lingering connection was 13 of the
/// 25 MiB peak heap of `volley-soak` when a churn burst closed (heaptrack; issue #15), and what
/// glibc kept of that peak after the burst held the soak over its memory bound.
const DISCARD_CHUNK: usize = 4 * 1024;

/// Reads and discards until the peer's EOF, a read error, [`LINGER_MAX_BYTES`] or
/// [`LINGER_TIMEOUT`], whichever comes first. Call it after the final frames and the FIN went out,
/// once the reader task has stopped reading.
pub(crate) async fn linger(stream: &Stream) {
    let _ = tokio::time::timeout(LINGER_TIMEOUT, discard(stream)).await;
}

async fn discard(stream: &Stream) {
    let mut discarded = 0;
    while discarded < LINGER_MAX_BYTES {
        // Not held across the wait below, so the writer task's future stays small.
        let read = {
            let mut chunk = [0u8; DISCARD_CHUNK];
            stream.try_read(&mut chunk)
        };
        match read {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if stream.readable().await.is_err() {
                    return;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
