//! The count of callers waiting for a call slot, so that a call's end signals a waiter only when
//! there is one (a `notify_one` per completed call otherwise, for nobody).
//!
//! The protocol, with the connection's state lock `L` ordering the two sides:
//! - a caller that found no slot counts itself ([`SlotWaiters::wait`]) *before* it takes `L`
//!   for its last look, and sleeps only if that look found none;
//! - whoever frees slots does so under `L` and, after releasing it, signals only when
//!   [`SlotWaiters::any`] says someone waits.
//!
//! If the caller's last look came after the freeing, it sees the slot; if before, its count
//! happened before its release of `L`, which happened before the freer took `L`, so the freer
//! sees the count and signals. Either way no waiter sleeps past a free slot (modelled in
//! `loom_models` below).

use crate::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Callers waiting for a call slot.
#[derive(Debug, Default)]
pub(crate) struct SlotWaiters {
    waiting: AtomicUsize,
}

impl SlotWaiters {
    /// Counts a caller waiting until the returned guard drops. Call it before taking the lock
    /// for the look that precedes the wait.
    pub(crate) fn wait(&self) -> SlotWait<'_> {
        self.waiting.fetch_add(1, Relaxed);
        SlotWait { waiters: self }
    }

    /// Whether any caller waits. Read after releasing the lock under which slots were freed.
    pub(crate) fn any(&self) -> bool {
        self.waiting.load(Relaxed) > 0
    }
}

/// A caller counted waiting for a call slot ([`SlotWaiters::wait`]), until dropped.
#[derive(Debug)]
pub(crate) struct SlotWait<'a> {
    waiters: &'a SlotWaiters,
}

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        self.waiters.waiting.fetch_sub(1, Relaxed);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::sync::{Arc, Mutex, lock};
    use loom::sync::Notify;

    /// One slot, held by a call that ends on another thread while a caller looks for it: the
    /// caller always gets the slot; it never sleeps with the slot free and nobody to wake it
    /// (loom reports a deadlock if it does).
    #[test]
    fn loom_a_freed_slot_never_misses_its_waiter() {
        loom::model(|| {
            let free = Arc::new(Mutex::new(0usize));
            let waiters = Arc::new(SlotWaiters::default());
            let signal = Arc::new(Notify::new());
            let ender = {
                let (free, waiters, signal) = (free.clone(), waiters.clone(), signal.clone());
                loom::thread::spawn(move || {
                    *lock(&free) += 1;
                    if waiters.any() {
                        signal.notify();
                    }
                })
            };
            // The caller: a first look without counting itself, then count, look, sleep.
            let mut _counted = None;
            loop {
                {
                    let mut slots = lock(&free);
                    if *slots > 0 {
                        *slots -= 1;
                        break;
                    }
                }
                if _counted.is_none() {
                    _counted = Some(waiters.wait());
                    continue;
                }
                signal.wait();
            }
            ender.join().unwrap();
            drop(_counted);
            assert!(!waiters.any());
        });
    }
}
