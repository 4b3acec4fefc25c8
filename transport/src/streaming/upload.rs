//! `ClientStreamingCall`: the client's half of a client-streaming call, in a shape that cannot
//! wait for ever.

use super::{StreamSender, Streaming};
use crate::status::Status;

/// A client-streaming call in progress: send the requests, then [`finish`](Self::finish) it to
/// close the request stream and get the one response.
///
/// `finish` takes the call by value, so the request stream is always closed before the response
/// is awaited: there is no way to wait for a response the server cannot send yet. Dropping the
/// call without finishing it cancels it on the server.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use volley::{CallOptions, Client, MethodId};
///
/// let client = Client::connect("127.0.0.1:7000").await?;
/// let mut call = client
///     .client_streaming::<String, u64>(MethodId::from_name("/kv.Store/BatchPut"), CallOptions::default())
///     .await?;
/// for key in ["a", "b", "c"] {
///     call.send(&key.to_owned()).await?;
/// }
/// let stored: u64 = call.finish().await?;
/// # Ok(()) }
/// ```
pub struct ClientStreamingCall<Req, Resp> {
    sender: StreamSender<Req>,
    response: Streaming<Resp>,
}

impl<Req, Resp> std::fmt::Debug for ClientStreamingCall<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStreamingCall").field("sender", &self.sender).finish()
    }
}

impl<Req: prost::Message, Resp: prost::Message + Default> ClientStreamingCall<Req, Resp> {
    pub(crate) fn new(sender: StreamSender<Req>, response: Streaming<Resp>) -> Self {
        Self { sender, response }
    }

    /// Sends one request, waiting for flow-control room; see [`StreamSender::send`]. An `Err`
    /// means the call is over: the server answered early (its status is here, and again from
    /// [`finish`](Self::finish)), the deadline passed or the connection was lost.
    pub async fn send(&mut self, request: &Req) -> Result<(), Status> {
        self.sender.send(request).await
    }

    /// Sends one request and writes it at once if the writer is idle; see
    /// [`StreamSender::send_now`].
    pub async fn send_now(&mut self, request: &Req) -> Result<(), Status> {
        self.sender.send_now(request).await
    }

    /// Closes the request stream and waits for the response (or the call's status). The
    /// call's deadline, if any, covers the wait.
    pub async fn finish(self) -> Result<Resp, Status> {
        let Self { mut sender, response } = self;
        sender.close();
        response.single().await
    }
}
