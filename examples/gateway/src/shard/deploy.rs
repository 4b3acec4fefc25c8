//! What a deployment must give each shard instance, derived from the configuration, so the
//! manifests in `deploy/kubernetes/` can be checked against the code (`tests/kubernetes.rs`).

use std::time::Duration;

use crate::config::Config;

/// The longest a graceful shutdown takes past the drain timeout (5 s): ending the
/// subscriptions, then the journal's last write and fsync, which on a network volume under
/// load can take seconds.
pub const SHUTDOWN_FLUSH_MARGIN: Duration = Duration::from_secs(5);

/// How long an orchestrator must wait between SIGTERM and SIGKILL so a shard drains its calls
/// (`drain_timeout`) and syncs its journal ([`SHUTDOWN_FLUSH_MARGIN`]): Kubernetes'
/// `terminationGracePeriodSeconds`, rounded up to whole seconds.
///
/// ```
/// use std::time::Duration;
/// use gateway::config::Config;
///
/// let config = Config { drain_timeout: Duration::from_millis(5_500), ..Config::default() };
/// assert_eq!(gateway::shard::termination_grace_period(&config), Duration::from_secs(11));
/// ```
pub fn termination_grace_period(config: &Config) -> Duration {
    let total = config.drain_timeout + SHUTDOWN_FLUSH_MARGIN;
    let whole = total.as_secs() + u64::from(total.subsec_nanos() > 0);
    Duration::from_secs(whole)
}
