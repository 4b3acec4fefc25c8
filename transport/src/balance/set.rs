//! The endpoint set: the replicas a balanced channel picks from, replaced as a whole when the
//! resolver's answer changes. An endpoint whose address stays keeps its connection and load.

use std::collections::HashMap;

use crate::net::Address;
use crate::sync::{Arc, Mutex, lock};

use super::endpoint::Endpoint;

/// The current endpoints. A call clones the `Arc` of the list under a short lock; an update
/// swaps in a new list. A fixed list (no resolver to ask again) is read with neither: its calls
/// borrow it.
#[derive(Debug, Default)]
pub(crate) struct EndpointSet {
    current: Mutex<Arc<[Arc<Endpoint>]>>,
    /// The list, when it never changes.
    fixed: Option<Arc<[Arc<Endpoint>]>>,
}

/// The endpoints a call picks from: borrowed from a fixed set, or a counted reference to the
/// list current when the call started.
#[derive(Debug)]
pub(crate) enum Endpoints<'a> {
    Fixed(&'a [Arc<Endpoint>]),
    Changing(Arc<[Arc<Endpoint>]>),
}

impl std::ops::Deref for Endpoints<'_> {
    type Target = [Arc<Endpoint>];

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Fixed(endpoints) => endpoints,
            Self::Changing(endpoints) => endpoints,
        }
    }
}

/// What an update changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    pub(crate) added: usize,
    pub(crate) removed: usize,
}

impl EndpointSet {
    pub(crate) fn new(addresses: &[Address]) -> Self {
        let set = Self::default();
        set.update(addresses);
        set
    }

    /// A set that never changes after `addresses` (no lock and no reference count per call).
    pub(crate) fn fixed(addresses: &[Address]) -> Self {
        let mut set = Self::new(addresses);
        set.fixed = Some(lock(&set.current).clone());
        set
    }

    pub(crate) fn current(&self) -> Endpoints<'_> {
        match &self.fixed {
            Some(endpoints) => Endpoints::Fixed(endpoints),
            None => Endpoints::Changing(lock(&self.current).clone()),
        }
    }

    /// Makes `addresses` the set: new ones join idle, missing ones are removed (their calls
    /// finish), kept ones keep their state. Duplicates count once.
    pub(crate) fn update(&self, addresses: &[Address]) -> Changes {
        debug_assert!(self.fixed.is_none(), "a fixed set is never updated");
        let mut current = lock(&self.current);
        let mut old: HashMap<&Address, &Arc<Endpoint>> = current.iter().map(|e| (&e.address, e)).collect();
        let mut next: Vec<Arc<Endpoint>> = Vec::with_capacity(addresses.len());
        let mut changes = Changes::default();
        for address in addresses {
            if next.iter().any(|e| &e.address == address) {
                continue;
            }
            match old.remove(address) {
                Some(kept) => next.push(kept.clone()),
                None => {
                    changes.added += 1;
                    next.push(Arc::new(Endpoint::new(address.clone())));
                }
            }
        }
        for gone in old.values() {
            gone.remove();
        }
        changes.removed = old.len();
        drop(old);
        *current = next.into();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(ports: &[u16]) -> Vec<Address> {
        ports.iter().map(|p| format!("127.0.0.1:{p}").parse().unwrap()).collect()
    }

    #[test]
    fn an_update_keeps_known_endpoints_and_removes_missing_ones() {
        let set = EndpointSet::new(&addresses(&[1, 2, 2]));
        assert_eq!(set.current().len(), 2, "duplicates count once");
        let kept = set.current()[1].clone();
        let gone = set.current()[0].clone();
        let changes = set.update(&addresses(&[2, 3]));
        assert_eq!(changes, Changes { added: 1, removed: 1 });
        assert!(Arc::ptr_eq(&set.current()[0], &kept), "a kept address keeps its endpoint");
        assert!(gone.is_removed() && !gone.is_pickable());
    }

    #[test]
    fn a_fixed_set_lends_its_endpoints() {
        let set = EndpointSet::fixed(&addresses(&[1, 2]));
        assert!(matches!(set.current(), Endpoints::Fixed(e) if e.len() == 2));
        assert!(matches!(EndpointSet::new(&addresses(&[1])).current(), Endpoints::Changing(_)));
    }
}
