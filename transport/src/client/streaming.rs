//! Streaming calls on a [`Client`]: server-streaming, client-streaming and bidirectional.

use std::time::Instant;

use super::{CallOptions, Client};
use crate::method::CallTarget;
use crate::observe::CallObserver;
use crate::status::Status;
use crate::streaming::{ClientStreamingCall, Deadline, StreamSender, Streaming};
use crate::wire::Body;

impl Client {
    /// Sends `request` and returns the stream of responses once the server's handler has taken
    /// the call (its response head arrived: see [`StreamSender::send_head`] for when a handler
    /// sends it), so whatever the handler set up before its first wait is in place. A call that
    /// fails before its head (an unknown method, a refusal) returns its status here. The call's
    /// deadline, if any, covers the whole stream; dropping the stream cancels the call.
    pub async fn server_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let method = method.method_id();
        let start = Instant::now();
        let deadline = options.deadline_from(start, self.default_timeout());
        let mut observer = CallObserver::client(method);
        let call_id = self
            .open_call_as(method, &options, (start, deadline), Some(Body::prepare(request)), true, true)
            .await
            .inspect_err(|status| observer.finish(self.shared().recorder(), status.code()))?;
        observer.client_opened(self.shared().recorder(), method, call_id, start);
        let mut stream = Streaming::new(self.shared().clone(), call_id, None, Deadline::new(deadline), true).observed(observer);
        stream.wait_for_head().await?;
        Ok(stream)
    }

    /// Opens a call whose requests are a stream: send them with the returned call, then
    /// [`finish`](ClientStreamingCall::finish) it to get the one response.
    pub async fn client_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        options: CallOptions,
    ) -> Result<ClientStreamingCall<Req, Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let (sender, response) = self.bidi_streaming(method.method_id(), options).await?;
        Ok(ClientStreamingCall::new(sender, response))
    }

    /// Opens a call with a stream in each direction. Send requests with the sender (closing or
    /// dropping it ends them) and read responses from the stream (dropping it cancels the call).
    pub async fn bidi_streaming<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        options: CallOptions,
    ) -> Result<(StreamSender<Req>, Streaming<Resp>), Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let method = method.method_id();
        let start = Instant::now();
        let deadline = options.deadline_from(start, self.default_timeout());
        let mut observer = CallObserver::client(method);
        let call_id = self
            .open_call_as::<Req>(method, &options, (start, deadline), None, false, true)
            .await
            .inspect_err(|status| observer.finish(self.shared().recorder(), status.code()))?;
        observer.client_opened(self.shared().recorder(), method, call_id, start);
        let shared = self.shared().clone();
        let sender = StreamSender::new(shared.clone(), call_id, true, Deadline::new(deadline));
        let stream = Streaming::new(shared, call_id, None, Deadline::new(deadline), true).observed(observer);
        Ok((sender, stream))
    }
}
