//! The peers: grpc-go, grpcio (`grpc.aio`) and a plain asyncio-streams floor, each as a server
//! child process started once and a load-generator child process per run (`--peers go,python`).
//!
//! The children inherit this process's CPU affinity (`taskset`), so they share the CPUs the Rust
//! servers and client use. A child speaks a line protocol on its stdin and stdout
//! (`benches/peers/README.md`): the server prints `ready ADDR` and answers `stats` (grpc-go with
//! its allocation count); the client prints `measure` and `end` at the edges of its measured
//! window, then `result {json}` with its calls and latencies. At `measure` and `end` this side
//! reads the CPU time of both children from `/proc/<pid>/stat`. Every child is killed when its
//! guard drops (also on an error or a panic), and a client that overruns its window is killed by
//! a watchdog.

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::open_loop::{CallTasks, OpenLoop};
use crate::pacer::Pacing;
use crate::scenarios::{Kind, STREAM_LEN, Sample, Scenario, histogram};
use crate::systems::System;

/// Where the peers' sources live (the Go program and the Python script).
const PEERS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers");

/// Debian's Go sources (`golang-google-grpc-dev`, `golang-github-golang-protobuf-1-3-dev`): the
/// GOPATH the Go peer builds against, offline.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// How long a child may take beyond its run (start-up, connecting, the last calls) before the
/// watchdog kills it.
const CHILD_SLACK: Duration = Duration::from_secs(30);

/// The peer groups `--peers` accepts and the systems each starts.
pub(crate) fn systems_of(group: &str) -> Result<&'static [System], String> {
    match group {
        "go" => Ok(&[System::GrpcGo]),
        "python" => Ok(&[System::Grpcio, System::Asyncio]),
        other => Err(format!("unknown peer group {other:?} (known: go, python)")),
    }
}

/// A child process that is killed and reaped when this drops.
#[derive(Debug)]
struct ChildGuard(Arc<Mutex<Child>>);

impl ChildGuard {
    fn spawn(command: &mut Command) -> std::io::Result<Self> {
        Ok(Self(Arc::new(Mutex::new(command.spawn()?))))
    }

    fn id(&self) -> u32 {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let mut child = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Both fail only when the child is already gone and reaped.
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One running peer server.
#[derive(Debug)]
struct PeerServer {
    system: System,
    address: String,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    child: ChildGuard,
}

impl PeerServer {
    fn start(system: System, program: &Program) -> Result<Self, String> {
        let mut command = program.command(server_mode(system));
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let child = ChildGuard::spawn(&mut command).map_err(|err| format!("cannot start {}: {err}", program.describe()))?;
        let (stdin, stdout) = {
            let mut locked = child.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (locked.stdin.take(), locked.stdout.take())
        };
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err("child without pipes".into());
        };
        let mut stdout = BufReader::new(stdout).lines();
        // The first line is `ready ADDR`; a server that fails to start closes stdout instead.
        let address = match stdout.next() {
            Some(Ok(line)) => line
                .strip_prefix("ready ")
                .map(str::to_owned)
                .ok_or_else(|| format!("unexpected first line {line:?}"))?,
            _ => return Err(format!("{} exited before it was ready", system.name())),
        };
        Ok(Self {
            system,
            address,
            stdin,
            stdout,
            child,
        })
    }

    /// Asks the server for its counters; returns its allocation count (grpc-go only).
    fn stats(&mut self) -> Result<Option<u64>, String> {
        writeln!(self.stdin, "stats").map_err(|err| format!("{} server: {err}", self.system.name()))?;
        let line = match self.stdout.next() {
            Some(Ok(line)) => line,
            _ => return Err(format!("{} server stopped", self.system.name())),
        };
        Ok(line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("mallocs="))
            .and_then(|n| n.parse().ok()))
    }
}

/// How to run a peer's executable.
#[derive(Clone, Debug)]
struct Program {
    program: PathBuf,
    /// Arguments before the mode (the script, for Python).
    prefix: Vec<String>,
    /// GOMAXPROCS for the Go peer.
    env: Vec<(String, String)>,
}

impl Program {
    fn command(&self, mode: &str) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.prefix).arg(mode).envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn describe(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.prefix.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs `mode` to completion and returns its first stdout line.
    fn first_line(&self, mode: &str) -> Result<String, String> {
        let output = self
            .command(mode)
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("cannot run {}: {err}", self.describe()))?;
        if !output.status.success() {
            return Err(format!(
                "{} {mode} failed: {}",
                self.describe(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }
}

fn server_mode(system: System) -> &'static str {
    match system {
        System::GrpcGo => "server",
        System::Grpcio => "grpcio-server",
        _ => "asyncio-server",
    }
}

fn version_mode(system: System) -> &'static str {
    match system {
        System::Grpcio => "grpcio-version",
        _ => "version",
    }
}

fn client_mode(system: System) -> &'static str {
    match system {
        System::GrpcGo => "client",
        System::Grpcio => "grpcio-client",
        _ => "asyncio-client",
    }
}

/// The running peer servers and what is needed to start their clients.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    servers: Vec<(PeerServer, Program)>,
    /// One line per started peer (versions) and per skipped one (why), for the output.
    pub(crate) notes: Vec<String>,
}

impl Peers {
    /// Builds (Go) and starts the servers of `groups` (`go`, `python`); a peer that is not
    /// installed or does not start is skipped with a note saying why.
    pub(crate) fn start(groups: &[String], cpus: usize) -> Result<Self, String> {
        let mut peers = Self::default();
        for group in groups {
            for &system in systems_of(group)? {
                let program = match program_for(system, cpus) {
                    Ok(program) => program,
                    Err(why) => {
                        peers.notes.push(skipped(system, &why));
                        continue;
                    }
                };
                let version = program.first_line(version_mode(system)).unwrap_or_else(|err| err);
                match PeerServer::start(system, &program) {
                    Ok(server) => {
                        let gomaxprocs = program
                            .env
                            .iter()
                            .find(|(k, _)| k == "GOMAXPROCS")
                            .map(|(_, v)| format!(", GOMAXPROCS={v}"))
                            .unwrap_or_default();
                        peers.notes.push(format!(
                            "{}: {version}{gomaxprocs}; server pid {}",
                            system.name(),
                            server.child.id()
                        ));
                        peers.servers.push((server, program));
                    }
                    Err(why) => peers.notes.push(skipped(system, &why)),
                }
            }
        }
        Ok(peers)
    }

    /// The peer systems whose servers run.
    pub(crate) fn systems(&self) -> Vec<System> {
        self.servers.iter().map(|(server, _)| server.system).collect()
    }

    /// Runs `scenario` once against peer `system`: starts its client child, reads both
    /// children's CPU time (and grpc-go's allocation counts) at the edges of the measured
    /// window, and returns the client's calls and latencies.
    pub(crate) fn run(
        &mut self,
        scenario: &Scenario,
        system: System,
        warmup: Duration,
        duration: Duration,
        open_loop: Option<OpenLoop>,
    ) -> Result<Sample, String> {
        let (server, program) = self
            .servers
            .iter_mut()
            .find(|(server, _)| server.system == system)
            .ok_or_else(|| format!("{} is not running", system.name()))?;
        let mut command = program.command(client_mode(system));
        command.args(client_args(&server.address, scenario, warmup, duration, open_loop)?);
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        let client = ChildGuard::spawn(&mut command).map_err(|err| format!("cannot start client: {err}"))?;
        let stdout = client
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .stdout
            .take()
            .ok_or("client without stdout")?;
        // The watchdog kills a client that overruns; it stops when `done` is dropped.
        let (done, watched) = mpsc::channel::<()>();
        let watched_child = client.0.clone();
        let deadline = warmup + duration + CHILD_SLACK;
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(deadline) {
                let _ = watched_child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).kill();
            }
        });
        let pids = [client.id(), server.child.id()];
        let mut at_measure = None;
        let mut at_end = None;
        let mut result = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|err| format!("client output: {err}"))?;
            match line.as_str() {
                "measure" => at_measure = Some(Reading::take(&pids, server)?),
                "end" => at_end = Some(Reading::take(&pids, server)?),
                _ => {
                    if let Some(json) = line.strip_prefix("result ") {
                        result = Some(serde_json::from_str::<Value>(json).map_err(|err| format!("client result: {err}"))?);
                    }
                }
            }
        }
        drop(done);
        let _ = watchdog.join();
        let status = client
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .wait()
            .map_err(|err| err.to_string())?;
        let result = match result {
            Some(result) if status.success() => result,
            _ => return Err(format!("client exited with {status} without a result")),
        };
        let mut sample = sample_of(&result, open_loop)?;
        if let (Some(from), Some(to)) = (at_measure, at_end) {
            sample.cpu_seconds = Some(to.cpu_seconds - from.cpu_seconds);
            let client_mallocs = result["mallocs"].as_u64();
            sample.allocs = match (client_mallocs, from.server_mallocs, to.server_mallocs) {
                (Some(client), Some(from), Some(to)) => Some(client + to.saturating_sub(from)),
                _ => None,
            };
        }
        Ok(sample)
    }
}

/// The note for a peer that does not run.
fn skipped(system: System, why: &str) -> String {
    let hint = if why.contains("setup.sh") {
        ""
    } else {
        " (install with benches/peers/setup.sh)"
    };
    format!("{}: SKIPPED, {why}{hint}", system.name())
}

/// CPU time of the children and the server's allocation count at one moment.
#[derive(Clone, Copy, Debug)]
struct Reading {
    cpu_seconds: f64,
    server_mallocs: Option<u64>,
}

impl Reading {
    fn take(pids: &[u32], server: &mut PeerServer) -> Result<Self, String> {
        let cpu_seconds = pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum();
        Ok(Self {
            cpu_seconds,
            server_mallocs: server.stats()?,
        })
    }
}

/// User plus system CPU time of process `pid` (all its threads), from `/proc/<pid>/stat`, in
/// seconds (clock-tick resolution, usually 10 ms).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), starting at field 3 (state):
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

/// The client's arguments for `scenario`.
fn client_args(
    address: &str,
    scenario: &Scenario,
    warmup: Duration,
    duration: Duration,
    open_loop: Option<OpenLoop>,
) -> Result<Vec<String>, String> {
    let mut args = vec![
        "--addr".to_owned(),
        address.to_owned(),
        "--warmup-ms".to_owned(),
        warmup.as_millis().to_string(),
        "--duration-ms".to_owned(),
        duration.as_millis().to_string(),
    ];
    let mut push = |flag: &str, value: String| {
        args.push(flag.to_owned());
        args.push(value);
    };
    match scenario.kind {
        Kind::Unary { size, in_flight, conns } => {
            push("--kind", "unary".into());
            push("--size", size.to_string());
            push("--in-flight", in_flight.to_string());
            push("--conns", conns.to_string());
        }
        Kind::Stream { size } => {
            push("--kind", "stream".into());
            push("--size", size.to_string());
            push("--stream-len", STREAM_LEN.to_string());
        }
        Kind::OpenLoop { size, .. } => {
            let rate = open_loop.ok_or("open loop without a rate")?.rate;
            push("--kind", "open".into());
            push("--size", size.to_string());
            push("--rate", format!("{rate:.1}"));
        }
        Kind::OneWay { .. } => return Err(format!("{} has no peer client", scenario.name)),
    }
    Ok(args)
}

/// The client's result line as a sample: calls, measured time and latencies.
fn sample_of(result: &Value, open_loop: Option<OpenLoop>) -> Result<Sample, String> {
    let calls = result["calls"].as_u64().ok_or("result without calls")?;
    let elapsed = result["elapsed_s"].as_f64().ok_or("result without elapsed_s")?;
    let mut hist = histogram();
    for pair in result["hist"].as_array().ok_or("result without hist")? {
        let (Some(value), Some(count)) = (pair[0].as_u64(), pair[1].as_u64()) else {
            return Err(format!("bad histogram entry {pair}"));
        };
        hist.record_n(value.max(1), count).map_err(|err| err.to_string())?;
    }
    Ok(Sample {
        calls,
        elapsed: Duration::from_secs_f64(elapsed),
        hist,
        target_rate: open_loop.map(|open_loop| open_loop.rate),
        // The peers' generators sleep until each send time (Go: time.Sleep; Python:
        // asyncio.sleep).
        pacing: open_loop.map(|_| Pacing::Sleep),
        // And they start a goroutine (Go) or an asyncio task (Python) per call.
        calls_carried: open_loop.map(|_| CallTasks::Spawn),
        writes: None,
        rss_kib: None,
        cpu_seconds: None,
        allocs: None,
    })
}

/// How to run `system`, or why it cannot run here.
fn program_for(system: System, cpus: usize) -> Result<Program, String> {
    match system {
        System::GrpcGo => go_program(cpus),
        System::Grpcio | System::Asyncio => python_program(system),
        _ => Err(format!("{} is not a peer", system.name())),
    }
}

/// Builds the Go peer offline against Debian's packaged sources (GOPATH mode, no module
/// download), next to this executable; `go build` is quick when its cache is warm. The `go`
/// on `PATH`, or `$VOLLEY_BENCH_GO`.
fn go_program(cpus: usize) -> Result<Program, String> {
    let go = std::env::var_os("VOLLEY_BENCH_GO")
        .map(PathBuf::from)
        .or_else(|| which("go"))
        .ok_or("`go` not found (run benches/peers/setup.sh)")?;
    let grpc = Path::new(DEBIAN_GOPATH).join("src/google.golang.org/grpc");
    if !grpc.is_dir() {
        return Err(format!("{} missing (run benches/peers/setup.sh)", grpc.display()));
    }
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    let out = exe.with_file_name("volley-peer-go");
    let output = Command::new(&go)
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(Path::new(PEERS_DIR).join("go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", DEBIAN_GOPATH)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .output()
        .map_err(|err| format!("cannot run {}: {err}", go.display()))?;
    if !output.status.success() {
        return Err(format!("go build failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(Program {
        program: out,
        prefix: Vec::new(),
        env: vec![("GOMAXPROCS".into(), cpus.to_string())],
    })
}

/// `python3` (or `$VOLLEY_BENCH_PYTHON`) running `peers/python/peer.py`; grpcio must import.
fn python_program(system: System) -> Result<Program, String> {
    let python = std::env::var_os("VOLLEY_BENCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| which("python3"))
        .ok_or("`python3` not found")?;
    let program = Program {
        program: python,
        prefix: vec![format!("{PEERS_DIR}/python/peer.py")],
        env: Vec::new(),
    };
    if system == System::Grpcio {
        let check = Command::new(&program.program)
            .args(["-c", "import grpc"])
            .output()
            .map_err(|err| format!("cannot run {}: {err}", program.program.display()))?;
        if !check.status.success() {
            return Err(format!(
                "grpcio does not import in {} (run benches/peers/setup.sh: pip install grpcio)",
                program.program.display()
            ));
        }
    }
    Ok(program)
}

/// The first `name` on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_reads_this_process() {
        let seconds = cpu_seconds(std::process::id()).expect("own /proc/<pid>/stat");
        assert!(seconds >= 0.0);
    }

    #[test]
    fn unknown_peer_groups_are_refused() {
        assert!(systems_of("java").is_err());
        assert_eq!(systems_of("python").expect("known"), &[System::Grpcio, System::Asyncio]);
    }
}
