//! Helpers for the gateway's integration tests: a gateway on loopback with a journal in a
//! temporary directory, and orders to send it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gateway::app::RunningGateway;
use gateway::config::Config;
use gateway::proto::order_entry_client::OrderEntryClient;
use gateway::proto::{NewOrderRequest, OrderType, Side, TimeInForce};
use volley::Client;

/// A config for tests: loopback port 0, no metrics endpoint, the journal at `journal`.
pub(crate) fn config(journal: &Path) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        metrics: None,
        journal: journal.to_path_buf(),
        ..Config::default()
    }
}

/// A temporary directory and the journal path in it.
pub(crate) fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = dir.path().join("gateway.journal");
    (dir, journal)
}

/// Starts a gateway with `config`.
pub(crate) async fn start(config: &Config) -> RunningGateway {
    RunningGateway::start(config).await.expect("the gateway starts")
}

/// A client of the gateway, on a connection of its own.
pub(crate) async fn client(gateway: &RunningGateway) -> OrderEntryClient<Client> {
    OrderEntryClient::new(Client::connect(gateway.local_addr().clone()).await.expect("connects"))
}

/// A DAY limit order of `account` on AAPL (reference 18 750).
pub(crate) fn limit(account: &str, cl_ord_id: &str, side: Side, price: i64, quantity: i64) -> NewOrderRequest {
    NewOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        symbol: "AAPL".into(),
        side: side as i32,
        order_type: OrderType::Limit as i32,
        time_in_force: TimeInForce::Day as i32,
        price,
        quantity,
        cancel_on_disconnect: false,
        possible_resend: false,
    }
}
