//! [`Caller`] for [`BalancedChannel`], so generated clients run over it unchanged.

use std::future::Future;
use std::time::Instant;

use super::BalancedChannel;
use crate::client::{CallOptions, Caller, Client};
use crate::response::Response;
use crate::status::Status;
use crate::wire::MethodId;

impl Caller for BalancedChannel {
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Self::unary(self, method, request, options)
    }

    fn unary_response<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Self::unary_response(self, method, request, options)
    }

    /// The connection of the endpoint p2c picks for one streaming call (server, client or
    /// bidirectional): each stream picks its own, and open streams count in the endpoints' load.
    fn ready(&self, options: &CallOptions) -> impl Future<Output = Result<Client, Status>> + Send {
        self.stream_client(options.deadline_from(Instant::now(), self.default_timeout()))
    }
}
