//! The recent execution reports of each account, so that a subscriber that reconnects resumes
//! after the last sequence it saw: first the kept reports after it (rebuilt from the journal at
//! start), then live ones, with no gap and no duplicate.
//!
//! Reports are recorded and published to the live subscribers under one lock, and a resuming
//! subscriber reads the kept reports and subscribes under the same lock, so every report lands
//! exactly once: in its backlog or in its live stream. Only journaled reports are kept; rejects
//! (sequence 0) go to live subscribers only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use volley::Status;

use crate::fanout::Fanout;
use crate::proto::ExecutionReport;

/// Reports kept per account for resuming subscribers (4096, as many as a live subscriber may
/// fall behind): older ones are dropped, and resuming before them is refused.
pub const MAX_KEPT_REPORTS: usize = 4096;

/// A resumed subscription: where the live part starts, the backlog, and the live receiver.
#[derive(Debug)]
pub struct Resumed {
    /// Every report after this sequence is in `backlog` or arrives on `live`.
    pub after: u64,
    /// The kept reports after the requested sequence, in journal order.
    pub backlog: Vec<ExecutionReport>,
    /// The live reports.
    pub live: broadcast::Receiver<ExecutionReport>,
}

#[derive(Debug, Default)]
struct Kept {
    reports: VecDeque<ExecutionReport>,
    /// The highest sequence among the reports dropped for room (0: none dropped).
    dropped_through: u64,
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Kept>,
    /// The sequence of the last command whose reports were recorded.
    recorded: u64,
}

/// Each account's recent reports. See the [module docs](self).
#[derive(Debug, Default)]
pub struct ReportHistory {
    state: Mutex<State>,
}

impl ReportHistory {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything that can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps the reports of the durable command `sequence` and, with `fanout`, publishes them to
    /// the live subscribers (replay at start records without publishing).
    pub fn record(&self, sequence: u64, reports: Vec<ExecutionReport>, fanout: Option<&Fanout>) {
        let mut state = self.lock();
        state.recorded = state.recorded.max(sequence);
        for report in reports {
            let kept = state.accounts.entry(report.account.clone()).or_default();
            if kept.reports.len() >= MAX_KEPT_REPORTS
                && let Some(dropped) = kept.reports.pop_front()
            {
                kept.dropped_through = kept.dropped_through.max(dropped.sequence);
            }
            kept.reports.push_back(report.clone());
            if let Some(fanout) = fanout {
                fanout.publish_report(report);
            }
        }
    }

    /// Subscribes to `account`'s reports after `after` (0: from now on): the kept ones, then
    /// live. Refused if `after` is beyond the last recorded command, or older than the oldest
    /// report kept.
    pub fn subscribe(&self, account: &str, after: u64, fanout: &Fanout) -> Result<Resumed, Status> {
        let state = self.lock();
        if after > state.recorded {
            return Err(Status::invalid_argument(format!(
                "sequence {after} is beyond the last durable command ({}); resume from a sequence a report carried",
                state.recorded
            )));
        }
        let live = fanout.subscribe_account(account);
        if after == 0 {
            return Ok(Resumed {
                after: state.recorded,
                backlog: Vec::new(),
                live,
            });
        }
        let kept = state.accounts.get(account);
        let dropped_through = kept.map_or(0, |kept| kept.dropped_through);
        if after < dropped_through {
            return Err(Status::out_of_range(format!(
                "reports after sequence {after} are no longer kept (the last {MAX_KEPT_REPORTS} of the account are, from after {dropped_through}); query the orders instead"
            )));
        }
        let backlog = kept.map_or_else(Vec::new, |kept| {
            kept.reports.iter().filter(|report| report.sequence > after).cloned().collect()
        });
        Ok(Resumed { after, backlog, live })
    }
}
