//! A/B mode: one scenario under several socket-option variants, repeats interleaved, deltas
//! against the first (baseline) variant with their spread.
//!
//! ```sh
//! volley-bench ab --scenario unary_64B_1 --variants default,nodelay=off,buffers=64k --repeats 5
//! ```
//!
//! Each variant gets its own raw and Volley echo servers whose accepted sockets, and the clients'
//! sockets, take the variant's [`SocketConfig`]. Before measuring, the tool connects once and
//! reads the options back; a variant the kernel refused or changed is reported as not applied
//! rather than measured under a label it does not deserve.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::time::Duration;

use serde_json::json;
use volley::net::{AppliedSocketOptions, SocketConfig};

use crate::progress::Progress;
use crate::report::{Figures, Summary, rate_text};
use crate::scenarios::{self, Kind, Scenario};
use crate::systems::{self, Runtime, Servers, System};

/// The variants run when `--variants` is not given; the first is the baseline.
pub(crate) const DEFAULT_VARIANTS: [&str; 6] = ["default", "nodelay=off", "buffers=64k", "buffers=4m", "quickack=on", "busy_poll=50"];

/// Arguments of `volley-bench ab`.
#[derive(Debug, clap::Args)]
pub(crate) struct AbArgs {
    /// The scenario to run (a closed-loop one: unary_* or stream_64B).
    #[arg(long, default_value = "unary_64B_1")]
    scenario: String,
    /// Comma-separated variants, the first being the baseline. A variant is `default` or
    /// settings joined by `+`: nodelay=on|off, quickack=on|off, sndbuf=SIZE, rcvbuf=SIZE,
    /// buffers=SIZE (both), busy_poll=MICROS; SIZE in bytes or with a k/m suffix (KiB, MiB).
    /// Default: default,nodelay=off,buffers=64k,buffers=4m,quickack=on,busy_poll=50.
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
}

/// What the A/B run shares with the main mode.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) repeats: usize,
    pub(crate) hide_progress: bool,
    pub(crate) quiet: bool,
    pub(crate) placement: String,
}

/// One named socket configuration.
#[derive(Clone, Debug)]
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) config: SocketConfig,
}

fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{key}={value}: expected on or off")),
    }
}

fn size(key: &str, value: &str) -> Result<usize, String> {
    let lower = value.to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix('k') {
        Some(digits) => (digits, 1 << 10),
        None => match lower.strip_suffix('m') {
            Some(digits) => (digits, 1 << 20),
            None => (lower.as_str(), 1),
        },
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{key}={value}: expected a size such as 65536, 64k or 4m"))
}

impl Variant {
    /// Parses `default` or `key=value` settings joined by `+`, starting from the defaults.
    pub(crate) fn parse(spec: &str) -> Result<Self, String> {
        let mut config = SocketConfig::default();
        for setting in spec.split('+').map(str::trim) {
            if setting == "default" {
                continue;
            }
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("variant {spec:?}: {setting:?} is not key=value"))?;
            match key {
                "nodelay" => config.nodelay = on_off(key, value)?,
                "quickack" => config.quickack = on_off(key, value)?,
                "sndbuf" => config.send_buffer_size = Some(size(key, value)?),
                "rcvbuf" => config.recv_buffer_size = Some(size(key, value)?),
                "buffers" => {
                    let bytes = size(key, value)?;
                    config.send_buffer_size = Some(bytes);
                    config.recv_buffer_size = Some(bytes);
                }
                "busy_poll" => {
                    config.busy_poll_micros = Some(value.parse().map_err(|_| format!("busy_poll={value}: expected microseconds"))?)
                }
                _ => return Err(format!("variant {spec:?}: unknown setting {key:?}")),
            }
        }
        Ok(Self {
            name: spec.to_owned(),
            config,
        })
    }
}

fn bytes_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Compares what was asked with what the kernel reports: `Ok` with read-back notes, or `Err`
/// with why the variant did not take effect as named.
pub(crate) fn check(config: &SocketConfig, applied: &AppliedSocketOptions) -> Result<Vec<String>, String> {
    if !applied.warnings.is_empty() {
        return Err(applied.warnings.join("; "));
    }
    let mut notes = Vec::new();
    if applied.nodelay != Some(config.nodelay) {
        return Err(format!("TCP_NODELAY read back {:?}, asked {}", applied.nodelay, config.nodelay));
    }
    if !config.nodelay {
        notes.push("TCP_NODELAY read back off".into());
    }
    for (name, asked, got) in [
        ("SO_SNDBUF", config.send_buffer_size, applied.send_buffer_size),
        ("SO_RCVBUF", config.recv_buffer_size, applied.recv_buffer_size),
    ] {
        let Some(asked) = asked else { continue };
        match got {
            // Linux doubles the value asked (for its bookkeeping) and reports that.
            Some(got) if got >= asked => notes.push(format!("{name} read back {}", bytes_text(got))),
            Some(got) => {
                return Err(format!(
                    "{name}: asked {}, the kernel set {} (capped by net.core.{}mem_max)",
                    bytes_text(asked),
                    bytes_text(got),
                    if name == "SO_SNDBUF" { "w" } else { "r" }
                ));
            }
            None => return Err(format!("{name} could not be read back")),
        }
    }
    if config.quickack {
        if applied.quickack != Some(true) {
            return Err(format!("TCP_QUICKACK read back {:?}", applied.quickack));
        }
        // The kernel leaves quick-ack mode again by itself; this only says the option was taken.
        notes.push("TCP_QUICKACK read back on (right after connecting)".into());
    }
    if let Some(micros) = config.busy_poll_micros {
        if applied.busy_poll_micros != Some(micros) {
            return Err(format!("SO_BUSY_POLL read back {:?}, asked {micros}", applied.busy_poll_micros));
        }
        notes.push(format!("SO_BUSY_POLL read back {micros} µs"));
    }
    Ok(notes)
}

/// Connects one client per system and checks the variant's options on its socket.
async fn probe(servers: &Servers, config: &SocketConfig, systems: &[System]) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    for &system in systems {
        let applied = match system {
            System::Raw => systems::connect_raw_applied(servers).await.1,
            _ => systems::connect(servers, system).await.socket_options().cloned(),
        };
        let applied = applied.ok_or_else(|| format!("{}: no socket options to read back", system.name()))?;
        let system_notes = check(config, &applied).map_err(|err| format!("{}: {err}", system.name()))?;
        if notes.is_empty() {
            notes = system_notes;
        }
    }
    Ok(notes)
}

/// A variant's state after probing.
#[derive(Debug)]
struct Arm {
    variant: Variant,
    servers: Servers,
    /// `Ok(read-back notes)` or `Err(why it was not applied)`.
    applied: Result<Vec<String>, String>,
    runs: Vec<Vec<Figures>>,
}

/// Runs the A/B comparison and prints its table; writes JSON lines to `json` if given.
pub(crate) fn run(
    args: &AbArgs,
    settings: &Settings,
    runtime: &tokio::runtime::Runtime,
    json: Option<&mut File>,
) -> Result<(), Box<dyn std::error::Error>> {
    let scenario = scenarios::find(&args.scenario)?;
    if matches!(scenario.kind, Kind::OpenLoop { .. }) {
        return Err(format!("ab runs closed-loop scenarios only; {} is open-loop", scenario.name).into());
    }
    if matches!(scenario.kind, Kind::OneWay { .. }) || scenario.runtime != Runtime::CurrentThread {
        return Err(format!("ab runs the current-thread, two-way scenarios only; {} is not one", scenario.name).into());
    }
    let systems: Vec<System> = scenario
        .systems()
        .iter()
        .copied()
        .filter(|&s| matches!(s, System::Raw | System::Volley))
        .collect();
    let specs: Vec<String> = if args.variants.is_empty() {
        DEFAULT_VARIANTS.iter().map(|&s| s.to_owned()).collect()
    } else {
        args.variants.clone()
    };
    let variants = specs.iter().map(|spec| Variant::parse(spec)).collect::<Result<Vec<_>, _>>()?;
    let mut arms: Vec<Arm> = variants
        .into_iter()
        .map(|variant| {
            let servers = systems::start_tuned_servers(&variant.config);
            let applied = runtime.block_on(probe(&servers, &variant.config, &systems));
            Arm {
                variant,
                servers,
                applied,
                runs: vec![Vec::new(); systems.len()],
            }
        })
        .collect();
    if arms.first().is_some_and(|arm| arm.applied.is_err()) {
        return Err(format!(
            "the baseline variant {} could not be applied: {}",
            arms[0].variant.name,
            arms[0].applied.as_ref().err().map_or("", String::as_str)
        )
        .into());
    }
    let repeats = settings.repeats;
    let runnable = arms.iter().filter(|arm| arm.applied.is_ok()).count();
    eprintln!(
        "volley-bench ab: {} on {}; {} variant(s), {repeats} interleaved repeat(s) of {:?} + {:?} warm-up",
        scenario.name,
        systems.iter().map(|s| s.name()).collect::<Vec<_>>().join(" and "),
        arms.len(),
        settings.duration,
        settings.warmup
    );
    let progress = Progress::new(repeats * runnable * systems.len(), settings.hide_progress, settings.quiet);
    let mut json = json;
    for repeat in 0..repeats {
        for arm in arms.iter_mut().filter(|arm| arm.applied.is_ok()) {
            for (slot, &system) in systems.iter().enumerate() {
                progress.start(format!("repeat {} {} {}", repeat + 1, arm.variant.name, system.name()));
                let sample = runtime.block_on(scenarios::run(
                    &arm.servers,
                    &scenario,
                    system,
                    settings.warmup,
                    settings.duration,
                    None,
                ));
                let figures = Figures::of(&sample, &scenario);
                progress.finish_run(format!(
                    "repeat {} {} {}: {:.0}/s p50 {:.1} us",
                    repeat + 1,
                    arm.variant.name,
                    system.name(),
                    figures.rate,
                    figures.p50
                ));
                if let Some(file) = json.as_deref_mut() {
                    let line = json!({
                        "type": "ab_run", "scenario": scenario.name, "variant": arm.variant.name,
                        "system": system.name(), "repeat": repeat, "calls": sample.calls, "rate": figures.rate,
                        "p50_us": figures.p50, "p90_us": figures.p90, "p99_us": figures.p99, "p999_us": figures.p999,
                        "max_us": figures.max, "placement": settings.placement,
                    });
                    writeln!(file, "{line}")?;
                }
                arm.runs[slot].push(figures);
            }
        }
    }
    progress.finish();

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "\nplacement: {}", settings.placement)?;
    writeln!(
        stdout,
        "A/B of socket options: {} ({}), {repeats} interleaved repeat(s) of {:?}; baseline: {}",
        scenario.name, scenario.description, settings.duration, arms[0].variant.name
    )?;
    writeln!(
        stdout,
        "deltas: median against the baseline's median, with the range (worst and best pairing of the\n\
         repeats' min and max); \"noise\" when the two variants' min-max ranges overlap\n"
    )?;
    print_table(&mut stdout, &arms, &systems)?;
    if let Some(file) = json {
        for line in summary_lines(&scenario, &arms, &systems, &settings.placement) {
            writeln!(file, "{line}")?;
        }
    }
    Ok(())
}

/// A relative change with its spread.
#[derive(Clone, Copy, Debug)]
struct Delta {
    median: f64,
    low: f64,
    high: f64,
    noise: bool,
}

impl Delta {
    /// `(median, min, max)` of a variant against the baseline's.
    fn of(variant: (f64, f64, f64), baseline: (f64, f64, f64)) -> Self {
        Self {
            median: variant.0 / baseline.0 - 1.0,
            low: variant.1 / baseline.2 - 1.0,
            high: variant.2 / baseline.1 - 1.0,
            noise: variant.1 <= baseline.2 && baseline.1 <= variant.2,
        }
    }

    fn text(self) -> String {
        format!(
            "{:+.1} % ({:+.1}..{:+.1}){}",
            self.median * 100.0,
            self.low * 100.0,
            self.high * 100.0,
            if self.noise { " noise" } else { "" }
        )
    }
}

fn rates(s: &Summary) -> (f64, f64, f64) {
    (s.median.rate, s.rate_min, s.rate_max)
}

fn p50s(s: &Summary) -> (f64, f64, f64) {
    (s.median.p50, s.p50_min, s.p50_max)
}

fn print_table(out: &mut impl Write, arms: &[Arm], systems: &[System]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<20} {:<7} {:>26} {:>31} {:>24} {:>31}",
        "variant", "system", "rate/s median (min-max)", "rate vs baseline", "p50 us median (min-max)", "p50 vs baseline"
    )?;
    let baseline: Vec<Option<Summary>> = arms[0]
        .runs
        .iter()
        .map(|runs| (!runs.is_empty()).then(|| Summary::of(runs)))
        .collect();
    for (index, arm) in arms.iter().enumerate() {
        if let Err(reason) = &arm.applied {
            writeln!(out, "{:<20} {:<7} not applied, not measured: {reason}", arm.variant.name, "-")?;
            continue;
        }
        for (slot, system) in systems.iter().enumerate() {
            let runs = &arm.runs[slot];
            let (Some(base), false) = (baseline[slot], runs.is_empty()) else {
                continue;
            };
            let s = Summary::of(runs);
            let (rate_delta, p50_delta) = if index == 0 {
                ("baseline".to_owned(), "baseline".to_owned())
            } else {
                (Delta::of(rates(&s), rates(&base)).text(), Delta::of(p50s(&s), p50s(&base)).text())
            };
            writeln!(
                out,
                "{:<20} {:<7} {:>26} {:>31} {:>24} {:>31}",
                arm.variant.name,
                system.name(),
                format!("{} ({}-{})", rate_text(s.median.rate), rate_text(s.rate_min), rate_text(s.rate_max)),
                rate_delta,
                format!("{:.1} ({:.1}-{:.1})", s.median.p50, s.p50_min, s.p50_max),
                p50_delta
            )?;
        }
    }
    let mut notes = String::new();
    for arm in arms {
        if let Ok(read_back) = &arm.applied
            && !read_back.is_empty()
        {
            let _ = writeln!(notes, "  {}: {}", arm.variant.name, read_back.join(", "));
        }
    }
    if !notes.is_empty() {
        writeln!(
            out,
            "\nread back from the client sockets (Linux reports buffer sizes doubled):\n{notes}"
        )?;
    }
    Ok(())
}

fn summary_lines(scenario: &Scenario, arms: &[Arm], systems: &[System], placement: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for arm in arms {
        match &arm.applied {
            Err(reason) => lines.push(
                json!({
                    "type": "ab_summary", "scenario": scenario.name, "variant": arm.variant.name,
                    "applied": false, "reason": reason, "placement": placement,
                })
                .to_string(),
            ),
            Ok(notes) => {
                for (slot, system) in systems.iter().enumerate() {
                    if arm.runs[slot].is_empty() || arms[0].runs[slot].is_empty() {
                        continue;
                    }
                    let s = Summary::of(&arm.runs[slot]);
                    let base = Summary::of(&arms[0].runs[slot]);
                    let rate = Delta::of(rates(&s), rates(&base));
                    let p50 = Delta::of(p50s(&s), p50s(&base));
                    lines.push(
                        json!({
                            "type": "ab_summary", "scenario": scenario.name, "variant": arm.variant.name,
                            "baseline": arms[0].variant.name, "system": system.name(), "applied": true,
                            "read_back": notes, "repeats": s.repeats,
                            "rate_median": s.median.rate, "rate_min": s.rate_min, "rate_max": s.rate_max,
                            "rate_delta_pct": rate.median * 100.0, "rate_delta_low_pct": rate.low * 100.0,
                            "rate_delta_high_pct": rate.high * 100.0, "rate_within_noise": rate.noise,
                            "p50_us": s.median.p50, "p50_us_min": s.p50_min, "p50_us_max": s.p50_max,
                            "p50_delta_pct": p50.median * 100.0, "p50_delta_low_pct": p50.low * 100.0,
                            "p50_delta_high_pct": p50.high * 100.0, "p50_within_noise": p50.noise,
                            "p99_us": s.median.p99, "placement": placement,
                        })
                        .to_string(),
                    );
                }
            }
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_settings_joined_by_plus() {
        let v = Variant::parse("nodelay=off+buffers=64k+busy_poll=50").expect("valid");
        assert!(!v.config.nodelay);
        assert_eq!(v.config.send_buffer_size, Some(64 << 10));
        assert_eq!(v.config.recv_buffer_size, Some(64 << 10));
        assert_eq!(v.config.busy_poll_micros, Some(50));
        assert_eq!(Variant::parse("default").expect("valid").config, SocketConfig::default());
        assert!(Variant::parse("nodelay=maybe").is_err());
        assert!(Variant::parse("colour=blue").is_err());
    }

    #[test]
    fn capped_buffers_and_warnings_are_not_applied() {
        let config = Variant::parse("buffers=4m").expect("valid").config;
        let mut applied = AppliedSocketOptions {
            nodelay: Some(true),
            send_buffer_size: Some(425_984),
            recv_buffer_size: Some(8 << 20),
            ..AppliedSocketOptions::default()
        };
        assert!(check(&config, &applied).is_err());
        applied.send_buffer_size = Some(8 << 20);
        assert!(check(&config, &applied).is_ok());
        applied.warnings.push("socket option SO_BUSY_POLL not applied: EPERM".into());
        assert!(check(&config, &applied).is_err());
    }

    #[test]
    fn overlapping_ranges_are_noise() {
        let d = Delta::of((105.0, 95.0, 110.0), (100.0, 98.0, 102.0));
        assert!(d.noise);
        assert!((d.median - 0.05).abs() < 1e-9);
        let d = Delta::of((120.0, 115.0, 125.0), (100.0, 98.0, 102.0));
        assert!(!d.noise);
        assert!(d.low > 0.0);
    }
}
