//! Streaming calls on a [`Client`]: server-streaming, client-streaming and bidirectional.

use std::time::Instant;

use super::{CallOptions, Client};
use crate::observe::CallObserver;
use crate::status::Status;
use crate::streaming::{Deadline, StreamSender, Streaming};
use crate::wire::{Body, MethodId};

impl Client {
    /// Sends `request` and returns the stream of responses. The call's deadline, if any, covers
    /// the whole stream; dropping the stream cancels the call.
    pub async fn server_streaming<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> Result<Streaming<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let start = Instant::now();
        let deadline = options.deadline_from(start);
        let mut observer = CallObserver::client(method);
        let call_id = self
            .open_call_as(method, &options, (start, deadline), Some(Body::prepare(request)), true, true)
            .await
            .inspect_err(|status| observer.finish(self.shared().recorder(), status.code()))?;
        observer.client_opened(self.shared().recorder(), method, call_id, start);
        Ok(Streaming::new(self.shared().clone(), call_id, None, Deadline::new(deadline), true).observed(observer))
    }

    /// Opens a call whose requests are a stream: send them with the returned sender, close it,
    /// then read the one response with [`Streaming::single`].
    pub async fn client_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> Result<(StreamSender<Req>, Streaming<Resp>), Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        self.bidi_streaming(method, options).await
    }

    /// Opens a call with a stream in each direction. Send requests with the sender (closing or
    /// dropping it ends them) and read responses from the stream (dropping it cancels the call).
    pub async fn bidi_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> Result<(StreamSender<Req>, Streaming<Resp>), Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let start = Instant::now();
        let deadline = options.deadline_from(start);
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
