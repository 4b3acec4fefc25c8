//! CPU placement: pinning a thread (a poller, a spinning caller) to one core.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// Why a thread could not be pinned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The CPU is not one this process may run on (offline, outside its cpuset or `taskset`).
    #[error("CPU {cpu} is not among the CPUs this process may use ({allowed:?}); pick one of those")]
    NotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// The kernel refused the affinity change.
    #[error("sched_setaffinity failed: {0}; check the process's cpuset and permissions")]
    Os(#[source] std::io::Error),
}

/// The CPUs the calling thread may run on, lowest first.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Pins the calling thread to `cpu`: the scheduler runs it there and nowhere else.
///
/// The trade-off: a pinned spinning thread (a `Spin` poller, a caller in
/// [`spin_on`](super::spin_on)) takes its core whole, for as long as it spins, whether or not
/// calls arrive; anything else pinned there (another poller, the tokio runtime) shares the core
/// with it in scheduler time slices and sees milliseconds of delay. Give each spinning thread a
/// core of its own, and keep the runtime's threads off those cores.
///
/// ```
/// use volley::busy_poll::{allowed_cpus, pin_current_thread};
///
/// let first = allowed_cpus()[0];
/// std::thread::spawn(move || pin_current_thread(first)).join().unwrap()?;
/// # Ok::<(), volley::busy_poll::PlacementError>(())
/// ```
pub fn pin_current_thread(cpu: usize) -> Result<(), PlacementError> {
    let allowed = allowed_cpus();
    if cpu >= CpuSet::MAX_CPU || !allowed.contains(&cpu) {
        return Err(PlacementError::NotAllowed { cpu, allowed });
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(|err| PlacementError::Os(err.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinning_to_a_cpu_outside_the_allowed_set_is_a_typed_error() {
        let err = std::thread::spawn(|| pin_current_thread(CpuSet::MAX_CPU + 1))
            .join()
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, PlacementError::NotAllowed { .. }), "{err}");
    }

    #[test]
    fn a_pinned_thread_runs_only_on_its_cpu() {
        let cpu = *allowed_cpus().last().unwrap();
        let after = std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(after, vec![cpu]);
    }
}
