//! `Caller`: what generated clients call through, implemented by [`Client`] and [`Channel`].

use std::future::Future;

use std::time::Instant;

use super::{CallOptions, Channel, Client};
use crate::response::Response;
use crate::status::Status;
use crate::streaming::{ClientStreamingCall, StreamSender, Streaming};
use crate::wire::MethodId;

/// Something that makes calls: a [`Client`] (one connection) or a [`Channel`] (reconnecting).
/// Generated clients are generic over it.
pub trait Caller: Clone + Send + Sync + 'static {
    /// A unary call; see [`Client::unary`].
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default;

    /// A unary call returning the response's metadata too; see [`Client::unary_response`].
    fn unary_response<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default;

    /// A connection ready for a call that must start before `options`' deadline.
    fn ready(&self, options: &CallOptions) -> impl Future<Output = Result<Client, Status>> + Send;

    /// A server-streaming call; see [`Client::server_streaming`].
    fn server_streaming<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Streaming<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        async move { self.ready(&options).await?.server_streaming(method, request, options).await }
    }

    /// A client-streaming call; see [`Client::client_streaming`].
    fn client_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<ClientStreamingCall<Req, Resp>, Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        async move { self.ready(&options).await?.client_streaming(method, options).await }
    }

    /// A bidirectional-streaming call; see [`Client::bidi_streaming`].
    fn bidi_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<(StreamSender<Req>, Streaming<Resp>), Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        async move { self.ready(&options).await?.bidi_streaming(method, options).await }
    }
}

impl Caller for Client {
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

    fn ready(&self, _options: &CallOptions) -> impl Future<Output = Result<Self, Status>> + Send {
        std::future::ready(match self.is_closed() {
            false => Ok(self.clone()),
            true => Err(Status::unavailable(
                "this Client's connection has ended (a Client is one connection and does not reconnect); use a Channel, or a generated client's connect(), which reconnect",
            )),
        })
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

    fn ready(&self, options: &CallOptions) -> impl Future<Output = Result<Client, Status>> + Send {
        self.ready_client(options.deadline_from(Instant::now(), self.default_timeout()))
    }

    // The streaming calls go through the channel, so its interceptors see them.

    fn server_streaming<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Streaming<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Self::server_streaming(self, method, request, options)
    }

    fn client_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<ClientStreamingCall<Req, Resp>, Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        Self::client_streaming(self, method, options)
    }

    fn bidi_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<(StreamSender<Req>, Streaming<Resp>), Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        Self::bidi_streaming(self, method, options)
    }
}
