//! Admission: whether a server takes a newly accepted connection, per peer and overall, so that
//! one peer cannot take every connection slot (issue #15, docs/PROTOCOL.md section 9).
//!
//! The decision is pure ([`decide`]): the registry in `serve.rs` describes its live connections
//! and carries the decision out.

use std::net::IpAddr;

pub use crate::stats::{AdmissionStats, Refusal};

/// Connections one remote (non-loopback) address may hold at once (256).
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;

/// Connections one remote address may have in their handshake at once (32).
pub const DEFAULT_MAX_HANDSHAKES_PER_PEER: usize = 32;

/// Per-address limits; `None` is no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Connections one address may hold.
    pub connections: Option<usize>,
    /// Connections of one address that may be in their handshake at once.
    pub handshakes: Option<usize>,
}

/// The per-peer limits of a server: one set for remote addresses, one for loopback addresses
/// (127.0.0.0/8, ::1), where tests, sidecars and benchmarks open many connections from one
/// address. Connections over Unix sockets have no address and only the server's
/// `max_connections` applies to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Limits for remote addresses (default: 256 connections, 32 in their handshake).
    pub remote: PeerLimits,
    /// Limits for loopback addresses (default: none).
    pub loopback: PeerLimits,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            remote: PeerLimits {
                connections: Some(DEFAULT_MAX_CONNECTIONS_PER_PEER),
                handshakes: Some(DEFAULT_MAX_HANDSHAKES_PER_PEER),
            },
            loopback: PeerLimits {
                connections: None,
                handshakes: None,
            },
        }
    }
}

impl AdmissionConfig {
    /// Whether [`decide`] reads the connections of `peer` below the server's cap: only when the
    /// peer has a per-address limit. Describing a connection takes its lock, so a server below
    /// its cap accepting from an unlimited address (loopback by default) looks at none.
    pub(crate) fn limits_peer(&self, peer: Option<IpAddr>) -> bool {
        let limits = self.limits(peer);
        limits.connections.is_some() || limits.handshakes.is_some()
    }

    fn limits(&self, peer: Option<IpAddr>) -> PeerLimits {
        match peer {
            Some(ip) if ip.is_loopback() => self.loopback,
            Some(_) => self.remote,
            None => PeerLimits {
                connections: None,
                handshakes: None,
            },
        }
    }
}

/// What admission needs to know of one live connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveConnection {
    /// The registry's id: ids grow, so a lower id is an older connection.
    pub(crate) id: u64,
    pub(crate) peer: Option<IpAddr>,
    /// Still in its handshake.
    pub(crate) handshaking: bool,
    /// Established, with no call open.
    pub(crate) idle: bool,
    /// Already closing gracefully (a GoAway went out): it leaves soon and counts no more.
    pub(crate) draining: bool,
}

/// What to do with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Admit,
    /// Admit it, and close connection `id` gracefully to make room: the oldest idle connection
    /// of the address holding the most.
    AdmitEvicting(u64),
    Refuse(Refusal),
}

/// Decides on a connection from `peer`, with `total` connections live. `live` describes every
/// live connection when `total` is at `max_connections`, and otherwise at least those of `peer`
/// when [`AdmissionConfig::limits_peer`] says it has a limit (describing one takes its lock, so
/// the common case looks at one peer's only, or at none).
pub(crate) fn decide(
    config: &AdmissionConfig,
    max_connections: usize,
    peer: Option<IpAddr>,
    total: usize,
    live: &[LiveConnection],
) -> Decision {
    let counted = || live.iter().filter(|c| !c.draining);
    let limits = config.limits(peer);
    if peer.is_some() {
        let same_peer = || counted().filter(|c| c.peer == peer);
        if limits.connections.is_some_and(|max| same_peer().count() >= max) {
            return Decision::Refuse(Refusal::PeerConnections);
        }
        if limits
            .handshakes
            .is_some_and(|max| same_peer().filter(|c| c.handshaking).count() >= max)
        {
            return Decision::Refuse(Refusal::PeerHandshakes);
        }
    }
    if total < max_connections || counted().count() < max_connections {
        return Decision::Admit;
    }
    // Full: make room at the expense of the address holding the most, if it has an idle one.
    let mut per_peer: std::collections::HashMap<Option<IpAddr>, usize> = std::collections::HashMap::new();
    for connection in counted() {
        *per_peer.entry(connection.peer).or_default() += 1;
    }
    let heaviest = per_peer.into_iter().max_by_key(|(_, count)| *count).map(|(peer, _)| peer);
    let victim = counted().filter(|c| Some(c.peer) == heaviest && c.idle).min_by_key(|c| c.id);
    match victim {
        Some(victim) => Decision::AdmitEvicting(victim.id),
        None => Decision::Refuse(Refusal::ServerFull),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    fn idle(id: u64, peer: Option<IpAddr>) -> LiveConnection {
        LiveConnection {
            id,
            peer,
            handshaking: false,
            idle: true,
            draining: false,
        }
    }

    #[test]
    fn a_peer_at_its_limit_is_refused_and_others_are_admitted() {
        let config = AdmissionConfig::default();
        let live: Vec<_> = (0..256).map(|id| idle(id, ip(1))).collect();
        assert_eq!(
            decide(&config, 10_000, ip(1), live.len(), &live),
            Decision::Refuse(Refusal::PeerConnections)
        );
        assert_eq!(decide(&config, 10_000, ip(2), live.len(), &live), Decision::Admit);
    }

    #[test]
    fn handshakes_are_limited_per_peer() {
        let config = AdmissionConfig::default();
        let live: Vec<_> = (0..32)
            .map(|id| LiveConnection {
                handshaking: true,
                idle: false,
                ..idle(id, ip(1))
            })
            .collect();
        assert_eq!(
            decide(&config, 10_000, ip(1), live.len(), &live),
            Decision::Refuse(Refusal::PeerHandshakes)
        );
    }

    #[test]
    fn loopback_has_no_per_peer_limit_by_default() {
        let config = AdmissionConfig::default();
        let loopback = Some(IpAddr::from([127, 0, 0, 1]));
        assert!(
            !config.limits_peer(loopback),
            "no loopback connection needs describing below the cap"
        );
        assert!(config.limits_peer(ip(1)));
        assert!(!config.limits_peer(None), "Unix sockets have no address and no per-address limit");
        assert_eq!(decide(&config, 10_000, loopback, 1_000, &[]), Decision::Admit);
        let live: Vec<_> = (0..1_000).map(|id| idle(id, loopback)).collect();
        assert_eq!(decide(&config, 10_000, loopback, live.len(), &live), Decision::Admit);
    }

    #[test]
    fn a_full_server_evicts_the_oldest_idle_connection_of_the_heaviest_peer() {
        let config = AdmissionConfig::default();
        let mut live = vec![idle(0, ip(2)), idle(1, ip(1)), idle(2, ip(1)), idle(3, ip(1))];
        live[1].idle = false; // the heaviest peer's oldest connection has a call open
        assert_eq!(decide(&config, 4, ip(3), live.len(), &live), Decision::AdmitEvicting(2));
        // Draining connections no longer count.
        live[2].draining = true;
        assert_eq!(decide(&config, 4, ip(3), live.len(), &live), Decision::Admit);
    }

    #[test]
    fn a_full_server_with_no_idle_connection_refuses() {
        let config = AdmissionConfig::default();
        let busy: Vec<_> = (0..4)
            .map(|id| LiveConnection {
                idle: false,
                ..idle(id, ip(1))
            })
            .collect();
        assert_eq!(decide(&config, 4, ip(3), busy.len(), &busy), Decision::Refuse(Refusal::ServerFull));
    }
}
