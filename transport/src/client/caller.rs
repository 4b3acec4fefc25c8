//! `Caller`: what generated clients call through, implemented by [`Client`] and [`Channel`].

use std::future::Future;

use super::{CallOptions, Channel, Client};
use crate::status::Status;
use crate::wire::MethodId;

/// Something that makes calls: a [`Client`] (one connection) or a [`Channel`] (reconnecting).
/// Generated clients are generic over it.
pub trait Caller: Clone + Send + Sync + 'static {
    /// A unary call; see [`Client::unary`].
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default;
}

impl Caller for Client {
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Self::unary(self, method, request, options)
    }
}

impl Caller for Channel {
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Self::unary(self, method, request, options)
    }
}
