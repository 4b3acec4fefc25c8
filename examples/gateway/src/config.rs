//! The gateway's configuration: embedded defaults, an optional TOML file, then command-line
//! flags, each overriding the one before.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::engine::{Limits, SymbolSpec};
use crate::journal::FsyncPolicy;

/// Where the gateway listens by default: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// How long without a frame from a client before the gateway pings it (1 s): a session that
/// stops answering (a hung client, a dead link that TCP has not noticed) is found within
/// this plus [`DEFAULT_KEEPALIVE_TIMEOUT`], and its cancel-on-disconnect orders are cancelled.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a ping may go unanswered before the session counts as disconnected (2 s).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the gateway needs to run. `Config::default()` is the embedded demo setup;
/// `volley-gateway config --print` prints the effective one as TOML.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address for order entry: `ip:port` or `unix:/path`.
    pub listen: String,
    /// Address of the Prometheus endpoint (`/metrics`), or `None` for no endpoint (`"off"` in
    /// the file, as on the command line).
    #[serde(with = "metrics_address")]
    pub metrics: Option<String>,
    /// The journal file.
    pub journal: PathBuf,
    /// When journal records are forced to disk.
    pub fsync: FsyncPolicy,
    /// Keep the CPU of the thread waiting for an fsync busy with an idle-priority spinner
    /// thread, so it does not halt: a shorter order-to-ack for the CPU time of the fsync's wait
    /// (`JournalOptions::with_spin_while_syncing`).
    pub fsync_spin: bool,
    /// How long a graceful shutdown waits for calls in flight.
    #[serde(with = "millis")]
    pub drain_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Milliseconds without a frame from a client before it is pinged (0: never ping). A missed
    /// heartbeat ends the session like a close: its cancel-on-disconnect orders are cancelled.
    #[serde(with = "millis_or_never")]
    pub keepalive_interval: Option<Duration>,
    /// Milliseconds a ping may go unanswered before the session counts as disconnected.
    #[serde(with = "millis")]
    pub keepalive_timeout: Duration,
    /// Tradable symbols.
    pub symbols: Vec<SymbolSpec>,
    /// Pre-trade limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            metrics: Some(volley::metrics::DEFAULT_METRICS_ADDR.to_owned()),
            journal: PathBuf::from("gateway.journal"),
            fsync: FsyncPolicy::default(),
            fsync_spin: false,
            drain_timeout: Duration::from_secs(5),
            max_connections: 1024,
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            symbols: default_symbols(),
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults: keys it leaves out keep their default.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: None,
            message: err.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML: every key, with its effective value. Reading it back gives
    /// the same configuration.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|err| ConfigError::Invalid(format!("cannot print the config as TOML: {err}")))
    }

    /// Checks what serde cannot: at least one symbol, and symbols and limits the engine can
    /// trade with (positive ticks, prices and limits, no name twice).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.symbols.is_empty() {
            return Err(ConfigError::Invalid("no symbols: add at least one [[symbols]] entry".into()));
        }
        crate::engine::validate_config(&self.symbols, &self.limits).map_err(|err| ConfigError::Invalid(err.to_string()))
    }
}

/// The demo's symbols: prices in cents, one-cent ticks.
pub fn default_symbols() -> Vec<SymbolSpec> {
    [("AAPL", 18_750), ("MSFT", 41_000), ("NVDA", 12_500), ("TSLA", 24_000)]
        .into_iter()
        .map(|(name, reference_price)| SymbolSpec {
            name: name.to_owned(),
            tick_size: 1,
            reference_price,
        })
        .collect()
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}; check the path given to --config")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid config{}: {message}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, if the text came from one.
        path: Option<PathBuf>,
        /// The parser's message, with the line and the key.
        message: String,
    },
    /// The values do not make sense together.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// A `Duration` as whole milliseconds in the TOML file (`drain_timeout = 5000`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }

    pub(super) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

/// An optional `Duration` as whole milliseconds, 0 for none.
mod millis_or_never {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let millis = u64::deserialize(deserializer)?;
        Ok((millis > 0).then(|| Duration::from_millis(millis)))
    }

    pub(super) fn serialize<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        let millis = duration.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        serializer.serialize_u64(millis)
    }
}

/// The metrics address, or `"off"` for none (TOML has no null).
mod metrics_address {
    use serde::{Deserialize, Deserializer, Serializer};

    const OFF: &str = "off";

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        let address = String::deserialize(deserializer)?;
        Ok((address != OFF).then_some(address))
    }

    pub(super) fn serialize<S: Serializer>(address: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(address.as_deref().unwrap_or(OFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn keys_override_the_defaults_and_the_rest_stay() {
        let config = Config::from_toml(
            r#"
            listen = "127.0.0.1:9000"
            drain_timeout = 250
            [[symbols]]
            name = "XYZ"
            tick_size = 5
            reference_price = 1000
            "#,
        )
        .unwrap();
        assert_eq!(config.listen, "127.0.0.1:9000");
        assert_eq!(config.drain_timeout, Duration::from_millis(250));
        assert_eq!(config.symbols.len(), 1);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn the_printed_config_reads_back_as_the_same_config() {
        let defaults = Config::default();
        let printed = defaults.to_toml().unwrap();
        assert!(printed.contains("[[symbols]]") && printed.contains("[limits]"), "{printed}");
        assert_eq!(Config::from_toml(&printed).unwrap(), defaults);
        let changed = Config {
            metrics: None,
            fsync: FsyncPolicy::EveryRecord,
            ..Config::default()
        };
        let printed = changed.to_toml().unwrap();
        assert!(
            printed.contains("metrics = \"off\"") && printed.contains("fsync = \"every\""),
            "{printed}"
        );
        assert_eq!(Config::from_toml(&printed).unwrap(), changed);
    }

    #[test]
    fn unknown_keys_and_bad_symbols_are_refused_with_the_reason() {
        let unknown = Config::from_toml("lisen = \"x\"").unwrap_err().to_string();
        assert!(unknown.contains("lisen"), "{unknown}");
        let zero_tick = Config::from_toml("[[symbols]]\nname = \"X\"\ntick_size = 0\nreference_price = 1").unwrap_err();
        assert!(zero_tick.to_string().contains("tick_size must be positive"), "{zero_tick}");
        let twice = "[[symbols]]\nname = \"X\"\ntick_size = 1\nreference_price = 1\n".repeat(2);
        let twice = Config::from_toml(&twice).unwrap_err().to_string();
        assert!(twice.contains("configured twice"), "{twice}");
    }
}
