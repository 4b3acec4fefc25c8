//! What a busy-polling connection is configured with: how its poller waits when the socket is
//! empty, where it runs, and which kernel busy-poll options its socket gets.

use std::time::Duration;

/// The name of every poller thread (at most 15 bytes, the kernel's limit), as `ps -L` and
/// `/proc/<pid>/task/<tid>/comm` show it.
pub const POLLER_THREAD_NAME: &str = "volley-poller";

/// Empty polls a [`IdleStrategy::SpinThenPark`] poller makes before it starts yielding
/// (10,000): about 5 ms of polling at roughly half a microsecond per empty `recv`, longer than
/// the gap between the calls of a busy caller, so a steady exchange never parks.
pub const DEFAULT_SPINS: u32 = 10_000;

/// Yields (`sched_yield`) a [`IdleStrategy::SpinThenPark`] poller makes after spinning and
/// before it parks (1,000): lets another thread of the same core run without giving up the core.
pub const DEFAULT_YIELDS: u32 = 1_000;

/// First park of a [`IdleStrategy::SpinThenPark`] poller (10 µs); each further empty poll
/// doubles it up to [`DEFAULT_MAX_PARK`].
pub const DEFAULT_MIN_PARK: Duration = Duration::from_micros(10);

/// Longest park of a [`IdleStrategy::SpinThenPark`] poller (1 ms): an idle connection wakes
/// its poller 1,000 times a second at most, and the first message after a long silence waits
/// up to that long.
pub const DEFAULT_MAX_PARK: Duration = Duration::from_millis(1);

/// What a poller does after a poll found nothing, modelled on Aeron's idle strategies
/// (`BusySpinIdleStrategy`, `YieldingIdleStrategy`, `BackoffIdleStrategy`).
///
/// No strategy issues a `PAUSE` instruction (`std::hint::spin_loop`) while spinning: on a
/// virtual machine the hypervisor may take a vCPU that pauses for an idle one and deschedule
/// it, which is the very wake-up busy-polling exists to avoid.
///
/// ```
/// use std::time::Duration;
/// use volley::busy_poll::IdleStrategy;
///
/// let backoff = IdleStrategy::SpinThenPark { spins: 1_000, yields: 100, min_park: Duration::from_micros(10), max_park: Duration::from_millis(1) };
/// assert_ne!(backoff, IdleStrategy::Spin);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Poll again at once, for ever: the lowest latency, and one core fully spent while the
    /// connection lives, even when it is idle.
    Spin,
    /// Poll again at once `spins` times, then yield the core to the scheduler between polls
    /// (`sched_yield`): another thread pinned to the same core gets to run, at the cost of a
    /// context switch when it does. The core still shows 100 % busy.
    SpinThenYield {
        /// Empty polls before yielding starts.
        spins: u32,
    },
    /// Spin, then yield, then park the thread for `min_park`, doubling up to `max_park` while
    /// nothing arrives; any message resets it to spinning. An idle connection costs (almost) no
    /// CPU; the first message after a silence waits up to `max_park`.
    SpinThenPark {
        /// Empty polls before yielding starts.
        spins: u32,
        /// Yields before parking starts.
        yields: u32,
        /// First park.
        min_park: Duration,
        /// Longest park.
        max_park: Duration,
    },
}

impl Default for IdleStrategy {
    /// [`IdleStrategy::SpinThenPark`] with [`DEFAULT_SPINS`], [`DEFAULT_YIELDS`],
    /// [`DEFAULT_MIN_PARK`] and [`DEFAULT_MAX_PARK`].
    fn default() -> Self {
        Self::SpinThenPark {
            spins: DEFAULT_SPINS,
            yields: DEFAULT_YIELDS,
            min_park: DEFAULT_MIN_PARK,
            max_park: DEFAULT_MAX_PARK,
        }
    }
}

/// The kernel's own busy polling on a TCP socket: `SO_BUSY_POLL` (spin on the device's
/// receive queue for up to `micros` in a blocking read or poll) and `SO_PREFER_BUSY_POLL`
/// (Linux 5.11+: defer the device's interrupts to the busy poller). They act on NAPI network
/// devices; loopback has no NAPI context, so over 127.0.0.1 they are accepted and change
/// nothing. Raising `SO_BUSY_POLL` above `net.core.busy_read` needs `CAP_NET_ADMIN`; without
/// it the option is refused (`EPERM`) and the refusal reported, never fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelBusyPoll {
    /// `SO_BUSY_POLL` in microseconds.
    pub micros: u32,
    /// `SO_PREFER_BUSY_POLL`.
    pub prefer: bool,
}

/// The busy-poll receive mode of a connection (client or server): instead of a tokio reader
/// task woken by the reactor, a dedicated OS thread reads the non-blocking socket in a loop and
/// runs the same read pass (decode, hand outcomes to calls, run inline handlers and write their
/// answers). See `docs/latency.md`.
///
/// ```
/// use volley::busy_poll::{BusyPoll, IdleStrategy};
///
/// let spin_on_core_1 = BusyPoll::new(IdleStrategy::Spin).pin_to_cpu(1);
/// assert_eq!(spin_on_core_1.cpu, Some(1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusyPoll {
    /// What the poller does when a poll finds nothing.
    pub idle: IdleStrategy,
    /// The CPU the poller thread is pinned to (`sched_setaffinity`); `None` leaves it to the
    /// scheduler. A pin that fails (no such CPU, not allowed) is logged and the poller runs
    /// unpinned.
    pub cpu: Option<usize>,
    /// Kernel busy polling on TCP sockets; `None` leaves the socket's options alone.
    pub kernel: Option<KernelBusyPoll>,
}

impl BusyPoll {
    /// Busy polling with `idle`, unpinned, without kernel options.
    pub fn new(idle: IdleStrategy) -> Self {
        Self {
            idle,
            cpu: None,
            kernel: None,
        }
    }

    /// Pins the poller thread to `cpu` (see [`crate::busy_poll::pin_current_thread`]).
    #[must_use]
    pub fn pin_to_cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Sets `SO_BUSY_POLL` to `micros` and `SO_PREFER_BUSY_POLL` to `prefer` on TCP sockets.
    #[must_use]
    pub fn kernel_busy_poll(mut self, micros: u32, prefer: bool) -> Self {
        self.kernel = Some(KernelBusyPoll { micros, prefer });
        self
    }
}
