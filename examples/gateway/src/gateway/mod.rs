//! The gateway's core: commands go through the risk checks, into the journal and the engine;
//! every answer waits until the journal has, durably, the state it was computed from; reports and
//! market data are published in journal order once durable.
//!
//! The order of operations for one command, under one lock so the journal order is the apply
//! order: check (risk) → apply (engine) → queue its reports → append (journal). Then, outside
//! the lock, the record goes to the journal's writer (or, for a unary call that finds the writer
//! idle, is written and synced right there: [`Gateway::submit`]), and the caller waits until
//! the record is durable and answers. If the journal fails, the
//! command is answered with UNAVAILABLE, never acknowledged, and the gateway stops accepting.
//!
//! # Durable-consistent answers
//!
//! A crash loses the journal's tail that was not yet durable, and the restarted gateway is the
//! replay of the durable part. So no answer may depend on state that is not durable yet: a
//! DUPLICATE about an order whose record a crash would lose, or ORDER_FINAL about an order whose
//! fill a crash would undo, would be contradicted after the restart. Each answer therefore
//! carries the journal sequence of the newest state it read and is sent only once that sequence
//! is durable ([`Engine::state_sequence`] for rejects, the order's last change for queries, the
//! book's last change for a market-data snapshot). Usually that state is long durable and the
//! answer goes at once; when it is not, the answer waits for the same fsync as the command that
//! changed the state.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use prost::Message;
use volley::Status;
use volley::server::ConnectionInfo;

use crate::config::Config;
use crate::engine::{Engine, Outcome};
use crate::fanout::Fanout;
use crate::history::{ReportHistory, Resumed};
use crate::journal::{Deferred, Journal, JournalError, JournalOptions, Replay};
use crate::metrics::GatewayMetrics;
use crate::proto::journal::{Record, SessionClosed, SessionsReset, record::Command};
use crate::proto::{ExecType, ExecutionReport, KillSwitchRequest, MarketDataUpdate, RejectReason};

/// What replaying the journal at start found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records replayed.
    pub records: u64,
    /// Bytes of a torn last record that were cut off.
    pub truncated_bytes: u64,
}

/// A gateway that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The journal could not be opened, read or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A record passed its checksum but is not a gateway record: the file is not this gateway's
    /// journal or was written by an incompatible version.
    #[error("journal record {sequence} is not a valid gateway record ({reason}); the journal is from another program or version")]
    CorruptRecord {
        /// The record's position.
        sequence: u64,
        /// What was wrong with it.
        reason: String,
    },
}

/// A command accepted into the journal, waiting to become durable.
#[derive(Debug)]
pub struct Accepted {
    sequence: u64,
    response: ExecutionReport,
    started: Instant,
}

/// A command answered without journaling (refused by the checks, or a possible resend of a
/// known order answered with its state), to be answered once the state it read is durable.
#[derive(Debug)]
pub struct Rejected {
    report: ExecutionReport,
    /// The journal sequence of the newest state the checks read.
    reads: u64,
    /// Whether the answer also goes to the account's report streams (rejects do; a resend's
    /// status answer does not, the order's reports went there already).
    to_streams: bool,
}

impl Rejected {
    /// A reject that reads no journaled state (a malformed command): it may be sent at once.
    pub fn stateless(report: ExecutionReport) -> Self {
        Self {
            report,
            reads: 0,
            to_streams: true,
        }
    }

    /// The journal sequence that must be durable before the reject is sent.
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

/// The result of taking in one command: rejected or accepted, either answered with
/// [`Gateway::answer`] once what it depends on is durable.
#[derive(Debug)]
pub enum Intake {
    /// Refused by the checks; nothing was journaled.
    Rejected(Rejected),
    /// Journaled; answered once the record is durable.
    Accepted(Accepted),
}

/// Reports and market data of one command, published once the command is durable.
#[derive(Debug)]
struct Publication {
    sequence: u64,
    reports: Vec<ExecutionReport>,
    market_data: Vec<MarketDataUpdate>,
}

/// The engine and the next journal sequence, behind one lock.
#[derive(Debug)]
struct Core {
    engine: Engine,
    next_sequence: u64,
}

#[derive(Debug)]
struct Inner {
    core: Mutex<Core>,
    journal: Journal,
    /// Publications of applied commands, in sequence order, until the journal has them.
    pending: Arc<Mutex<VecDeque<Publication>>>,
    fanout: Arc<Fanout>,
    /// Each account's recent reports, for subscribers that resume.
    history: Arc<ReportHistory>,
    metrics: GatewayMetrics,
    /// Sessions with cancel-on-disconnect orders, each watched until its connection closes.
    watched: Mutex<HashSet<u64>>,
    accepting: AtomicBool,
}

/// The gateway. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Gateway {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything that can panic.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Gateway {
    /// Opens the journal, replays it into a fresh engine, and cancels the cancel-on-disconnect
    /// orders of sessions that ended with the previous run.
    pub fn open(config: &Config, metrics: GatewayMetrics) -> Result<(Self, ReplaySummary), GatewayError> {
        Self::open_with(config, metrics, Journal::open)
    }

    /// [`Gateway::open`] with the journal opened by `open_journal` (tests use a failing disk).
    fn open_with(
        config: &Config,
        metrics: GatewayMetrics,
        open_journal: impl FnOnce(JournalOptions, Box<dyn FnMut(u64) + Send>) -> Result<(Journal, Replay), JournalError>,
    ) -> Result<(Self, ReplaySummary), GatewayError> {
        let fanout = Arc::new(Fanout::new());
        let history = Arc::new(ReportHistory::default());
        let pending: Arc<Mutex<VecDeque<Publication>>> = Arc::default();
        let on_durable = {
            let (pending, fanout, history, metrics) = (pending.clone(), fanout.clone(), history.clone(), metrics.clone());
            Box::new(move |durable: u64| publish_durable(&pending, &fanout, &history, &metrics, durable))
        };
        let fsync_metrics = metrics.clone();
        let options = JournalOptions::new(config.journal.clone())
            .with_policy(config.fsync)
            .with_spin_while_syncing(config.fsync_spin)
            .with_fsync_observer(move |elapsed| fsync_metrics.fsync(elapsed));
        let (journal, replay) = open_journal(options, on_durable)?;

        let mut engine = Engine::new(config.symbols.clone(), config.limits.clone());
        let mut summary = ReplaySummary {
            records: 0,
            truncated_bytes: replay.truncated_bytes(),
        };
        for (index, payload) in replay.iter().enumerate() {
            let sequence = index as u64 + 1;
            let record = Record::decode(payload).map_err(|err| GatewayError::CorruptRecord {
                sequence,
                reason: err.to_string(),
            })?;
            let Some(command) = record.command else {
                return Err(GatewayError::CorruptRecord {
                    sequence,
                    reason: "no command".into(),
                });
            };
            if record.sequence != sequence {
                return Err(GatewayError::CorruptRecord {
                    sequence,
                    reason: format!("it says it is record {}", record.sequence),
                });
            }
            let outcome = engine.apply(sequence, record.session, &command);
            history.record(sequence, outcome.reports, None);
            summary.records = sequence;
        }
        drop(replay);

        let gateway = Self {
            inner: Arc::new(Inner {
                core: Mutex::new(Core {
                    engine,
                    next_sequence: summary.records + 1,
                }),
                journal,
                pending,
                fanout,
                history,
                metrics,
                watched: Mutex::new(HashSet::new()),
                accepting: AtomicBool::new(true),
            }),
        };
        // The sessions of the previous run are gone: their cancel-on-disconnect orders go too.
        if summary.records > 0 {
            gateway.submit_internal(Command::SessionsReset(SessionsReset {}));
        }
        Ok((gateway, summary))
    }

    /// The gateway's metrics.
    pub fn metrics(&self) -> &GatewayMetrics {
        &self.inner.metrics
    }

    /// The journal's counters: records, bytes, fsyncs and the time they took.
    pub fn journal_stats(&self) -> crate::journal::JournalStats {
        self.inner.journal.stats()
    }

    /// Every journal fsync's duration so far, in nanoseconds: see [`Journal::fsync_latency`].
    pub fn fsync_latency(&self) -> hdrhistogram::Histogram<u64> {
        self.inner.journal.fsync_latency()
    }

    /// The sequence of the last command journaled (0: none).
    pub fn last_sequence(&self) -> u64 {
        lock(&self.inner.core).next_sequence - 1
    }

    /// The report and market-data subscribers.
    pub fn fanout(&self) -> &Fanout {
        &self.inner.fanout
    }

    /// Subscribes to `account`'s reports after `after` (0: from now on): the kept reports after
    /// it, then live ones; see [`ReportHistory::subscribe`].
    pub fn subscribe_reports(&self, account: &str, after: u64) -> Result<Resumed, Status> {
        self.inner.history.subscribe(account, after, &self.inner.fanout)
    }

    /// Runs `f` on the engine (for queries), under the engine's lock.
    pub fn with_engine<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&lock(&self.inner.core).engine)
    }

    /// Checks, applies and journals `command` from `session`; answer it with
    /// [`Gateway::answer`]. An account over its runaway limit is halted first (a journaled kill
    /// switch, a warning in the log and `gateway_runaway_halts_total`).
    pub fn intake(&self, session: u64, command: Command) -> Result<Intake, Status> {
        let (intake, appended) = self.take_in(session, command)?;
        if let Some(appended) = appended {
            self.inner.journal.hand_off(appended);
        }
        Ok(intake)
    }

    /// [`Gateway::intake`] without telling the journal's writer: the caller does, once the
    /// engine's lock is released, with the last record appended (a batch takes every record
    /// before it along).
    fn take_in(&self, session: u64, command: Command) -> Result<(Intake, Option<Deferred>), Status> {
        let started = Instant::now();
        self.refuse_if_not_accepting()?;
        let mut core = lock(&self.inner.core);
        // Again under the lock: `close` takes it before closing the journal.
        self.refuse_if_not_accepting()?;
        let mut halted = None;
        if core.engine.is_runaway(&command, started) {
            let account = command_account(&command).to_owned();
            tracing::warn!(
                account,
                "runaway: the account sent more commands in one window than runaway_messages allows; its kill switch is engaged"
            );
            self.inner.metrics.runaway_halt();
            let halt = Command::KillSwitch(KillSwitchRequest { account, engaged: true });
            // Journaled like an operator's; nobody waits for its acknowledgement.
            let (_, appended) = self.apply_and_append(&mut core, 0, halt, started)?;
            halted = appended;
        }
        if let Some(report) = core.engine.resend_answer(&command) {
            drop(core);
            let intake = Intake::Rejected(Rejected {
                reads: report.sequence,
                report,
                to_streams: false,
            });
            return Ok((intake, halted));
        }
        if let Err(reject) = core.engine.check(session, &command, started) {
            let reads = core.engine.reject_sequence(&command, reject.reason);
            drop(core);
            self.inner.metrics.rejected(reject.reason);
            let intake = Intake::Rejected(Rejected {
                report: reject.into_report(&command),
                reads,
                to_streams: true,
            });
            return Ok((intake, halted));
        }
        let (intake, appended) = self.apply_and_append(&mut core, session, command, started)?;
        drop(core);
        // The command's record comes after the halt's: handing it off takes both along.
        Ok((intake, appended.or(halted)))
    }

    /// Applies a checked command and appends it to the journal, under the engine's lock; the
    /// record is deferred (the writer is told once the lock is released).
    fn apply_and_append(
        &self,
        core: &mut Core,
        session: u64,
        command: Command,
        started: Instant,
    ) -> Result<(Intake, Option<Deferred>), Status> {
        let sequence = core.next_sequence;
        let Outcome {
            response,
            reports,
            market_data,
        } = core.engine.apply(sequence, session, &command);
        if response.exec_type == ExecType::Reject as i32 {
            // `check` passed, so this does not happen; were it to, nothing changed and nothing
            // is journaled.
            let reads = core.engine.state_sequence(&command);
            self.inner
                .metrics
                .rejected(RejectReason::try_from(response.reject_reason).unwrap_or_default());
            let intake = Intake::Rejected(Rejected {
                report: ExecutionReport { sequence: 0, ..response },
                reads,
                to_streams: true,
            });
            return Ok((intake, None));
        }
        let kind = command_kind(&command);
        let payload = Record {
            sequence,
            session,
            command: Some(command),
        }
        .encode_to_vec();
        lock(&self.inner.pending).push_back(Publication {
            sequence,
            reports,
            market_data,
        });
        let appended = match self.inner.journal.append_deferred_with(|_, buf| buf.extend_from_slice(&payload)) {
            Ok(appended) => {
                debug_assert_eq!(appended.sequence(), sequence, "the journal numbers records as the gateway does");
                core.next_sequence += 1;
                appended
            }
            Err(err) => {
                // The engine has applied what the journal does not hold: accept nothing more.
                self.inner.accepting.store(false, Ordering::Release);
                tracing::error!(%err, "journal append failed; the gateway stops accepting orders");
                return Err(journal_status(&err));
            }
        };
        self.inner.metrics.accepted(kind);
        let intake = Intake::Accepted(Accepted {
            sequence,
            response,
            started,
        });
        Ok((intake, Some(appended)))
    }

    /// The answer to a command taken in, once what it depends on is durable: the accepted
    /// command's own record, or the state a reject read. A reject also goes to the account's
    /// report streams then (not journaled: sequence 0).
    pub async fn answer(&self, intake: Intake) -> Result<ExecutionReport, Status> {
        match intake {
            Intake::Accepted(accepted) => self.acknowledge(accepted).await,
            Intake::Rejected(Rejected { report, reads, to_streams }) => {
                self.wait_durable(reads).await?;
                if to_streams && !report.account.is_empty() {
                    self.inner.fanout.publish_report(report.clone());
                }
                Ok(report)
            }
        }
    }

    /// Waits until an accepted command is durable, then gives its acknowledgement.
    pub async fn acknowledge(&self, accepted: Accepted) -> Result<ExecutionReport, Status> {
        self.wait_durable(accepted.sequence).await?;
        self.inner.metrics.order_to_ack(accepted.started.elapsed());
        Ok(accepted.response)
    }

    /// Takes in one command and answers it once durable: [`Gateway::intake`] then
    /// [`Gateway::answer`].
    ///
    /// The caller waits for this answer right away, so when the journal's writer is idle the
    /// record is written (and fsynced, per the policy) here, on the calling thread, rather than
    /// handed to the writer thread and waited for: a lone order saves the writer's wake-up and
    /// the wake-up back. This blocks the calling runtime worker for that write and fsync; see
    /// [`Journal::sync_or_hand_off`].
    pub async fn submit(&self, session: u64, command: Command) -> Result<ExecutionReport, Status> {
        let (intake, appended) = self.take_in(session, command)?;
        if let Some(appended) = appended {
            self.inner.journal.sync_or_hand_off(appended);
        }
        self.answer(intake).await
    }

    /// The order an account's ClOrdID (any of its replace chain) names, as an ACK report of its
    /// current state, once that state is durable; `None` for no such order.
    pub async fn query(&self, account: &str, cl_ord_id: &str) -> Result<Option<ExecutionReport>, Status> {
        let Some(report) = self.with_engine(|engine| engine.query(account, cl_ord_id)) else {
            return Ok(None);
        };
        self.wait_durable(report.sequence).await?;
        Ok(Some(report))
    }

    /// A symbol's top of book and last trade, once durable; `None` for an unknown symbol.
    pub async fn top_of_book(&self, symbol: &str) -> Result<Option<MarketDataUpdate>, Status> {
        let Some(top) = self.with_engine(|engine| engine.top_of_book(symbol)) else {
            return Ok(None);
        };
        self.wait_durable(top.sequence).await?;
        Ok(Some(top))
    }

    /// Resolves once the journal is durable up to `sequence` (at once if it already is); on a
    /// journal failure the gateway stops accepting and the answer is UNAVAILABLE.
    pub async fn wait_durable(&self, sequence: u64) -> Result<(), Status> {
        if self.inner.journal.durable_sequence() >= sequence {
            return Ok(());
        }
        self.inner.journal.wait_durable(sequence).await.map_err(|err| {
            self.inner.accepting.store(false, Ordering::Release);
            journal_status(&err)
        })
    }

    /// Journals a command the gateway makes itself (session resets and closes), without
    /// waiting for it to be durable. Failures are logged: the journal is failed then, and every
    /// later command is refused with the reason.
    fn submit_internal(&self, command: Command) {
        if let Err(status) = self.intake(0, command) {
            tracing::error!(%status, "could not journal a gateway command");
        }
    }

    /// Watches `connection` if it entered a cancel-on-disconnect order: when it closes, its open
    /// cancel-on-disconnect orders are cancelled (a journaled `SessionClosed`).
    pub fn watch_session(&self, connection: &ConnectionInfo) {
        let session = connection.id();
        if !lock(&self.inner.watched).insert(session) {
            return;
        }
        let (gateway, connection) = (self.clone(), connection.clone());
        tokio::spawn(async move {
            connection.closed().await;
            lock(&gateway.inner.watched).remove(&session);
            if gateway.inner.accepting.load(Ordering::Acquire) {
                tracing::debug!(session, "session closed: cancelling its cancel-on-disconnect orders");
                if let Err(status) = gateway.intake(session, Command::SessionClosed(SessionClosed {})) {
                    tracing::warn!(session, %status, "could not cancel the orders of a closed session");
                }
            }
        });
    }

    /// Whether the gateway still takes orders (not shutting down, journal healthy).
    pub fn is_accepting(&self) -> bool {
        self.inner.accepting.load(Ordering::Acquire)
    }

    /// Stops taking orders: every later command is answered UNAVAILABLE.
    pub fn stop_accepting(&self) {
        self.inner.accepting.store(false, Ordering::Release);
    }

    /// Stops taking orders, ends the subscriptions, and flushes and syncs the journal.
    pub async fn close(&self) -> Result<(), JournalError> {
        self.stop_accepting();
        // Under the engine's lock, so no command is half-way between the check and the append.
        let core = lock(&self.inner.core);
        let result = self.inner.journal.close();
        drop(core);
        self.inner.fanout.close();
        result
    }

    fn refuse_if_not_accepting(&self) -> Result<(), Status> {
        if self.inner.accepting.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(match self.inner.journal.failure() {
            Some(reason) => Status::unavailable(format!(
                "orders are not accepted: the journal failed ({reason}); see the gateway's log"
            )),
            None => Status::unavailable("orders are not accepted: the gateway is shutting down; retry on another gateway"),
        })
    }
}

/// The status for a journal failure: UNAVAILABLE with the reason, so the client knows the
/// command was not acknowledged and may retry elsewhere.
fn journal_status(err: &JournalError) -> Status {
    Status::unavailable(format!("the command was not journaled and is not acknowledged: {err}"))
}

/// The account a command is about ("" for the gateway's own commands).
fn command_account(command: &Command) -> &str {
    match command {
        Command::NewOrder(request) => &request.account,
        Command::Cancel(request) => &request.account,
        Command::Replace(request) => &request.account,
        Command::KillSwitch(request) => &request.account,
        Command::SessionClosed(_) | Command::SessionsReset(_) => "",
    }
}

/// The metric label of a command.
fn command_kind(command: &Command) -> &'static str {
    match command {
        Command::NewOrder(_) => "new",
        Command::Cancel(_) => "cancel",
        Command::Replace(_) => "replace",
        Command::KillSwitch(_) => "kill_switch",
        Command::SessionClosed(_) => "session_closed",
        Command::SessionsReset(_) => "sessions_reset",
    }
}

/// Publishes, in order, everything the journal now holds durably.
fn publish_durable(
    pending: &Mutex<VecDeque<Publication>>,
    fanout: &Fanout,
    history: &ReportHistory,
    metrics: &GatewayMetrics,
    durable: u64,
) {
    loop {
        let publication = {
            let mut pending = lock(pending);
            match pending.front() {
                Some(first) if first.sequence <= durable => pending.pop_front(),
                _ => None,
            }
        };
        let Some(publication) = publication else {
            return;
        };
        let fills = publication.reports.iter().filter(|r| r.exec_type == ExecType::Fill as i32).count();
        metrics.fills(fills as u64);
        history.record(publication.sequence, publication.reports, Some(fanout));
        for update in publication.market_data {
            fanout.publish_market_data(update);
        }
    }
}

#[cfg(test)]
mod tests;
