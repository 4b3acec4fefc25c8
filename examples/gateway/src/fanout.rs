//! Delivery of execution reports to each account's subscribers and of market data to each
//! symbol's, in journal order, with bounded memory: a subscriber that falls more than
//! [`SUBSCRIBER_BUFFER`] messages behind loses its stream (with a status saying so) instead of
//! making the gateway buffer without limit.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use crate::proto::{ExecutionReport, MarketDataUpdate};

/// Messages buffered per topic for its slowest subscriber (4096): at the demo's rates that is
/// over a second of one account's reports.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// Subscribers by topic (an account or a symbol).
#[derive(Debug)]
struct Topics<K, T> {
    senders: Mutex<HashMap<K, broadcast::Sender<T>>>,
}

impl<K: Eq + Hash + Clone, T: Clone> Topics<K, T> {
    fn new() -> Self {
        Self {
            senders: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, broadcast::Sender<T>>> {
        // A panic while holding this lock leaves the map consistent (single inserts/removes).
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(&self, topic: &K) -> broadcast::Receiver<T> {
        let mut senders = self.lock();
        // Topics nobody listens to any more are dropped here, so the map stays as small as the
        // set of topics with subscribers.
        senders.retain(|_, sender| sender.receiver_count() > 0);
        senders
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
            .subscribe()
    }

    fn publish(&self, topic: &K, message: T) {
        if let Some(sender) = self.lock().get(topic) {
            // No receiver left: nobody to tell.
            let _ = sender.send(message);
        }
    }

    fn close(&self) {
        self.lock().clear();
    }
}

/// Report and market-data subscribers.
#[derive(Debug)]
pub struct Fanout {
    accounts: Topics<String, ExecutionReport>,
    symbols: Topics<String, MarketDataUpdate>,
}

impl Default for Fanout {
    fn default() -> Self {
        Self::new()
    }
}

impl Fanout {
    /// No subscribers yet.
    pub fn new() -> Self {
        Self {
            accounts: Topics::new(),
            symbols: Topics::new(),
        }
    }

    /// Reports of `account` from now on.
    pub fn subscribe_account(&self, account: &str) -> broadcast::Receiver<ExecutionReport> {
        self.accounts.subscribe(&account.to_owned())
    }

    /// Market data of `symbol` from now on.
    pub fn subscribe_symbol(&self, symbol: &str) -> broadcast::Receiver<MarketDataUpdate> {
        self.symbols.subscribe(&symbol.to_owned())
    }

    /// Sends a report to its account's subscribers.
    pub fn publish_report(&self, report: ExecutionReport) {
        self.accounts.publish(&report.account.clone(), report);
    }

    /// Sends an update to its symbol's subscribers.
    pub fn publish_market_data(&self, update: MarketDataUpdate) {
        self.symbols.publish(&update.symbol.clone(), update);
    }

    /// Ends every subscription (at shutdown): subscribers see their streams end.
    pub fn close(&self) {
        self.accounts.close();
        self.symbols.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(account: &str, sequence: u64) -> ExecutionReport {
        ExecutionReport {
            account: account.to_owned(),
            sequence,
            ..ExecutionReport::default()
        }
    }

    #[tokio::test]
    async fn reports_reach_only_their_accounts_subscribers_in_order() {
        let fanout = Fanout::new();
        let mut a = fanout.subscribe_account("A");
        let mut b = fanout.subscribe_account("B");
        for sequence in 1..=3 {
            fanout.publish_report(report("A", sequence));
        }
        fanout.publish_report(report("B", 9));
        for sequence in 1..=3 {
            assert_eq!(a.recv().await.unwrap().sequence, sequence);
        }
        assert_eq!(b.recv().await.unwrap().sequence, 9);
        assert!(a.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_learns_it_lagged_and_memory_stays_bounded() {
        let fanout = Fanout::new();
        let mut slow = fanout.subscribe_account("A");
        for sequence in 0..(SUBSCRIBER_BUFFER as u64 + 10) {
            fanout.publish_report(report("A", sequence));
        }
        assert!(matches!(slow.recv().await, Err(broadcast::error::RecvError::Lagged(10))));
    }

    #[tokio::test]
    async fn topics_without_subscribers_are_forgotten_and_close_ends_streams() {
        let fanout = Fanout::new();
        for i in 0..100 {
            drop(fanout.subscribe_account(&format!("gone-{i}")));
        }
        let mut kept = fanout.subscribe_symbol("AAPL");
        let _ = fanout.subscribe_account("last");
        assert!(fanout.accounts.lock().len() <= 2, "unsubscribed topics are dropped");
        fanout.close();
        assert!(matches!(kept.recv().await, Err(broadcast::error::RecvError::Closed)));
    }
}
