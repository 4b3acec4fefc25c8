//! A shard as a child process of `volley-gateway serve --shards N --shard K`: started, found
//! where it listens, stopped with SIGTERM (graceful) or SIGKILL (a crash), and never left behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use volley::net::Address;

use super::plan::ShardId;

/// How long a shard process has to say where it listens (10 s): replaying a large journal
/// takes a while, a process that says nothing for this long is stuck.
pub const SHARD_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The line `volley-gateway serve` prints first once it serves (see `main.rs`).
const LISTENING: &str = "gateway listening on ";

/// A shard process that could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The program could not be run; check the path to `volley-gateway`.
    #[error("cannot run {program} for {shard}: {source}")]
    Spawn {
        /// The shard.
        shard: ShardId,
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The process exited or said nothing usable within [`SHARD_START_TIMEOUT`]; its standard
    /// error says why.
    #[error("{shard} did not start listening within {SHARD_START_TIMEOUT:?} (see its log above)")]
    NotListening {
        /// The shard.
        shard: ShardId,
    },
    /// Signalling or waiting for the process failed.
    #[error("cannot stop {shard}: {source}")]
    Stop {
        /// The shard.
        shard: ShardId,
        /// Why.
        source: std::io::Error,
    },
    /// The process did not exit within the time given after SIGTERM.
    #[error("{shard} did not exit within {timeout:?} of SIGTERM")]
    StopTimeout {
        /// The shard.
        shard: ShardId,
        /// How long it was given.
        timeout: Duration,
    },
}

/// A running shard process; dropping it kills the process, so a failure leaves none behind.
#[derive(Debug)]
pub struct ShardProcess {
    shard: ShardId,
    child: Child,
    address: Address,
}

impl ShardProcess {
    /// Runs `program serve --shards {shards} --shard {shard} --journal {journal} {extra}` and
    /// waits until it says where it listens. Its standard output is copied to ours, each line
    /// prefixed with `[shard K]`; its standard error is inherited.
    pub fn spawn(program: &Path, shard: ShardId, shards: u32, journal: &Path, extra: &[String]) -> Result<Self, ProcessError> {
        let mut child = Command::new(program)
            .args([
                "serve",
                "--shards",
                &shards.to_string(),
                "--shard",
                &shard.0.to_string(),
                "--journal",
            ])
            .arg(journal)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| ProcessError::Spawn {
                shard,
                program: program.display().to_string(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            // Unreachable with `Stdio::piped()`, but a process we cannot read is not started.
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProcessError::NotListening { shard });
        };
        let (found, listening) = mpsc::channel();
        // Reads the process's output for its whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(LISTENING)
                    && let Some(address) = rest.split_whitespace().next()
                {
                    let _ = found.send(address.to_owned());
                }
                println!("[shard {}] {line}", shard.0);
            }
        });
        let address = listening
            .recv_timeout(SHARD_START_TIMEOUT)
            .ok()
            .and_then(|text| text.parse::<Address>().ok());
        match address {
            Some(address) => Ok(Self { shard, child, address }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(ProcessError::NotListening { shard })
            }
        }
    }

    /// The shard.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Where it serves order entry.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash: the process gets no chance to drain or flush.
    pub fn kill(&mut self) -> Result<ExitStatus, ProcessError> {
        let stop = |source| ProcessError::Stop { shard: self.shard, source };
        self.child.kill().map_err(stop)?;
        self.child.wait().map_err(stop)
    }

    /// SIGTERM, then waits at most `timeout` for the graceful shutdown (drain, journal flush).
    pub fn terminate(mut self, timeout: Duration) -> Result<ExitStatus, ProcessError> {
        let shard = self.shard;
        let stop = |source| ProcessError::Stop { shard, source };
        // std has no SIGTERM; the `kill` program sends it.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(stop)?;
        if !sent.success() {
            return Err(stop(std::io::Error::other(format!("kill -TERM exited with {sent}"))));
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(stop)? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(ProcessError::StopTimeout { shard, timeout });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ShardProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
