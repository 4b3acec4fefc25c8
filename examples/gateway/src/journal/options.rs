//! How a journal is opened: its path, its fsync policy and its bounds.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The default group-commit interval, 200 µs: about one `fdatasync` on a datacenter NVMe drive,
/// so under load commits follow each other as fast as the disk allows and each carries every
/// record that arrived during the one before, while a disk much faster than that is not asked
/// for more than 5,000 fsyncs a second. A lone record never waits for it (see
/// [`FsyncPolicy::Group`]): the interval is a minimum gap between batches under load only.
pub const DEFAULT_GROUP_COMMIT_INTERVAL: Duration = Duration::from_micros(200);

/// The default bound on bytes appended but not yet written, 64 MiB: about a hundred thousand
/// commands, far more than a healthy disk ever lags, small enough to bound memory when it stalls.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 64 << 20;

/// When the journal's writer calls `fdatasync`, which decides when a record counts as durable.
///
/// It parses from and displays as the strings the gateway's flags and config file use:
/// `every`, `group` (the [default interval](DEFAULT_GROUP_COMMIT_INTERVAL)), `group:<interval>`
/// with a unit of `ns`, `us`, `ms` or `s` (such as `group:200us`), and `none`.
///
/// ```
/// use std::time::Duration;
/// use gateway::journal::FsyncPolicy;
///
/// assert_eq!("group:1ms".parse::<FsyncPolicy>()?, FsyncPolicy::Group(Duration::from_millis(1)));
/// assert_eq!(FsyncPolicy::default().to_string(), "group:200us");
/// # Ok::<(), gateway::journal::ParseFsyncPolicyError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum FsyncPolicy {
    /// One write and one `fdatasync` per record: the honest and slow baseline.
    EveryRecord,
    /// Group commit as leader/follower: a record that finds no sync in flight and no other
    /// record pending is written and synced at once (the leader), so a lone order pays one
    /// fsync and no wait, as under [`EveryRecord`](Self::EveryRecord); records that arrive while
    /// a sync runs (the followers) share the next write and `fdatasync`. Under load (the last
    /// batch carried several records) batches start at least the interval apart, each carrying
    /// every record pending.
    Group(Duration),
    /// Write to the page cache and never `fdatasync` (except on [close](super::Journal::close)):
    /// a record counts as durable once written, and a power loss may lose it.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        Self::Group(DEFAULT_GROUP_COMMIT_INTERVAL)
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EveryRecord => f.write_str("every"),
            Self::Never => f.write_str("none"),
            Self::Group(interval) => {
                let nanos = interval.as_nanos();
                let (value, unit) = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")]
                    .into_iter()
                    .find(|&(scale, _)| nanos % scale == 0 && nanos != 0)
                    .map_or((nanos, "ns"), |(scale, unit)| (nanos / scale, unit));
                write!(f, "group:{value}{unit}")
            }
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseFsyncPolicyError { text: text.to_owned() };
        match text.trim() {
            "every" => Ok(Self::EveryRecord),
            "none" => Ok(Self::Never),
            "group" => Ok(Self::default()),
            other => {
                let interval = other.strip_prefix("group:").ok_or_else(error)?;
                parse_duration(interval).map(Self::Group).ok_or_else(error)
            }
        }
    }
}

impl From<FsyncPolicy> for String {
    fn from(policy: FsyncPolicy) -> Self {
        policy.to_string()
    }
}

impl TryFrom<String> for FsyncPolicy {
    type Error = ParseFsyncPolicyError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// Parses `<integer><unit>` with a unit of `ns`, `us` (or `µs`), `ms` or `s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (value, unit) = text.split_at(digits);
    let value: u64 = value.parse().ok()?;
    match unit {
        "ns" => Some(Duration::from_nanos(value)),
        "us" | "µs" => Some(Duration::from_micros(value)),
        "ms" => Some(Duration::from_millis(value)),
        "s" => Some(Duration::from_secs(value)),
        _ => None,
    }
}

/// A string that is not an [`FsyncPolicy`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a journal fsync policy; use `every`, `group`, `group:<interval>` (such as `group:200us`) or `none`")]
pub struct ParseFsyncPolicyError {
    text: String,
}

/// A callback given the duration of each `fdatasync`, such as a histogram's `observe`.
pub type FsyncObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// How to open a [`Journal`](super::Journal).
///
/// ```
/// use gateway::journal::{FsyncPolicy, JournalOptions};
///
/// let options = JournalOptions::new("/var/lib/gateway/journal").with_policy(FsyncPolicy::EveryRecord);
/// assert_eq!(options.policy, FsyncPolicy::EveryRecord);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct JournalOptions {
    /// The journal file. It is created if missing; its directory must exist.
    pub path: PathBuf,
    /// When records become durable. Defaults to group commit every
    /// [`DEFAULT_GROUP_COMMIT_INTERVAL`].
    pub policy: FsyncPolicy,
    /// The bound on bytes appended but not yet written; beyond it `append` fails with
    /// [`JournalError::Overloaded`](super::JournalError::Overloaded) until the disk catches up.
    /// A soft bound: one record may overshoot it. Defaults to [`DEFAULT_MAX_PENDING_BYTES`].
    pub max_pending_bytes: usize,
    /// Called on the writer thread with the duration of each `fdatasync`, to feed a latency
    /// histogram. Keep it cheap: it delays the records waiting for the next batch.
    pub fsync_observer: Option<FsyncObserver>,
    /// Keep the syncing thread's CPU busy during each `fdatasync` with a `SCHED_IDLE` spinner
    /// thread, so the CPU does not halt while the disk works (see
    /// [`with_spin_while_syncing`](Self::with_spin_while_syncing)). Off by default.
    pub spin_while_syncing: bool,
}

impl JournalOptions {
    /// Options for a journal at `path` with the default policy and bounds.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            policy: FsyncPolicy::default(),
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            fsync_observer: None,
            spin_while_syncing: false,
        }
    }

    /// Sets the [fsync policy](Self::policy).
    #[must_use]
    pub fn with_policy(mut self, policy: FsyncPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the [bound on pending bytes](Self::max_pending_bytes).
    #[must_use]
    pub fn with_max_pending_bytes(mut self, max_pending_bytes: usize) -> Self {
        self.max_pending_bytes = max_pending_bytes;
        self
    }

    /// Spins on the syncing thread's CPU while an `fdatasync` is in flight, at `SCHED_IDLE`
    /// priority (it runs only when that CPU has nothing else to run), and for 2 ms after the
    /// last sync began before it parks. On a virtual machine a CPU that halts during the fsync
    /// runs the order's next microseconds cold: this trades the idle time of the fsync for a
    /// shorter order-to-ack (docs/BENCHMARKS.md). No effect under [`FsyncPolicy::Never`].
    ///
    /// ```
    /// use gateway::journal::{FsyncPolicy, JournalOptions};
    ///
    /// let options = JournalOptions::new("gateway.journal")
    ///     .with_policy(FsyncPolicy::EveryRecord)
    ///     .with_spin_while_syncing(true);
    /// assert!(options.spin_while_syncing);
    /// ```
    #[must_use]
    pub fn with_spin_while_syncing(mut self, spin: bool) -> Self {
        self.spin_while_syncing = spin;
        self
    }

    /// Sets the [fsync duration callback](Self::fsync_observer).
    #[must_use]
    pub fn with_fsync_observer(mut self, observer: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.fsync_observer = Some(Arc::new(observer));
        self
    }
}

impl fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalOptions")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("fsync_observer", &self.fsync_observer.as_ref().map(|_| "Fn(Duration)"))
            .field("spin_while_syncing", &self.spin_while_syncing)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_every_form() {
        let cases = [
            ("every", FsyncPolicy::EveryRecord),
            ("none", FsyncPolicy::Never),
            ("group", FsyncPolicy::Group(DEFAULT_GROUP_COMMIT_INTERVAL)),
            ("group:200us", FsyncPolicy::Group(Duration::from_micros(200))),
            ("group:200µs", FsyncPolicy::Group(Duration::from_micros(200))),
            ("group:1ms", FsyncPolicy::Group(Duration::from_millis(1))),
            ("group:1500ns", FsyncPolicy::Group(Duration::from_nanos(1500))),
            ("group:2s", FsyncPolicy::Group(Duration::from_secs(2))),
            ("group:0ns", FsyncPolicy::Group(Duration::ZERO)),
            (" every ", FsyncPolicy::EveryRecord),
        ];
        for (text, policy) in cases {
            assert_eq!(text.parse::<FsyncPolicy>(), Ok(policy), "{text}");
        }
    }

    #[test]
    fn fsync_policy_display_parses_back() {
        for policy in [
            FsyncPolicy::EveryRecord,
            FsyncPolicy::Never,
            FsyncPolicy::default(),
            FsyncPolicy::Group(Duration::ZERO),
            FsyncPolicy::Group(Duration::from_nanos(1500)),
            FsyncPolicy::Group(Duration::from_millis(3)),
            FsyncPolicy::Group(Duration::from_secs(1)),
        ] {
            assert_eq!(policy.to_string().parse::<FsyncPolicy>(), Ok(policy), "{policy}");
        }
        assert_eq!(FsyncPolicy::Group(Duration::from_millis(1)).to_string(), "group:1ms");
    }

    #[test]
    fn fsync_policy_rejects_anything_else_with_the_valid_forms() {
        for text in [
            "",
            "always",
            "group:",
            "group:10",
            "group:ms",
            "group:-1ms",
            "group:1h",
            "group:99999999999999999999s",
            "Group",
        ] {
            let error = text.parse::<FsyncPolicy>().expect_err(text);
            assert!(error.to_string().contains("group:<interval>"), "{error}");
        }
    }

    #[test]
    fn fsync_policy_deserializes_from_a_config_string() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            fsync: FsyncPolicy,
        }
        let config: Config = toml::from_str("fsync = \"group:1ms\"").expect("valid config");
        assert_eq!(config.fsync, FsyncPolicy::Group(Duration::from_millis(1)));
        let error = toml::from_str::<Config>("fsync = \"sometimes\"").expect_err("invalid policy");
        assert!(error.to_string().contains("not a journal fsync policy"), "{error}");
    }
}
