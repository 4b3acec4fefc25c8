//! Synchronisation primitives, switched to loom's under `cfg(loom)` so our own concurrent
//! structures (buffer pool, write queue, in-flight table) are model-checked.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic};

#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic};

/// Locks `mutex`, recovering the data if a panicking thread poisoned it: every structure behind
/// our locks stays consistent between statements, so poison carries no meaning here.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
