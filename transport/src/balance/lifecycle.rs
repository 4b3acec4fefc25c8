//! An endpoint's lifecycle, sans IO: idle until first used, ready while its connection is healthy,
//! backing off after a failed connect or a lost connection, ejected (circuit open) after repeated
//! failures, and readmitted when a half-open probe connects. It takes `now` and never reads a clock.

use std::time::{Duration, Instant};

use crate::client::Backoff;

/// Consecutive failures (failed connects, lost connections) after which an endpoint is
/// ejected (5): a restart costs one or two, a dead replica reaches five within a second of
/// backoff.
pub const DEFAULT_EJECT_AFTER: u32 = 5;

/// How long a first ejection lasts (1 s); every further ejection in a row doubles it, up to
/// [`DEFAULT_MAX_EJECTION`].
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(1);

/// The longest ejection (30 s): a replica back from the dead is probed at least this often.
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(30);

/// When to eject an endpoint and for how long.
///
/// ```
/// use std::time::Duration;
/// use volley::balance::EjectionPolicy;
///
/// let policy = EjectionPolicy { eject_after: 3, base_ejection: Duration::from_millis(200), ..EjectionPolicy::default() };
/// assert_eq!(policy.ejection(1), Duration::from_millis(200));
/// assert_eq!(policy.ejection(2), Duration::from_millis(400));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EjectionPolicy {
    /// Consecutive failures that eject the endpoint ([`DEFAULT_EJECT_AFTER`]).
    pub eject_after: u32,
    /// First ejection's length ([`DEFAULT_BASE_EJECTION`]).
    pub base_ejection: Duration,
    /// Longest ejection ([`DEFAULT_MAX_EJECTION`]).
    pub max_ejection: Duration,
    /// Delays between reconnect attempts before the endpoint is ejected.
    pub backoff: Backoff,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        Self {
            eject_after: DEFAULT_EJECT_AFTER,
            base_ejection: DEFAULT_BASE_EJECTION,
            max_ejection: DEFAULT_MAX_EJECTION,
            backoff: Backoff::default(),
        }
    }
}

impl EjectionPolicy {
    /// The length of ejection number `ejections` in a row (1 for the first).
    pub fn ejection(&self, ejections: u32) -> Duration {
        let factor = 1u32 << ejections.saturating_sub(1).min(16);
        self.base_ejection.saturating_mul(factor).min(self.max_ejection)
    }
}

/// Where an endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Never connected (or its connection ended cleanly): the next call that picks it connects.
    Idle,
    /// Connected and not draining: takes calls.
    Ready,
    /// A connect failed or the connection was lost: no calls until a probe connects, from `until`.
    Backoff {
        /// When the next reconnect attempt may start.
        until: Instant,
    },
    /// Failed too often: no calls until a half-open probe after `until` connects.
    Ejected {
        /// When the half-open probe may start.
        until: Instant,
    },
}

impl Phase {
    /// Whether a call may pick the endpoint.
    pub fn is_pickable(self) -> bool {
        matches!(self, Self::Idle | Self::Ready)
    }

    /// When a probe may try to connect, if the endpoint waits for one.
    pub fn probe_at(self) -> Option<Instant> {
        match self {
            Self::Backoff { until } | Self::Ejected { until } => Some(until),
            Self::Idle | Self::Ready => None,
        }
    }
}

/// The lifecycle state machine of one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Lifecycle {
    phase: Phase,
    /// Failures since the last successful connect.
    failures: u32,
    /// Ejections since the endpoint was last ready for a while (reset by a successful connect).
    ejections_in_row: u32,
    /// Every ejection so far (a metric).
    ejections_total: u64,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            failures: 0,
            ejections_in_row: 0,
            ejections_total: 0,
        }
    }
}

impl Lifecycle {
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn ejections_total(&self) -> u64 {
        self.ejections_total
    }

    /// A connect succeeded: the endpoint is (re)admitted.
    pub(crate) fn handle_connected(&mut self) {
        self.phase = Phase::Ready;
        self.failures = 0;
        self.ejections_in_row = 0;
    }

    /// The connection drained (GoAway) or closed with no failure seen by calls: the next pick
    /// reconnects right away.
    pub(crate) fn handle_drained(&mut self) {
        if self.phase == Phase::Ready {
            self.phase = Phase::Idle;
        }
    }

    /// A connect failed, or the connection was lost under calls. `unit` is a random number in
    /// [0, 1) for the backoff's jitter.
    pub(crate) fn handle_failure(&mut self, now: Instant, policy: &EjectionPolicy, unit: f64) {
        if matches!(self.phase, Phase::Ejected { .. }) {
            // A half-open probe failed: a longer ejection.
            self.eject(now, policy);
            return;
        }
        self.failures += 1;
        if self.failures >= policy.eject_after.max(1) {
            self.eject(now, policy);
        } else {
            self.phase = Phase::Backoff {
                until: now + policy.backoff.delay(self.failures, unit),
            };
        }
    }

    fn eject(&mut self, now: Instant, policy: &EjectionPolicy) {
        self.ejections_in_row += 1;
        self.ejections_total += 1;
        self.failures = 0;
        self.phase = Phase::Ejected {
            until: now + policy.ejection(self.ejections_in_row),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> EjectionPolicy {
        EjectionPolicy {
            eject_after: 3,
            base_ejection: Duration::from_millis(100),
            max_ejection: Duration::from_millis(300),
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(40),
                multiplier: 2.0,
                jitter: 0.0,
            },
        }
    }

    #[test]
    fn failures_back_off_then_eject_and_a_connect_readmits() {
        let now = Instant::now();
        let mut life = Lifecycle::default();
        assert!(life.phase().is_pickable());
        life.handle_failure(now, &policy(), 0.5);
        assert_eq!(
            life.phase(),
            Phase::Backoff {
                until: now + Duration::from_millis(10)
            }
        );
        life.handle_failure(now, &policy(), 0.5);
        assert_eq!(
            life.phase(),
            Phase::Backoff {
                until: now + Duration::from_millis(20)
            }
        );
        life.handle_failure(now, &policy(), 0.5);
        assert_eq!(
            life.phase(),
            Phase::Ejected {
                until: now + Duration::from_millis(100)
            }
        );
        assert_eq!(life.ejections_total(), 1);
        life.handle_connected();
        assert_eq!(life.phase(), Phase::Ready);
    }

    #[test]
    fn a_failed_half_open_probe_doubles_the_ejection_up_to_the_cap() {
        let now = Instant::now();
        let mut life = Lifecycle::default();
        for _ in 0..3 {
            life.handle_failure(now, &policy(), 0.5);
        }
        life.handle_failure(now, &policy(), 0.5);
        assert_eq!(
            life.phase(),
            Phase::Ejected {
                until: now + Duration::from_millis(200)
            }
        );
        life.handle_failure(now, &policy(), 0.5);
        life.handle_failure(now, &policy(), 0.5);
        assert_eq!(
            life.phase(),
            Phase::Ejected {
                until: now + Duration::from_millis(300)
            }
        );
        assert_eq!(life.ejections_total(), 4);
    }

    #[test]
    fn a_drained_connection_makes_the_endpoint_idle_not_failed() {
        let mut life = Lifecycle::default();
        life.handle_connected();
        life.handle_drained();
        assert_eq!(life.phase(), Phase::Idle);
    }
}
