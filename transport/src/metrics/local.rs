//! Each thread's own shard of a [`super::Metrics`]: where calls record, with plain adds.
//!
//! A thread that records into a `Metrics` for the first time adopts a [`Shard`] from its pool
//! (`shards.rs`) and keeps it in a thread-local list; every later call on that thread finds it
//! there (a pointer comparison per `Metrics` the thread records into, usually one) and adds to
//! its [`SoleCounter`]s without a locked instruction. When the thread exits, its shards go back
//! to their pools, counts included, for the next thread. A method's counters in a shard are
//! allocated the first time the thread records a call of that method on that side, never after.
//! A thread whose thread-local storage is already torn down (a call dropped while the thread
//! exits) records into the shared atomics instead ([`with_shard`] says so).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, OnceLock, Weak};

use super::Inner;
use super::histogram::Histogram;
use super::registry::{CallCounters, MAX_METHODS, MethodSlot};
use super::shards::SoleCounter;

/// One thread's counters of one `Metrics`, by method slot, allocated on first use per side.
#[derive(Debug)]
pub(crate) struct Shard {
    client: Box<[OnceLock<Box<ClientShard>>]>,
    server: Box<[OnceLock<Box<ServerShard>>]>,
}

/// A thread's client-side counters of one method.
#[derive(Debug, Default)]
pub(crate) struct ClientShard {
    pub(crate) calls: CallCounters<SoleCounter>,
    pub(crate) round_trip: Histogram<SoleCounter>,
}

/// A thread's server-side counters of one method.
#[derive(Debug, Default)]
pub(crate) struct ServerShard {
    pub(crate) calls: CallCounters<SoleCounter>,
    pub(crate) handling: Histogram<SoleCounter>,
    pub(crate) queueing: Histogram<SoleCounter>,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            client: (0..=MAX_METHODS).map(|_| OnceLock::new()).collect(),
            server: (0..=MAX_METHODS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl Shard {
    /// This thread's client counters of `slot`; only the owning thread calls this.
    #[inline]
    pub(crate) fn client(&self, slot: MethodSlot) -> &ClientShard {
        // Slots are below `MAX_METHODS + 1` (registry.rs); `other` would do for anything else.
        let cell = self.client.get(slot.index()).unwrap_or(&self.client[0]);
        cell.get_or_init(Box::default)
    }

    /// This thread's server counters of `slot`; only the owning thread calls this.
    #[inline]
    pub(crate) fn server(&self, slot: MethodSlot) -> &ServerShard {
        let cell = self.server.get(slot.index()).unwrap_or(&self.server[0]);
        cell.get_or_init(Box::default)
    }

    /// The client counters of `slot`, if this shard's thread ever recorded any (for readers).
    pub(crate) fn client_read(&self, slot: MethodSlot) -> Option<&ClientShard> {
        self.client.get(slot.index()).and_then(OnceLock::get).map(|shard| &**shard)
    }

    /// The server counters of `slot`, if this shard's thread ever recorded any (for readers).
    pub(crate) fn server_read(&self, slot: MethodSlot) -> Option<&ServerShard> {
        self.server.get(slot.index()).and_then(OnceLock::get).map(|shard| &**shard)
    }
}

/// The shards this thread owns, one per `Metrics` it recorded into.
struct Local {
    /// The entry used last, as (its `Metrics`' address, its shard): what nearly every call
    /// finds, with one comparison. A copy of one of `entries`, cleared before any is removed.
    last: Cell<(usize, *const Shard)>,
    entries: RefCell<Vec<Entry>>,
}

struct Entry {
    /// The address of the `Metrics`' state, kept from being reused by `owner`.
    key: usize,
    /// Upgraded at thread exit to give the shard back.
    owner: Weak<Inner>,
    shard: Arc<Shard>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            last: Cell::new((0, std::ptr::null())),
            entries: RefCell::new(Vec::new()),
        }
    };
}

impl Local {
    #[inline]
    fn shard(&self, inner: &Arc<Inner>) -> &Shard {
        let key = Arc::as_ptr(inner) as usize;
        let (last_key, last) = self.last.get();
        if last_key == key {
            // SAFETY: `last` was copied from an entry of `entries` whose `Arc` keeps the shard
            // alive; `last` is cleared before any entry is removed (`adopt`), and entries are
            // otherwise dropped only with `Local` itself, at thread exit, after which `LOCAL` is
            // no longer reachable. No `&Shard` outlives the `with_shard` call that got it, and
            // `with_shard` does not nest, so none is held while `adopt` removes an entry. The
            // key cannot name another `Metrics`: the entry's `Weak` keeps the address taken.
            #[allow(unsafe_code)]
            return unsafe { &*last };
        }
        self.find(inner, key)
    }

    /// The entry of `inner` when it is not the last used (a thread recording into two
    /// `Metrics` in turn), or a new one.
    #[inline(never)]
    fn find(&self, inner: &Arc<Inner>, key: usize) -> &Shard {
        let found = self
            .entries
            .borrow()
            .iter()
            .find(|entry| entry.key == key)
            .map(|entry| Arc::as_ptr(&entry.shard));
        let shard = found.unwrap_or_else(|| self.adopt(inner, key));
        self.last.set((key, shard));
        // SAFETY: as in `shard`: `shard` is held by an entry of `entries`.
        #[allow(unsafe_code)]
        unsafe {
            &*shard
        }
    }

    /// The thread's first call into this `Metrics`: adopts a shard. Forgets the shards of
    /// `Metrics` that are gone.
    #[cold]
    fn adopt(&self, inner: &Arc<Inner>, key: usize) -> *const Shard {
        let shard = inner.shards.adopt(Shard::default);
        let pointer = Arc::as_ptr(&shard);
        let mut entries = self.entries.borrow_mut();
        self.last.set((0, std::ptr::null()));
        entries.retain(|entry| entry.owner.strong_count() > 0);
        entries.push(Entry {
            key,
            owner: Arc::downgrade(inner),
            shard,
        });
        pointer
    }
}

impl Drop for Local {
    /// The thread exits: its shards go back to their pools for the next thread.
    fn drop(&mut self) {
        for entry in self.entries.get_mut().drain(..) {
            if let Some(owner) = entry.owner.upgrade() {
                owner.shards.release(entry.shard);
            }
        }
    }
}

/// Runs `record` with this thread's shard of `inner`. Returns `false`, without running it, when
/// the thread's storage is already torn down (the thread is exiting): record into the shared
/// atomics then.
#[inline]
pub(super) fn with_shard(inner: &Arc<Inner>, record: impl FnOnce(&Shard)) -> bool {
    LOCAL.try_with(|local| record(local.shard(inner))).is_ok()
}
