//! The client-side router: one reconnecting channel per shard, and each command sent to the
//! shard that trades its symbol.
//!
//! Cancels, replaces and queries name an order, not a symbol, so the caller says the symbol
//! (as FIX's OrderCancelRequest and OrderCancelReplaceRequest carry Symbol, tag 55). The kill
//! switch is account-wide: it goes to every shard at once and succeeds only when every shard
//! has it durable.

use volley::net::Address;
use volley::{Channel, Status};

use super::plan::{ShardError, ShardId, ShardPlan};
use crate::proto::admin_client::AdminClient;
use crate::proto::order_entry_client::OrderEntryClient;
use crate::proto::{CancelOrderRequest, ExecutionReport, KillSwitchRequest, NewOrderRequest, OrderQuery, ReplaceOrderRequest};

/// A command the router could not route or a shard did not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The plan does not know the symbol (or was built wrong); check the configuration.
    #[error(transparent)]
    Plan(#[from] ShardError),
    /// The router was given a different number of addresses than the plan has shards.
    #[error("the plan has {shards} shards but {addresses} addresses were given; give one per shard, in shard order")]
    Addresses {
        /// Shards in the plan.
        shards: u32,
        /// Addresses given.
        addresses: usize,
    },
    /// A shard could not be reached at start; check that it runs and listens at `address`.
    #[error("cannot connect to {shard} at {address}: {source}")]
    Connect {
        /// The shard.
        shard: ShardId,
        /// Where it was expected.
        address: Address,
        /// Why the connection failed (boxed: the error stays small on the path that succeeds).
        source: Box<volley::Error>,
    },
    /// The shard answered with an error status (it is down, draining or its journal failed):
    /// only its symbols are affected. Retry once it is back; a kill switch may be sent again.
    #[error("{shard} failed the call: {status}")]
    Call {
        /// The shard.
        shard: ShardId,
        /// Its status.
        status: Status,
    },
}

impl RouteError {
    /// The shard the error came from, if one did.
    pub fn shard(&self) -> Option<ShardId> {
        match self {
            Self::Connect { shard, .. } | Self::Call { shard, .. } => Some(*shard),
            Self::Plan(_) | Self::Addresses { .. } => None,
        }
    }
}

/// One shard as the router sees it.
#[derive(Clone, Debug)]
struct Routed {
    address: Address,
    orders: OrderEntryClient<Channel>,
    admin: AdminClient<Channel>,
}

/// Sends each command to the shard that trades its symbol.
///
/// ```no_run
/// use gateway::config::Config;
/// use gateway::proto::{NewOrderRequest, OrderType, Side, TimeInForce};
/// use gateway::shard::{ShardPlan, ShardRouter};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let plan = ShardPlan::new(&Config::default().symbols, 3)?;
/// let addresses = ["127.0.0.1:7070", "127.0.0.1:7071", "127.0.0.1:7072"];
/// let router = ShardRouter::connect(plan, addresses.iter().map(|a| a.parse()).collect::<Result<_, _>>()?).await?;
/// let ack = router
///     .new_order(NewOrderRequest {
///         account: "acct-1".into(),
///         cl_ord_id: "order-1".into(),
///         symbol: "MSFT".into(), // shard 1
///         side: Side::Buy as i32,
///         order_type: OrderType::Limit as i32,
///         time_in_force: TimeInForce::Day as i32,
///         price: 41_000,
///         quantity: 10,
///         cancel_on_disconnect: false,
///         possible_resend: false,
///     })
///     .await?;
/// println!("acknowledged at sequence {}", ack.sequence);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ShardRouter {
    plan: ShardPlan,
    shards: Vec<Routed>,
}

impl ShardRouter {
    /// Connects to every shard: `addresses[k]` is shard `k`'s order-entry address.
    pub async fn connect(plan: ShardPlan, addresses: Vec<Address>) -> Result<Self, RouteError> {
        if addresses.len() != plan.shards() as usize {
            return Err(RouteError::Addresses {
                shards: plan.shards(),
                addresses: addresses.len(),
            });
        }
        let mut shards = Vec::with_capacity(addresses.len());
        for (shard, address) in plan.shard_ids().zip(addresses) {
            let channel = Channel::builder()
                .connect(address.clone())
                .await
                .map_err(|source| RouteError::Connect {
                    shard,
                    address: address.clone(),
                    source: Box::new(source),
                })?;
            shards.push(Routed {
                address,
                orders: OrderEntryClient::new(channel.clone()),
                admin: AdminClient::new(channel),
            });
        }
        Ok(Self { plan, shards })
    }

    /// The symbol → shard map.
    pub fn plan(&self) -> &ShardPlan {
        &self.plan
    }

    /// Where `shard` is reached.
    pub fn address(&self, shard: ShardId) -> Option<&Address> {
        self.shards.get(shard.0 as usize).map(|routed| &routed.address)
    }

    /// The client of the shard that trades `symbol`, for any other call (report streams, market
    /// data, order streams, calls with options).
    pub fn orders_for(&self, symbol: &str) -> Result<(ShardId, &OrderEntryClient<Channel>), RouteError> {
        let shard = self.plan.shard_of(symbol)?;
        let routed = self.shards.get(shard.0 as usize).ok_or(ShardError::NoSuchShard {
            shard,
            shards: self.plan.shards(),
        })?;
        Ok((shard, &routed.orders))
    }

    /// A new order, to the shard of `order.symbol`.
    pub async fn new_order(&self, order: NewOrderRequest) -> Result<ExecutionReport, RouteError> {
        let (shard, orders) = self.orders_for(&order.symbol)?;
        orders.new_order(order).await.map_err(|status| RouteError::Call { shard, status })
    }

    /// A cancel of an order on `symbol`.
    pub async fn cancel_order(&self, symbol: &str, cancel: CancelOrderRequest) -> Result<ExecutionReport, RouteError> {
        let (shard, orders) = self.orders_for(symbol)?;
        orders
            .cancel_order(cancel)
            .await
            .map_err(|status| RouteError::Call { shard, status })
    }

    /// A replace of an order on `symbol`.
    pub async fn replace_order(&self, symbol: &str, replace: ReplaceOrderRequest) -> Result<ExecutionReport, RouteError> {
        let (shard, orders) = self.orders_for(symbol)?;
        orders
            .replace_order(replace)
            .await
            .map_err(|status| RouteError::Call { shard, status })
    }

    /// The state of an order on `symbol`.
    pub async fn query_order(&self, symbol: &str, query: OrderQuery) -> Result<ExecutionReport, RouteError> {
        let (shard, orders) = self.orders_for(symbol)?;
        orders.query_order(query).await.map_err(|status| RouteError::Call { shard, status })
    }

    /// Engages or lifts a kill switch (an account's, or the global one for an empty account) on
    /// every shard at once; returns once every shard has it durable. If a shard fails, the
    /// others keep the switch and the first failure is returned: send the same request again
    /// (it is idempotent) until it succeeds.
    pub async fn set_kill_switch(&self, request: KillSwitchRequest) -> Result<(), RouteError> {
        // All shards at once: spawned first, then awaited in shard order.
        let calls: Vec<_> = self
            .shards
            .iter()
            .map(|routed| {
                let (admin, request) = (routed.admin.clone(), request.clone());
                tokio::spawn(async move { admin.set_kill_switch(request).await })
            })
            .collect();
        let mut first_failure = None;
        for (shard, call) in self.plan.shard_ids().zip(calls) {
            let outcome = call
                .await
                .unwrap_or_else(|err| Err(Status::internal(format!("the kill-switch call failed: {err}"))));
            if let Err(status) = outcome {
                first_failure.get_or_insert(RouteError::Call { shard, status });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}
