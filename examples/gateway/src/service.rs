//! The generated `OrderEntry` and `Admin` services, implemented over the [`Gateway`].

use tokio::sync::{broadcast, mpsc};
use volley::server::CallContext;
use volley::{Request, Response, Status, StreamSender, Streaming};

use crate::gateway::{Gateway, Intake, Rejected};
use crate::history::Resumed;
use crate::proto::admin_server::Admin;
use crate::proto::journal::record::Command;
use crate::proto::order_entry_server::OrderEntry;
use crate::proto::{
    CancelOrderRequest, ExecType, ExecutionReport, KillSwitchRequest, KillSwitchResponse, MarketDataUpdate, NewOrderRequest, OrderCommand,
    OrderQuery, OrderStatus, RejectReason, ReplaceOrderRequest, SubscribeMarketData, SubscribeReports, order_command,
};

/// Commands of one order stream taken in but not yet acknowledged (256): the stream's
/// pipeline depth; beyond it the stream stops reading until acknowledgements catch up.
pub const ORDER_STREAM_DEPTH: usize = 256;

/// The services, ready for `Server::builder().add_service(...)`.
#[derive(Clone, Debug)]
pub struct Services {
    gateway: Gateway,
}

impl Services {
    /// Services over `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// The session (connection id) of a call, watched for cancel-on-disconnect when `cod`.
    fn session(&self, context: &CallContext, cod: bool) -> u64 {
        match context.connection() {
            Some(connection) => {
                if cod {
                    self.gateway.watch_session(connection);
                }
                connection.id()
            }
            None => 0,
        }
    }

    async fn new_order_command(&self, context: &CallContext, order: NewOrderRequest) -> Result<ExecutionReport, Status> {
        let session = self.session(context, order.cancel_on_disconnect);
        self.gateway.submit(session, Command::NewOrder(order)).await
    }
}

/// A report rejecting a command that names no known kind (an empty `OrderCommand`).
fn empty_command_reject() -> ExecutionReport {
    ExecutionReport {
        exec_type: ExecType::Reject as i32,
        reject_reason: RejectReason::Unspecified as i32,
        text: "the order command is empty: set new_order, cancel or replace".into(),
        ..ExecutionReport::default()
    }
}

/// The status for a subscriber that fell too far behind.
fn lagged(skipped: u64) -> Status {
    Status::resource_exhausted(format!(
        "the subscriber fell {skipped} messages behind and was dropped; read faster or resubscribe"
    ))
}

impl OrderEntry for Services {
    async fn new_order(&self, request: Request<NewOrderRequest>) -> Result<Response<ExecutionReport>, Status> {
        let (order, context) = request.into_parts();
        self.new_order_command(&context, order).await.map(Response::new)
    }

    async fn cancel_order(&self, request: Request<CancelOrderRequest>) -> Result<Response<ExecutionReport>, Status> {
        let (cancel, context) = request.into_parts();
        let session = self.session(&context, false);
        self.gateway.submit(session, Command::Cancel(cancel)).await.map(Response::new)
    }

    async fn replace_order(&self, request: Request<ReplaceOrderRequest>) -> Result<Response<ExecutionReport>, Status> {
        let (replace, context) = request.into_parts();
        let session = self.session(&context, false);
        self.gateway.submit(session, Command::Replace(replace)).await.map(Response::new)
    }

    async fn query_order(&self, request: Request<OrderQuery>) -> Result<Response<ExecutionReport>, Status> {
        let query = request.into_inner();
        let found = self.gateway.query(&query.account, &query.cl_ord_id).await?;
        Ok(Response::new(found.unwrap_or_else(|| ExecutionReport {
            account: query.account,
            cl_ord_id: query.cl_ord_id,
            exec_type: ExecType::Reject as i32,
            // As every reject: the status says the command (here the query) was refused.
            status: OrderStatus::Rejected as i32,
            reject_reason: RejectReason::UnknownOrder as i32,
            text: "no order with this cl_ord_id for this account".into(),
            ..ExecutionReport::default()
        })))
    }

    async fn order_stream(
        &self,
        request: Request<Streaming<OrderCommand>>,
        mut responses: StreamSender<ExecutionReport>,
    ) -> Result<(), Status> {
        let (mut commands, context) = request.into_parts();
        let (pipeline, mut acknowledgements) = mpsc::channel::<Intake>(ORDER_STREAM_DEPTH);
        // Takes commands in as fast as they come, so the journal batches them.
        let intake = async {
            while let Some(command) = commands.message().await? {
                let intake = match command.command {
                    Some(order_command::Command::NewOrder(order)) => {
                        let session = self.session(&context, order.cancel_on_disconnect);
                        self.gateway.intake(session, Command::NewOrder(order))?
                    }
                    Some(order_command::Command::Cancel(cancel)) => {
                        self.gateway.intake(self.session(&context, false), Command::Cancel(cancel))?
                    }
                    Some(order_command::Command::Replace(replace)) => {
                        self.gateway.intake(self.session(&context, false), Command::Replace(replace))?
                    }
                    None => Intake::Rejected(Rejected::stateless(empty_command_reject())),
                };
                if pipeline.send(intake).await.is_err() {
                    break;
                }
            }
            drop(pipeline);
            Ok::<_, Status>(())
        };
        // Answers each command in order once what it depends on is durable.
        let answer = async {
            while let Some(intake) = acknowledgements.recv().await {
                let report = self.gateway.answer(intake).await?;
                responses.send(&report).await?;
            }
            Ok::<_, Status>(())
        };
        tokio::try_join!(intake, answer)?;
        Ok(())
    }

    async fn execution_reports(
        &self,
        request: Request<SubscribeReports>,
        mut responses: StreamSender<ExecutionReport>,
    ) -> Result<(), Status> {
        let SubscribeReports { account, after_sequence } = request.into_inner();
        if account.is_empty() {
            return Err(Status::invalid_argument("name the account to subscribe to"));
        }
        let Resumed {
            after,
            backlog,
            live: mut reports,
        } = self.gateway.subscribe_reports(&account, after_sequence)?;
        let _subscribed = Subscribed::new(&self.gateway);
        // Subscribed now: say so, with where the stream continues, so the subscriber knows that
        // every report after it arrives here. Only durable reports are recorded, so the
        // sequence it names is durable.
        let confirmation = ExecutionReport {
            sequence: after,
            text: "subscribed: every report after this sequence follows".into(),
            account,
            ..ExecutionReport::default()
        };
        responses.send_now(&confirmation).await?;
        for report in &backlog {
            responses.send(report).await?;
        }
        loop {
            match reports.recv().await {
                Ok(report) => responses.send(&report).await?,
                Err(broadcast::error::RecvError::Lagged(skipped)) => return Err(lagged(skipped)),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    async fn market_data(
        &self,
        request: Request<SubscribeMarketData>,
        mut responses: StreamSender<MarketDataUpdate>,
    ) -> Result<(), Status> {
        let symbol = request.into_inner().symbol;
        // Subscribe first, then read the top, so no update falls between the two.
        let mut updates = self.gateway.fanout().subscribe_symbol(&symbol);
        let Some(top) = self.gateway.top_of_book(&symbol).await? else {
            return Err(Status::not_found(format!("unknown symbol `{symbol}`")));
        };
        let _subscribed = Subscribed::new(&self.gateway);
        let mut last = top.sequence;
        responses.send(&top).await?;
        loop {
            match updates.recv().await {
                Ok(update) if update.sequence <= last => {}
                Ok(update) => {
                    last = update.sequence;
                    responses.send(&update).await?;
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => return Err(lagged(skipped)),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}

impl Admin for Services {
    async fn set_kill_switch(&self, request: Request<KillSwitchRequest>) -> Result<Response<KillSwitchResponse>, Status> {
        let report = self.gateway.submit(0, Command::KillSwitch(request.into_inner())).await?;
        if report.exec_type == ExecType::Reject as i32 {
            return Err(Status::invalid_argument(report.text));
        }
        Ok(Response::new(KillSwitchResponse {}))
    }
}

/// Counts an open subscription in the metrics while it lives.
struct Subscribed<'a> {
    gateway: &'a Gateway,
}

impl<'a> Subscribed<'a> {
    fn new(gateway: &'a Gateway) -> Self {
        gateway.metrics().subscribers(1);
        Self { gateway }
    }
}

impl Drop for Subscribed<'_> {
    fn drop(&mut self) {
        self.gateway.metrics().subscribers(-1);
    }
}
