//! Per-method slots, registered up front and found on the hot path without a lock or an
//! allocation: a fixed open-addressing table of atomic keys in front of lazily boxed slots.
//!
//! Servers register every route when they are built; clients register the methods they call
//! with [`super::Metrics::register_client_method`]. Calls to a method nobody registered count
//! in the one `other` slot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::histogram::Histogram;
use super::shards::Count;
use crate::status::Code;
use crate::sync::lock;
use crate::wire::MethodId;

/// Methods one [`super::Metrics`] can track apart (511); calls to any more count under `other`.
/// Far above any real service set, while the empty table stays at 24 KiB.
pub const MAX_METHODS: usize = 511;

/// Key cells: a power of two at least twice the slots, so probe sequences stay short.
const KEY_CELLS: usize = 1024;

/// Label value of the slot of unregistered methods. Real names start with `/`, so it cannot
/// clash with one.
pub(crate) const OTHER: &str = "other";

/// A key cell holding a method: this bit, the slot number in bits 32..48 and the id below.
const PRESENT: u64 = 1 << 63;

/// Which end of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Where a method's metrics live; `MethodSlot::OTHER` (the default) is the slot of
/// unregistered methods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct MethodSlot(u16);

impl MethodSlot {
    pub(crate) const OTHER: Self = Self(0);

    /// Its index, below `MAX_METHODS + 1`.
    #[inline]
    pub(crate) fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Call counters of one side of one method: calls started, and finished by status code.
#[derive(Debug, Default)]
pub(crate) struct CallCounters<C = AtomicU64> {
    pub(crate) started: C,
    pub(crate) finished: [C; 17],
}

impl<C: Count> CallCounters<C> {
    #[inline]
    pub(crate) fn start(&self) {
        self.started.add(1);
    }

    #[inline]
    pub(crate) fn finish(&self, code: Code) {
        self.finished[code.as_u8() as usize].add(1);
    }
}

/// One side of one method in the shared table: whether it was registered, and the calls
/// recorded where a thread had no shard (while it exits); the rest are in the threads' shards
/// (`local.rs`).
#[derive(Debug, Default)]
pub(crate) struct SideCalls {
    /// Whether this side was registered, so its series are exposed.
    pub(crate) registered: AtomicBool,
    pub(crate) calls: CallCounters,
}

/// Everything recorded about one method.
#[derive(Debug)]
pub(crate) struct MethodMetrics {
    pub(crate) name: String,
    pub(crate) server: SideCalls,
    pub(crate) client: SideCalls,
    /// Server: from reading the request frame to queueing the call's final frame; for an answer
    /// given while the reader dispatches its read's calls, to the end of that dispatch
    /// (`pass.rs`).
    pub(crate) handling: Histogram,
    /// Server: from the client's send timestamp to reading the request frame.
    pub(crate) queueing: Histogram,
    /// Client: from starting the call to its outcome.
    pub(crate) round_trip: Histogram,
}

impl MethodMetrics {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            server: SideCalls::default(),
            client: SideCalls::default(),
            handling: Histogram::default(),
            queueing: Histogram::default(),
            round_trip: Histogram::default(),
        }
    }

    pub(crate) fn side(&self, side: Side) -> &SideCalls {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }
}

/// The method slots of one [`super::Metrics`].
pub(crate) struct MethodTable {
    /// `0` when empty, else `PRESENT | slot << 32 | id`. Written once each, under `used`.
    keys: Box<[AtomicU64]>,
    /// Slot 0 is never set: it reads as `other`.
    slots: Box<[OnceLock<Box<MethodMetrics>>]>,
    other: Box<MethodMetrics>,
    /// Slots handed out so far; held while registering.
    used: Mutex<usize>,
}

impl std::fmt::Debug for MethodTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter().map(|m| &m.name)).finish()
    }
}

impl Default for MethodTable {
    fn default() -> Self {
        let other = MethodMetrics::new(OTHER);
        other.server.registered.store(true, Ordering::Relaxed);
        other.client.registered.store(true, Ordering::Relaxed);
        Self {
            keys: (0..KEY_CELLS).map(|_| AtomicU64::new(0)).collect(),
            slots: (0..=MAX_METHODS).map(|_| OnceLock::new()).collect(),
            other: Box::new(other),
            used: Mutex::new(0),
        }
    }
}

impl MethodTable {
    /// The slot of `id`, or `other`. Lock-free: a few atomic loads.
    #[inline]
    pub(crate) fn find(&self, id: MethodId) -> MethodSlot {
        let mut cell = home_cell(id);
        loop {
            let key = self.keys[cell].load(Ordering::Acquire);
            if key == 0 {
                return MethodSlot::OTHER;
            }
            if key as u32 == id.0 {
                return MethodSlot((key >> 32) as u16);
            }
            // The table is never full (MAX_METHODS < KEY_CELLS), so an empty cell ends the probe.
            cell = (cell + 1) % KEY_CELLS;
        }
    }

    /// The metrics in `slot`.
    #[inline]
    pub(crate) fn get(&self, slot: MethodSlot) -> &MethodMetrics {
        self.slots
            .get(slot.0 as usize)
            .and_then(OnceLock::get)
            .map_or(&self.other, |metrics| metrics)
    }

    /// Registers the method `name` for `side` (again is fine) and returns its slot.
    pub(crate) fn register(&self, name: &str, side: Side) -> MethodSlot {
        let id = MethodId::from_name(name);
        let mut used = lock(&self.used);
        let mut slot = self.find(id);
        if slot == MethodSlot::OTHER {
            if *used == MAX_METHODS {
                tracing::warn!(
                    method = name,
                    max = MAX_METHODS,
                    "metrics: too many methods; this one counts under `other`"
                );
                return MethodSlot::OTHER;
            }
            *used += 1;
            slot = MethodSlot(*used as u16);
            // Set before the key is published (Release), so a reader that finds the key finds
            // the slot filled.
            let _ = self.slots[*used].set(Box::new(MethodMetrics::new(name)));
            let mut cell = home_cell(id);
            while self.keys[cell].load(Ordering::Relaxed) != 0 {
                cell = (cell + 1) % KEY_CELLS;
            }
            let key = PRESENT | (u64::from(slot.0) << 32) | u64::from(id.0);
            self.keys[cell].store(key, Ordering::Release);
        }
        let metrics = self.get(slot);
        if metrics.name != name {
            tracing::warn!(
                method = name,
                first = metrics.name,
                "metrics: two method names share one method id; both count under the first name"
            );
        }
        metrics.side(side).registered.store(true, Ordering::Relaxed);
        slot
    }

    /// Every slot in use, `other` first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &MethodMetrics> {
        self.iter_slots().map(|(_, metrics)| metrics)
    }

    /// Every slot in use with its number, `other` first.
    pub(crate) fn iter_slots(&self) -> impl Iterator<Item = (MethodSlot, &MethodMetrics)> {
        std::iter::once((MethodSlot::OTHER, &*self.other)).chain(
            self.slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| slot.get().map(|m| (MethodSlot(i as u16), &**m))),
        )
    }
}

/// Where the probe for `id` starts. Ids are FNV hashes already; the multiply spreads their
/// high bits over the cell index.
#[inline]
fn home_cell(id: MethodId) -> usize {
    (id.0.wrapping_mul(0x9E37_79B1) >> (32 - KEY_CELLS.trailing_zeros())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unregistered_methods_find_the_other_slot() {
        let table = MethodTable::default();
        assert_eq!(table.find(MethodId::from_name("/a.B/C")), MethodSlot::OTHER);
        assert_eq!(table.get(MethodSlot::OTHER).name, OTHER);
    }

    #[test]
    fn registered_methods_are_found_by_id_and_keep_their_slot() {
        let table = MethodTable::default();
        let names: Vec<String> = (0..300).map(|i| format!("/pkg.Svc/M{i}")).collect();
        let slots: Vec<MethodSlot> = names.iter().map(|n| table.register(n, Side::Server)).collect();
        for (name, slot) in names.iter().zip(&slots) {
            assert_eq!(table.find(MethodId::from_name(name)), *slot);
            assert_eq!(&table.get(*slot).name, name);
        }
        assert_eq!(
            table.register(&names[7], Side::Client),
            slots[7],
            "registering again keeps the slot"
        );
        let metrics = table.get(slots[7]);
        assert!(metrics.server.registered.load(Ordering::Relaxed) && metrics.client.registered.load(Ordering::Relaxed));
        assert_eq!(table.iter().count(), 301);
    }

    #[test]
    fn methods_past_the_limit_count_under_other() {
        let table = MethodTable::default();
        for i in 0..MAX_METHODS {
            assert_ne!(table.register(&format!("/m/{i}"), Side::Client), MethodSlot::OTHER);
        }
        assert_eq!(table.register("/m/one-too-many", Side::Client), MethodSlot::OTHER);
        assert_eq!(table.find(MethodId::from_name("/m/one-too-many")), MethodSlot::OTHER);
        assert_eq!(table.find(MethodId::from_name("/m/3")), MethodSlot(4));
    }
}
