//! Keeps the CPU of a thread waiting in `fdatasync` busy, so it does not halt.
//!
//! On the virtual machines the gateway is measured on, a CPU with nothing to run executes `HLT`:
//! the vCPU leaves the guest, the hypervisor may run other work on the core, and the disk's
//! completion must wake a halted vCPU before the syncing thread runs again, cold (measured: the
//! fsync p50 about 34 µs shorter with the spinner, a lone order's acknowledgement 15-27 %
//! sooner; docs/BENCHMARKS.md, "The lone order with the CPU kept busy during the fsync"). An
//! [`IdleSpinner`] is a thread at `SCHED_IDLE` priority, moved to the CPU of the thread that
//! syncs, that spins while syncs keep coming: it runs only when that CPU would otherwise idle,
//! and any other thread that wakes there preempts it at once.
//!
//! It spins on plain loads, never `PAUSE` (`std::hint::spin_loop`): a hypervisor treats a
//! `PAUSE` loop as an idle vCPU. It parks after [`SPIN_GRACE`] without a sync, and its thread
//! ends by itself within [`PARK_CHECK`] once its owner is dropped (no syscall in `Drop`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the spinner keeps spinning after the last sync began: syncs closer together than
/// this (one order after another) keep it awake without a wake-up each.
pub(crate) const SPIN_GRACE: Duration = Duration::from_millis(2);

/// How often a parked spinner checks whether its owner is gone.
const PARK_CHECK: Duration = Duration::from_millis(100);

/// Loads between two looks at the clock while spinning (a few microseconds).
const LOADS_PER_CHECK: u32 = 4_096;

/// No CPU known yet.
const NO_CPU: u32 = u32::MAX;

/// What the owner and the spinner thread share.
#[derive(Debug)]
struct Signals {
    /// Syncs begun so far: the spinner parks once this stops moving.
    syncs: AtomicU64,
    /// The CPU of the thread that began the last sync.
    cpu: AtomicU32,
    /// The spinner is parked (or about to): a sync must wake it.
    parked: AtomicBool,
    /// Times the spinner left the parked state to spin.
    wake_ups: AtomicU64,
    park: Mutex<()>,
    wake: Condvar,
}

/// A `SCHED_IDLE` thread that spins on the syncing thread's CPU while syncs keep coming.
///
/// Drop it to stop the thread (it notices within [`PARK_CHECK`] or [`SPIN_GRACE`]).
#[derive(Debug)]
pub(crate) struct IdleSpinner {
    signals: Arc<Signals>,
    _thread: JoinHandle<()>,
}

impl IdleSpinner {
    /// Starts the spinner thread, parked.
    pub(crate) fn start() -> std::io::Result<Self> {
        let signals = Arc::new(Signals {
            syncs: AtomicU64::new(0),
            cpu: AtomicU32::new(NO_CPU),
            parked: AtomicBool::new(true),
            wake_ups: AtomicU64::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let thread_signals = Arc::clone(&signals);
        let thread = std::thread::Builder::new()
            .name("volley-journal-spin".to_owned())
            .spawn(move || run(&thread_signals))?;
        Ok(Self { signals, _thread: thread })
    }

    /// Call on the thread about to sync, just before it blocks: the spinner moves to this
    /// thread's CPU and spins there (woken first if parked).
    pub(crate) fn before_sync(&self) {
        let signals = &*self.signals;
        signals.cpu.store(current_cpu(), Ordering::Relaxed);
        signals.syncs.fetch_add(1, Ordering::SeqCst);
        if signals.parked.load(Ordering::SeqCst) {
            // Under the lock the spinner holds from its last check until it waits, so the
            // notification cannot fall between the two.
            let _guard = signals.park.lock().unwrap_or_else(PoisonError::into_inner);
            signals.wake.notify_one();
        }
    }

    /// Whether the spinner is parked (tests).
    #[cfg(test)]
    fn is_parked(&self) -> bool {
        self.signals.parked.load(Ordering::SeqCst)
    }

    /// Times the spinner started spinning (tests).
    #[cfg(test)]
    fn wake_ups(&self) -> u64 {
        self.signals.wake_ups.load(Ordering::SeqCst)
    }
}

/// The spinner thread: parks until a sync, spins until [`SPIN_GRACE`] passes without one.
fn run(signals: &Arc<Signals>) {
    lower_priority_to_idle();
    let mut on_cpu = NO_CPU;
    // From 0, not a load: a sync begun before this thread ran must wake it too.
    let mut seen = 0;
    loop {
        // Parked: wait for a sync to begin, or for the owner to go.
        {
            let mut guard = signals.park.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if Arc::strong_count(signals) == 1 {
                    return;
                }
                signals.parked.store(true, Ordering::SeqCst);
                let now = signals.syncs.load(Ordering::SeqCst);
                if now != seen {
                    seen = now;
                    signals.parked.store(false, Ordering::SeqCst);
                    signals.wake_ups.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                guard = signals
                    .wake
                    .wait_timeout(guard, PARK_CHECK)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        // Spinning: follow the syncing thread's CPU; stop once syncs stop.
        let mut last_sync = Instant::now();
        loop {
            let cpu = signals.cpu.load(Ordering::Relaxed);
            if cpu != on_cpu && cpu != NO_CPU {
                move_to_cpu(cpu);
                on_cpu = cpu;
            }
            for _ in 0..LOADS_PER_CHECK {
                std::hint::black_box(signals.syncs.load(Ordering::Relaxed));
            }
            let now = signals.syncs.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                last_sync = Instant::now();
            } else if last_sync.elapsed() >= SPIN_GRACE || Arc::strong_count(signals) == 1 {
                break;
            }
        }
    }
}

/// The CPU this thread runs on now, or [`NO_CPU`].
#[allow(unsafe_code)] // three libc calls, each with its SAFETY note
fn current_cpu() -> u32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments and only reads the current CPU.
        let cpu = unsafe { libc::sched_getcpu() };
        u32::try_from(cpu).unwrap_or(NO_CPU)
    }
    #[cfg(not(target_os = "linux"))]
    {
        NO_CPU
    }
}

/// Runs this thread only when its CPU has nothing else to run (best-effort: on failure it
/// spins at normal priority, which the grace period still bounds).
#[allow(unsafe_code)] // three libc calls, each with its SAFETY note
fn lower_priority_to_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is this thread.
        let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "the journal's spinner could not lower its priority to SCHED_IDLE");
        }
    }
}

/// Pins this thread to `cpu` (best-effort: a CPU outside this process's set is refused and
/// the spinner stays where it is).
#[allow(unsafe_code)] // three libc calls, each with its SAFETY note
fn move_to_cpu(cpu: u32) {
    #[cfg(target_os = "linux")]
    {
        let Ok(cpu) = usize::try_from(cpu) else { return };
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it (checked above),
        // and sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it; pid 0 is this thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing::debug!(cpu, error = %std::io::Error::last_os_error(), "the journal's spinner could not move to the syncing CPU");
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn the_spinner_wakes_for_a_sync_and_parks_again_after_the_grace_period() {
        let spinner = IdleSpinner::start().expect("spinner thread");
        assert_eq!((spinner.is_parked(), spinner.wake_ups()), (true, 0), "parked until the first sync");
        spinner.before_sync();
        assert!(wait_until(|| spinner.wake_ups() == 1), "a sync wakes the spinner");
        assert!(wait_until(|| spinner.is_parked()), "no sync for the grace period parks it again");
        spinner.before_sync();
        assert!(wait_until(|| spinner.wake_ups() == 2), "and the next sync wakes it again");
        assert!(wait_until(|| spinner.is_parked()), "then it parks again");
    }

    #[test]
    fn the_spinner_thread_ends_by_itself_once_dropped() {
        let spinner = IdleSpinner::start().expect("spinner thread");
        spinner.before_sync();
        let signals = Arc::downgrade(&spinner.signals);
        drop(spinner);
        assert!(
            wait_until(|| signals.strong_count() == 0),
            "the thread let go of its state and ended"
        );
    }
}
