//! The table of calls open on one connection, with the direction each side may still send in.

use std::collections::HashMap;

use crate::wire::CallId;

/// Protocol state of one open call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallState {
    /// We may still send frames on the call.
    pub(crate) local_open: bool,
    /// The peer may still send frames on the call.
    pub(crate) remote_open: bool,
    /// (client) The response head has arrived.
    pub(crate) head_received: bool,
}

/// Open calls by id. Sized once for the concurrency limit, so opening and closing calls in the
/// steady state never allocates.
#[derive(Debug)]
pub(crate) struct CallTable {
    calls: HashMap<CallId, CallState>,
}

impl CallTable {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            calls: HashMap::with_capacity(capacity),
        }
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
        self.calls.remove(&id)
    }

    /// Removes the call once neither side may send on it; returns whether it is gone.
    pub(crate) fn retire_if_done(&mut self, id: CallId) -> bool {
        match self.calls.get(&id) {
            Some(state) if !state.local_open && !state.remote_open => {
                self.calls.remove(&id);
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
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = CallId> + '_ {
        self.calls.keys().copied()
    }

    pub(crate) fn clear(&mut self) {
        self.calls.clear();
    }
}
