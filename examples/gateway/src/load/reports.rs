//! One account's report stream, read in the background for the load's final check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use volley::Status;

use super::lane::AccountBook;
use super::{COMMAND_TIMEOUT, REPORT_GRACE};
use crate::proto::{ExecType, ExecutionReport};

/// Reads one account's report stream in the background.
pub(super) struct ReportCollector {
    pub(super) account: String,
    reports: Arc<Mutex<Vec<ExecutionReport>>>,
    highest: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl ReportCollector {
    /// Starts reading once the gateway has confirmed the subscription, so no report of a command
    /// sent after this returns can be missed. Fills that complete an order are told to `book`,
    /// so the generator stops working on that order.
    pub(super) async fn start(
        account: String,
        mut stream: volley::Streaming<ExecutionReport>,
        book: Arc<Mutex<AccountBook>>,
    ) -> Result<Self, Status> {
        match tokio::time::timeout(COMMAND_TIMEOUT, stream.message()).await {
            Ok(Ok(Some(_confirmation))) => {}
            Ok(Ok(None)) => return Err(Status::unavailable("the report stream ended before confirming the subscription")),
            Ok(Err(status)) => return Err(status),
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "the report stream did not confirm the subscription in time",
                ));
            }
        }
        let reports: Arc<Mutex<Vec<ExecutionReport>>> = Arc::default();
        let highest: Arc<AtomicU64> = Arc::default();
        let task = tokio::spawn({
            let (reports, highest) = (reports.clone(), highest.clone());
            async move {
                while let Ok(Some(report)) = stream.message().await {
                    highest.fetch_max(report.sequence, Ordering::Release);
                    if report.exec_type == ExecType::Fill as i32 && report.leaves_quantity == 0 {
                        book.lock().unwrap_or_else(PoisonError::into_inner).filled(&report.cl_ord_id);
                    }
                    reports.lock().unwrap_or_else(PoisonError::into_inner).push(report);
                }
            }
        });
        Ok(Self {
            account,
            reports,
            highest,
            task,
        })
    }

    /// Waits (at most [`REPORT_GRACE`]) until the stream has reached `sequence`, then stops
    /// and gives everything received.
    pub(super) async fn finish(self, sequence: u64) -> Vec<ExecutionReport> {
        let give_up = Instant::now() + REPORT_GRACE;
        while self.highest.load(Ordering::Acquire) < sequence && Instant::now() < give_up && !self.task.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.task.abort();
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
