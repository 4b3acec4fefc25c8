//! The progress bar: one bar over every run, drawn to stderr.
//!
//! The bar is redrawn only between runs (no steady tick), so it never wakes a thread during a
//! measurement. It is hidden when stderr is not a terminal, with `--quiet` and with `--smoke`,
//! so tests and redirected output stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress over a known number of runs, and the one-line report of each finished run.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    /// Per-run lines are dropped (`--quiet`).
    quiet: bool,
}

impl Progress {
    /// A bar over `runs` runs; `hidden` forces it off (smoke mode), `quiet` also drops the lines.
    pub(crate) fn new(runs: usize, hidden: bool, quiet: bool) -> Self {
        let bar = if hidden || quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(runs as u64);
            let style = ProgressStyle::with_template("[{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} runs, eta {eta}: {msg}")
                .expect("valid template")
                .progress_chars("=> ");
            bar.set_style(style);
            bar
        };
        Self { bar, quiet }
    }

    /// Names the run that starts now.
    pub(crate) fn start(&self, name: String) {
        self.bar.set_message(name);
    }

    /// Counts a finished run and prints its one-line report above the bar (or to stderr when
    /// the bar is hidden, unless quiet).
    pub(crate) fn finish_run(&self, line: String) {
        if !self.quiet {
            if self.bar.is_hidden() {
                eprintln!("{line}");
            } else {
                self.bar.println(line);
            }
        }
        self.bar.inc(1);
    }

    /// Removes the bar before the results are printed.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
