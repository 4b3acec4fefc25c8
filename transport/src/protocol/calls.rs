//! The one table of a connection's calls: for each call, in one slot, the protocol's state (which
//! directions are open, the windows) and the record a driver keeps beside it (a unary call's
//! outcome and waker, a stream's mailbox, a running handler).
//!
//! Slots live in a ring indexed by the low bits of the call id, and a slot is found by comparing
//! its full id (the high bits act as the slot's generation). Clients number calls 1, 2, 3, ...
//! (PROTOCOL.md 6.1) and calls end roughly in order, so with the ring at least twice the number of
//! slots in use, a new call finds its slot free and no lookup hashes anything. A call whose slot is
//! still held by a long-lived older call (a stream open for a million calls), or a peer that
//! spaces its ids to collide, goes to a small overflow map with a seeded hash; the ring doubles
//! at half occupancy and rehomes what it can.
//!
//! A slot is freed when both parts are done: the protocol has closed the call and the record is
//! idle ([`CallRecord::is_idle`]). So the driver's record outlives the protocol's state when it
//! must (an outcome not yet taken by its caller, a handler still running), and neither side keeps
//! a second table consistent by hand.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use crate::wire::CallId;

/// What a driver keeps per call beside the protocol's state, in the same slot of the call table
/// (the sans-IO core never looks inside it).
pub trait CallRecord: Default {
    /// Whether the record holds nothing any more: its slot may be freed once the protocol has
    /// closed the call too. An idle record must be as good as a new one: a freed slot is reused
    /// for a later call as it is, without writing a fresh record into it.
    fn is_idle(&self) -> bool;

    /// Offered each stream message the peer sent on the call, once the protocol has accepted it
    /// (call open, in sequence, within its window): a record that keeps the call's received
    /// messages itself (a driver's stream mailbox) takes it here, and no [`Event::Message`] is
    /// queued for it. A record may take messages only while no event queued before carries
    /// messages of its call (it would overtake them). The default declines.
    ///
    /// [`Event::Message`]: super::Event::Message
    #[inline]
    fn keep_message(&mut self, message: Bytes, end_stream: bool) -> Kept {
        let _ = end_stream;
        Kept::Declined(message)
    }
}

/// What a record did with a message offered to [`CallRecord::keep_message`].
#[derive(Debug)]
pub enum Kept {
    /// The record keeps the message.
    Kept {
        /// Someone waits for the call's messages and has not been told yet: the protocol queues
        /// one [`Event::Arrived`](super::Event::Arrived) for the call.
        wake: bool,
        /// Bytes of messages the record holds now, for the driver's statistics
        /// ([`ReadProgress::kept_peak`](super::ReadProgress::kept_peak)).
        held: usize,
    },
    /// The record does not keep the call's messages: the message goes out as an
    /// [`Event::Message`](super::Event::Message).
    Declined(Bytes),
}

/// A connection without driver records (the sans-IO core on its own, as in the protocol tests).
impl CallRecord for () {
    fn is_idle(&self) -> bool {
        true
    }
}

/// Hashes call ids for the call table's overflow map: a seeded splitmix64 finaliser, a few
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

/// Capacity past which an emptied call table gives its memory back (256 slots): a table grows
/// to a connection's peak concurrency, and a peak of thousands of open calls would otherwise stay
/// with the connection for its life. A table at or under it keeps its memory, so a connection
/// whose calls come and go in the steady state never allocates for them.
pub(crate) const SHRINK_ABOVE: usize = 256;

/// Slots a table's ring starts with, at its first call (none before: an idle connection, one of
/// a burst of a thousand that only handshake, allocates no table).
const FIRST_RING: usize = 8;

/// Marks a vacant slot: id 0 names the connection, never a call.
const VACANT: CallId = CallId::CONNECTION;

/// One call's slot.
#[derive(Debug)]
struct Slot<X> {
    id: CallId,
    /// The protocol's state, while the call is open.
    proto: Option<CallState>,
    /// The driver's record.
    record: X,
}

impl<X: CallRecord> Slot<X> {
    fn vacant() -> Self {
        Self {
            id: VACANT,
            proto: None,
            record: X::default(),
        }
    }

    fn is_done(&self) -> bool {
        self.proto.is_none() && self.record.is_idle()
    }
}

/// Where a call's slot is.
#[derive(Clone, Copy, Debug)]
enum Place {
    Ring(usize),
    Overflow,
}

/// Every call of a connection, open in the protocol or still recorded by the driver (see the
/// module docs). Grows once to a connection's concurrency, so opening and closing calls in the
/// steady state never allocates.
#[derive(Debug)]
pub(crate) struct CallTable<X> {
    /// A power of two long (or empty); slot `id & (len - 1)`.
    ring: Vec<Slot<X>>,
    /// Calls whose ring slot was taken when they started.
    overflow: HashMap<CallId, Slot<X>, CallIdHasher>,
    /// Slots in use, ring and overflow.
    occupied: usize,
    /// Calls open in the protocol.
    open: usize,
}

impl<X: CallRecord> Default for CallTable<X> {
    fn default() -> Self {
        Self::new()
    }
}

impl<X: CallRecord> CallTable<X> {
    /// An empty table; it allocates at its first call.
    pub(crate) fn new() -> Self {
        Self {
            ring: Vec::new(),
            overflow: HashMap::with_hasher(CallIdHasher::new()),
            occupied: 0,
            open: 0,
        }
    }

    #[inline]
    fn ring_index(&self, id: CallId) -> usize {
        // Truncation is the point: the low bits pick the slot, the full id is compared.
        (id.0 as usize) & (self.ring.len() - 1)
    }

    #[inline]
    fn locate(&self, id: CallId) -> Option<Place> {
        if !self.ring.is_empty() {
            let index = self.ring_index(id);
            if self.ring[index].id == id {
                return Some(Place::Ring(index));
            }
        }
        self.locate_in_overflow(id)
    }

    #[cold]
    #[inline(never)]
    fn locate_in_overflow(&self, id: CallId) -> Option<Place> {
        (!self.overflow.is_empty() && self.overflow.contains_key(&id)).then_some(Place::Overflow)
    }

    /// Inline, with the overflow map's lookup out of line: the ring's case is an index (its
    /// outlining came and went with unrelated changes, a call and a return per lookup).
    #[inline]
    fn slot(&mut self, id: CallId, place: Place) -> &mut Slot<X> {
        match place {
            Place::Ring(index) => &mut self.ring[index],
            Place::Overflow => self.overflow_slot(id),
        }
    }

    #[cold]
    #[inline(never)]
    fn overflow_slot(&mut self, id: CallId) -> &mut Slot<X> {
        self.overflow.get_mut(&id).expect("located in the overflow map")
    }

    /// The call's slot. Inline: every frame and every send looks a call up, and nearly always
    /// finds it in the ring at the first probe.
    #[inline]
    fn find(&mut self, id: CallId) -> Option<&mut Slot<X>> {
        let in_ring = (!self.ring.is_empty())
            .then(|| self.ring_index(id))
            .filter(|&index| self.ring[index].id == id);
        match in_ring {
            Some(index) => Some(&mut self.ring[index]),
            None => self.find_in_overflow(id),
        }
    }

    #[cold]
    #[inline(never)]
    fn find_in_overflow(&mut self, id: CallId) -> Option<&mut Slot<X>> {
        if self.overflow.is_empty() {
            return None;
        }
        self.overflow.get_mut(&id)
    }

    /// The call's slot, taken if it has none.
    fn find_or_take(&mut self, id: CallId) -> &mut Slot<X> {
        if let Some(place) = self.locate(id) {
            return self.slot(id, place);
        }
        debug_assert_ne!(id, VACANT, "call id 0 names the connection");
        if (self.occupied + 1) * 2 > self.ring.len() {
            self.grow();
        }
        self.occupied += 1;
        let index = self.ring_index(id);
        if self.ring[index].id == VACANT {
            let slot = &mut self.ring[index];
            slot.id = id;
            return slot;
        }
        let mut slot = Slot::vacant();
        slot.id = id;
        self.overflow.entry(id).or_insert(slot)
    }

    /// Doubles the ring and rehomes every slot; overflow slots move in where their place is free.
    fn grow(&mut self) {
        let len = (self.ring.len() * 2).max(FIRST_RING);
        let old = std::mem::replace(&mut self.ring, (0..len).map(|_| Slot::vacant()).collect());
        for slot in old.into_iter().filter(|slot| slot.id != VACANT) {
            // Distinct low bits stay distinct with one more bit: no two old slots meet.
            let index = self.ring_index(slot.id);
            self.ring[index] = slot;
        }
        if !self.overflow.is_empty() {
            let overflow = std::mem::replace(&mut self.overflow, HashMap::with_hasher(CallIdHasher::new()));
            for (id, slot) in overflow {
                let index = self.ring_index(id);
                if self.ring[index].id == VACANT {
                    self.ring[index] = slot;
                } else {
                    self.overflow.insert(id, slot);
                }
            }
        }
    }

    /// Frees the call's slot if both the protocol and the record are done with it.
    fn free_if_done(&mut self, id: CallId) {
        let Some(place) = self.locate(id) else { return };
        if !self.slot(id, place).is_done() {
            return;
        }
        match place {
            // The slot's parts are already empty (no state, an idle record): only its id says
            // it is in use.
            Place::Ring(index) => self.ring[index].id = VACANT,
            Place::Overflow => {
                self.overflow.remove(&id);
            }
        }
        self.occupied -= 1;
        self.shrink_after_peak();
    }

    /// Gives an emptied table's memory back after a peak (see [`SHRINK_ABOVE`]).
    fn shrink_after_peak(&mut self) {
        if self.occupied == 0 && self.ring.len() > SHRINK_ABOVE {
            self.ring = Vec::new();
        }
        if self.overflow.is_empty() && self.overflow.capacity() > SHRINK_ABOVE {
            self.overflow.shrink_to(0);
        }
    }

    fn slots_mut(&mut self) -> impl Iterator<Item = &mut Slot<X>> + '_ {
        self.ring
            .iter_mut()
            .filter(|slot| slot.id != VACANT)
            .chain(self.overflow.values_mut())
    }

    fn slots(&self) -> impl Iterator<Item = &Slot<X>> + '_ {
        self.ring.iter().filter(|slot| slot.id != VACANT).chain(self.overflow.values())
    }

    /// Frees every slot both sides are done with.
    fn free_all_done(&mut self) {
        let mut freed = 0;
        for slot in self.ring.iter_mut().filter(|slot| slot.id != VACANT && slot.is_done()) {
            slot.id = VACANT;
            freed += 1;
        }
        let before = self.overflow.len();
        self.overflow.retain(|_, slot| !slot.is_done());
        self.occupied -= freed + (before - self.overflow.len());
        self.shrink_after_peak();
    }

    // --- the protocol's side ---

    /// Calls open in the protocol.
    pub(crate) fn open_calls(&self) -> usize {
        self.open
    }

    /// Opens a call in the protocol.
    pub(crate) fn open(&mut self, id: CallId, state: CallState) {
        let slot = self.find_or_take(id);
        if slot.proto.replace(state).is_none() {
            self.open += 1;
        }
    }

    /// The protocol's state of an open call.
    #[inline]
    pub(crate) fn state_mut(&mut self, id: CallId) -> Option<&mut CallState> {
        self.find(id)?.proto.as_mut()
    }

    /// The protocol's state of an open call and the driver's record beside it, in one lookup.
    #[inline]
    pub(crate) fn open_call_mut(&mut self, id: CallId) -> Option<(&mut CallState, &mut X)> {
        let slot = self.find(id)?;
        Some((slot.proto.as_mut()?, &mut slot.record))
    }

    /// Closes a call in the protocol, returning its state if it was open; the slot goes once the
    /// driver's record is idle too.
    pub(crate) fn close(&mut self, id: CallId) -> Option<CallState> {
        let state = self.find(id)?.proto.take();
        if state.is_some() {
            self.open -= 1;
        }
        self.free_if_done(id);
        state
    }

    /// Closes the call once neither side may send on it; returns whether it is closed.
    pub(crate) fn retire_if_done(&mut self, id: CallId) -> bool {
        match self.state_mut(id) {
            Some(state) if !state.local_open && !state.remote_open => {
                self.close(id);
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    /// Closes and returns every open call id above `last`, for a GoAway.
    pub(crate) fn drain_above(&mut self, last: CallId, out: &mut Vec<CallId>) {
        let from = out.len();
        out.extend(
            self.slots()
                .filter(|slot| slot.proto.is_some() && slot.id > last)
                .map(|slot| slot.id),
        );
        for &id in &out[from..] {
            self.close(id);
        }
    }

    /// The protocol's state of every open call.
    pub(crate) fn states_mut(&mut self) -> impl Iterator<Item = &mut CallState> + '_ {
        self.slots_mut().filter_map(|slot| slot.proto.as_mut())
    }

    /// Ids of the calls open in the protocol.
    pub(crate) fn ids(&self) -> impl Iterator<Item = CallId> + '_ {
        self.slots().filter(|slot| slot.proto.is_some()).map(|slot| slot.id)
    }

    /// Closes every call in the protocol (the connection failed); records stay until the driver
    /// is done with them.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots_mut() {
            slot.proto = None;
        }
        self.open = 0;
        self.free_all_done();
    }

    // --- the driver's side ---

    /// The driver's record of a call, if it has a slot.
    pub(crate) fn record_mut(&mut self, id: CallId) -> Option<&mut X> {
        Some(&mut self.find(id)?.record)
    }

    /// The driver's record of a call, taking a slot for it if it has none.
    pub(crate) fn record_or_insert(&mut self, id: CallId) -> &mut X {
        &mut self.find_or_take(id).record
    }

    /// Frees the call's slot if the record is idle and the protocol has closed the call.
    pub(crate) fn release_record(&mut self, id: CallId) {
        self.free_if_done(id);
    }

    /// Every record, for what concerns all calls (connection credit, a connection's end); call
    /// [`CallTable::release_idle_records`] after emptying them.
    pub(crate) fn records_mut(&mut self) -> impl Iterator<Item = &mut X> + '_ {
        self.slots_mut().map(|slot| &mut slot.record)
    }

    /// Frees every slot whose record is idle and whose call the protocol has closed.
    pub(crate) fn release_idle_records(&mut self) {
        self.free_all_done();
    }

    /// Slots in use (open calls and records the driver still keeps).
    #[cfg(any(test, loom))]
    pub(crate) fn occupied(&self) -> usize {
        self.occupied
    }

    /// Slots the table has room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(all(test, not(loom)))]
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

    /// A record that is busy while it holds a value.
    #[derive(Debug, Default)]
    struct Busy(Option<u32>);

    impl CallRecord for Busy {
        fn is_idle(&self) -> bool {
            self.0.is_none()
        }
    }

    #[test]
    fn an_emptied_table_gives_back_its_memory_after_a_peak() {
        let mut table = CallTable::<()>::new();
        for id in 1..=4_000u64 {
            table.open(CallId(id), open());
        }
        assert!(table.capacity() >= 4_000);
        for id in 1..=4_000u64 {
            table.close(CallId(id));
        }
        assert_eq!(table.occupied(), 0);
        assert!(table.capacity() <= SHRINK_ABOVE, "capacity {} after the peak", table.capacity());
    }

    #[test]
    fn a_small_table_keeps_its_memory_when_it_empties() {
        let mut table = CallTable::<()>::new();
        table.open(CallId(1), open());
        let capacity = table.capacity();
        table.close(CallId(1));
        table.open(CallId(2), open());
        table.close(CallId(2));
        assert_eq!(table.capacity(), capacity, "no reallocation in the steady state");
    }

    /// Sequential calls that end in order live in the ring: no overflow, no growth past twice
    /// the calls in flight.
    #[test]
    fn calls_in_flight_in_order_stay_in_the_ring() {
        let mut table = CallTable::<()>::new();
        for id in 1..=128u64 {
            table.open(CallId(id), open());
        }
        for id in 129..=100_000u64 {
            table.close(CallId(id - 128));
            table.open(CallId(id), open());
        }
        assert!(table.overflow.is_empty());
        assert_eq!(table.capacity(), 256);
        assert_eq!(table.open_calls(), 128);
    }

    /// A long-lived call holds its ring slot; later calls that land on it go to the overflow
    /// map, and every call stays reachable by id.
    #[test]
    fn a_call_whose_slot_is_taken_lives_in_the_overflow_map() {
        let mut table = CallTable::<()>::new();
        table.open(CallId(1), open());
        let ring = table.capacity() as u64;
        table.open(CallId(1 + ring), open());
        assert_eq!(table.overflow.len(), 1);
        assert!(table.state_mut(CallId(1)).is_some());
        assert!(table.state_mut(CallId(1 + ring)).is_some());
        table.close(CallId(1 + ring));
        assert!(table.state_mut(CallId(1 + ring)).is_none());
        assert!(table.state_mut(CallId(1)).is_some());
        assert_eq!(table.occupied(), 1);
    }

    /// A peer spacing its ids to collide cannot lose a call: every id is found after growth.
    #[test]
    fn colliding_ids_are_all_found_after_growth() {
        let mut table = CallTable::<()>::new();
        let ids: Vec<CallId> = (1..=1_000u64).map(|n| CallId(n << 20)).collect();
        for &id in &ids {
            table.open(id, open());
        }
        assert_eq!(table.open_calls(), ids.len());
        for &id in &ids {
            assert!(table.state_mut(id).is_some(), "{id:?} lost");
        }
        let mut drained = Vec::new();
        table.drain_above(CallId(500 << 20), &mut drained);
        assert_eq!(drained.len(), 500);
        assert_eq!(table.open_calls(), 500);
    }

    /// The slot stays while the record is busy after the protocol closed the call, and goes when
    /// the record is taken; and the other way round.
    #[test]
    fn a_slot_is_freed_only_when_both_sides_are_done() {
        let mut table = CallTable::<Busy>::new();
        table.open(CallId(1), open());
        table.record_or_insert(CallId(1)).0 = Some(7);
        table.close(CallId(1));
        assert_eq!(table.occupied(), 1, "the record keeps the slot");
        assert_eq!(table.open_calls(), 0, "but the call is closed in the protocol");
        assert_eq!(table.record_mut(CallId(1)).and_then(|r| r.0.take()), Some(7));
        table.release_record(CallId(1));
        assert_eq!(table.occupied(), 0);

        table.open(CallId(2), open());
        table.record_or_insert(CallId(2)).0 = Some(8);
        table.record_mut(CallId(2)).map(|r| r.0.take());
        table.release_record(CallId(2));
        assert_eq!(table.occupied(), 1, "the open call keeps the slot");
        table.close(CallId(2));
        assert_eq!(table.occupied(), 0);
    }

    #[test]
    fn clearing_keeps_busy_records_and_frees_the_rest() {
        let mut table = CallTable::<Busy>::new();
        for id in 1..=10u64 {
            table.open(CallId(id), open());
        }
        table.record_or_insert(CallId(3)).0 = Some(3);
        table.clear();
        assert_eq!(table.open_calls(), 0);
        assert_eq!(table.occupied(), 1);
        assert_eq!(table.record_mut(CallId(3)).and_then(|r| r.0), Some(3));
        for record in table.records_mut() {
            record.0 = None;
        }
        table.release_idle_records();
        assert_eq!(table.occupied(), 0);
    }
}
