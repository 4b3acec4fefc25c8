//! `volley-gateway demo --shards N`: N shard processes on loopback, each with its own journal,
//! the router, the load generator over every shard, a summary, then a graceful stop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::deploy::termination_grace_period;
use super::load::{ShardedLoadError, ShardedLoadReport, run_sharded};
use super::plan::{ShardError, ShardPlan};
use super::process::{ProcessError, ShardProcess};
use super::router::{RouteError, ShardRouter};
use crate::config::{Config, ConfigError};
use crate::load::LoadOptions;
use crate::proto::KillSwitchRequest;

/// Kill-switch engage/lift pairs the demo times through the router (10).
const KILL_SWITCH_SAMPLES: usize = 10;

/// A sharded demo that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The configuration cannot be sharded that way.
    #[error(transparent)]
    Plan(#[from] ShardError),
    /// The shards' configuration file could not be written.
    #[error("cannot write the shards' config to {path}: {reason}")]
    Config {
        /// Where.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A shard process failed to start or stop.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The router could not reach the shards.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The load could not run.
    #[error(transparent)]
    Load(#[from] ShardedLoadError),
}

/// The journal of `shard` beside `base`: `gateway.journal` becomes `gateway.journal.shard-1`.
pub(super) fn shard_journal(base: &Path, shard: u32) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".shard-{shard}"));
    PathBuf::from(name)
}

/// Runs `shards` instances of `program` (`volley-gateway`) with `config` (written to
/// `scratch/shards.toml`; each instance takes its own symbols and limit shares from it), journals
/// beside `config.journal`, loads them all with `options` through the shard map, prints what it
/// saw and stops them with SIGTERM. The report says whether every check passed.
pub async fn run_demo(
    program: &Path,
    config: &Config,
    shards: u32,
    options: LoadOptions,
    scratch: &Path,
) -> Result<ShardedLoadReport, DemoError> {
    let plan = ShardPlan::new(&config.symbols, shards)?;
    // Every instance on a port of its own: the listen and metrics ports are chosen by the system.
    let shared = Config {
        listen: "127.0.0.1:0".into(),
        metrics: config.metrics.as_ref().map(|_| "127.0.0.1:0".to_owned()),
        ..config.clone()
    };
    let path = scratch.join("shards.toml");
    let config_error = |reason: String| DemoError::Config {
        path: path.clone(),
        reason,
    };
    let text = shared.to_toml().map_err(|err: ConfigError| config_error(err.to_string()))?;
    std::fs::write(&path, text).map_err(|err| config_error(err.to_string()))?;

    let extra = vec!["--config".to_owned(), path.display().to_string()];
    let mut processes = Vec::with_capacity(shards as usize);
    for shard in plan.shard_ids() {
        let journal = shard_journal(&config.journal, shard.0);
        processes.push(ShardProcess::spawn(program, shard, shards, &journal, &extra)?);
    }
    let addresses: Vec<_> = processes.iter().map(|process| process.address().clone()).collect();
    for shard in plan.shard_ids() {
        println!(
            "{shard}: {} at {} (pid {})",
            plan.symbols_of(shard)?.join(", "),
            addresses[shard.0 as usize],
            processes[shard.0 as usize].id()
        );
    }

    // The router's one cross-shard command, timed: a kill switch engaged and lifted on every
    // shard, KILL_SWITCH_SAMPLES times (an account the load never uses).
    let router = ShardRouter::connect(plan.clone(), addresses.clone()).await?;
    let mut switches = Vec::with_capacity(2 * KILL_SWITCH_SAMPLES);
    for engaged in std::iter::repeat_n([true, false], KILL_SWITCH_SAMPLES).flatten() {
        let started = Instant::now();
        router
            .set_kill_switch(KillSwitchRequest {
                account: "demo-kill-switch-probe".into(),
                engaged,
            })
            .await?;
        switches.push(started.elapsed());
    }
    switches.sort();
    println!(
        "kill switch through the router on all {shards} shards ({} switches): p50 {:.1?}, max {:.1?}",
        switches.len(),
        switches[switches.len() / 2],
        switches[switches.len() - 1]
    );

    println!(
        "load: {} accounts × {} in flight ({:?}) on every shard, {} for {:.1?}",
        options.accounts,
        options.in_flight,
        options.mode,
        options
            .rate
            .map_or("flat out".to_owned(), |rate| format!("{rate} commands/s in all")),
        options.duration,
    );
    let report = run_sharded(&plan, &addresses, options).await?;
    println!("{}", report.summary());

    let grace = termination_grace_period(config);
    for process in processes {
        let shard = process.shard();
        let status = process.terminate(grace)?;
        println!("{shard} stopped ({status})");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_journal_sits_beside_the_configured_one() {
        assert_eq!(
            shard_journal(Path::new("/tmp/x/gateway.journal"), 2),
            PathBuf::from("/tmp/x/gateway.journal.shard-2")
        );
    }
}
