//! The table of calls open on one connection, with the direction each side may still send in.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::wire::CallId;

/// Hashes call ids for the per-connection tables: a seeded splitmix64 finaliser, a few
/// nanoseconds where SipHash costs tens, measured at about 7 % of a pipelined call's CPU time
/// (perf, `cargo bench --bench roundtrip`). The seed is random per table, so a peer choosing its
/// call ids cannot aim them at one bucket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallIdHasher {
    seed: u64,
}

impl CallIdHasher {
    pub(crate) fn new() -> Self {
        Self {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x766f_6c6c_6579_u64),
        }
    }
}

impl BuildHasher for CallIdHasher {
    type Hasher = CallIdHash;
    fn build_hasher(&self) -> CallIdHash {
        CallIdHash { state: self.seed }
    }
}

/// The hasher [`CallIdHasher`] builds.
#[derive(Debug)]
pub(crate) struct CallIdHash {
    state: u64,
}

impl Hasher for CallIdHash {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mut z = (self.state ^ value).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.state = z ^ (z >> 31);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// A map keyed by call id with [`CallIdHasher`].
pub(crate) type CallMap<V> = HashMap<CallId, V, CallIdHasher>;

/// An empty [`CallMap`] with room for `capacity` calls.
pub(crate) fn call_map<V>(capacity: usize) -> CallMap<V> {
    HashMap::with_capacity_and_hasher(capacity, CallIdHasher::new())
}

/// Capacity past which an emptied call table gives its memory back (256 calls): a table grows
/// to a connection's peak concurrency, and a peak of thousands of open calls would otherwise stay
/// with the connection for its life. A table at or under it keeps its memory, so a connection
/// whose calls come and go in the steady state never allocates for them.
pub(crate) const SHRINK_ABOVE: usize = 256;

/// Gives an emptied table's memory back after a peak (see [`SHRINK_ABOVE`]).
pub(crate) fn shrink_after_peak<V>(map: &mut CallMap<V>) {
    if map.is_empty() && map.capacity() > SHRINK_ABOVE {
        map.shrink_to(0);
    }
}

/// Protocol state of one open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallState {
    /// We may still send frames on the call.
    pub(crate) local_open: bool,
    /// The peer may still send frames on the call.
    pub(crate) remote_open: bool,
    /// (client) The response head has arrived. (server) Always set: the Request was the head.
    pub(crate) head_received: bool,
    /// (server) The response head has been sent (a Response frame, before stream messages).
    pub(crate) head_sent: bool,
    /// Bytes of stream messages we may still send (may go negative by one message).
    pub(crate) send_window: i64,
    /// Bytes of stream messages the peer may still send us.
    pub(crate) recv_window: i64,
    /// Bytes the application consumed that we have not yet credited back.
    pub(crate) unacked: u64,
}

/// Open calls by id. Sized once for the concurrency limit, so opening and closing calls in the
/// steady state never allocates.
#[derive(Debug)]
pub(crate) struct CallTable {
    calls: CallMap<CallState>,
}

impl CallTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { calls: call_map(capacity) }
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }

    pub(crate) fn insert(&mut self, id: CallId, state: CallState) {
        self.calls.insert(id, state);
    }

    pub(crate) fn get_mut(&mut self, id: CallId) -> Option<&mut CallState> {
        self.calls.get_mut(&id)
    }

    pub(crate) fn remove(&mut self, id: CallId) -> Option<CallState> {
        let state = self.calls.remove(&id);
        shrink_after_peak(&mut self.calls);
        state
    }

    /// Removes the call once neither side may send on it; returns whether it is gone.
    pub(crate) fn retire_if_done(&mut self, id: CallId) -> bool {
        match self.calls.get(&id) {
            Some(state) if !state.local_open && !state.remote_open => {
                self.remove(id);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Removes and returns every call id above `last`, for a GoAway.
    pub(crate) fn drain_above(&mut self, last: CallId, out: &mut Vec<CallId>) {
        out.extend(self.calls.keys().copied().filter(|id| *id > last));
        for id in out.iter() {
            self.calls.remove(id);
        }
        shrink_after_peak(&mut self.calls);
    }

    pub(crate) fn states_mut(&mut self) -> impl Iterator<Item = &mut CallState> + '_ {
        self.calls.values_mut()
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = CallId> + '_ {
        self.calls.keys().copied()
    }

    pub(crate) fn clear(&mut self) {
        self.calls.clear();
        shrink_after_peak(&mut self.calls);
    }

    /// Calls the table has room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.calls.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> CallState {
        CallState {
            local_open: true,
            remote_open: true,
            head_received: false,
            head_sent: false,
            send_window: 0,
            recv_window: 0,
            unacked: 0,
        }
    }

    #[test]
    fn an_emptied_table_gives_back_its_memory_after_a_peak() {
        let mut table = CallTable::with_capacity(4);
        for id in 1..=4_000u64 {
            table.insert(CallId(id), open());
        }
        assert!(table.capacity() >= 4_000);
        for id in 1..=4_000u64 {
            table.remove(CallId(id));
        }
        assert!(table.capacity() <= SHRINK_ABOVE, "capacity {} after the peak", table.capacity());
    }

    #[test]
    fn a_small_table_keeps_its_memory_when_it_empties() {
        let mut table = CallTable::with_capacity(16);
        let capacity = table.capacity();
        table.insert(CallId(1), open());
        table.remove(CallId(1));
        assert_eq!(table.capacity(), capacity, "no reallocation in the steady state");
    }
}
