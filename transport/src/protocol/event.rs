//! What the connection tells the application.

use bytes::Bytes;

use crate::status::Status;
use crate::wire::{CallHead, CallId, Metadata};

/// Something the application must act on, from [`super::Connection::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// (server) A call was opened and accepted: run its handler.
    Request {
        /// The call.
        call_id: CallId,
        /// Method, deadline, metadata.
        head: CallHead,
        /// The first request message, if any.
        message: Option<Bytes>,
        /// The client will send nothing more.
        end_stream: bool,
    },
    /// (client) The response head, and maybe the first message, arrived.
    Response {
        /// The call.
        call_id: CallId,
        /// Response head metadata.
        metadata: Metadata,
        /// The first message, if any.
        message: Option<Bytes>,
        /// The call ended with status OK.
        end_stream: bool,
    },
    /// A stream message arrived on an open call.
    Message {
        /// The call.
        call_id: CallId,
        /// The message.
        message: Bytes,
        /// The peer half-closed after it.
        end_stream: bool,
    },
    /// Messages of the call went straight into its driver record
    /// ([`CallRecord::keep_message`](super::CallRecord::keep_message)) and the record asked for
    /// this: wake whoever waits for them. At most one per call until the driver handles it.
    Arrived {
        /// The call.
        call_id: CallId,
    },
    /// The peer half-closed a call without a message.
    EndOfStream {
        /// The call.
        call_id: CallId,
    },
    /// (client) The call ended with this status. (server) Never emitted.
    Finished {
        /// The call.
        call_id: CallId,
        /// The final status; `Code::Ok` for success.
        status: Status,
    },
    /// (server) The call was cancelled by the client or reset for a protocol violation: drop its
    /// handler.
    Cancelled {
        /// The call.
        call_id: CallId,
    },
    /// The peer is going away; calls above `last_call_id` were refused (the client has already
    /// been given a `Finished` with UNAVAILABLE for each).
    GoAway {
        /// Highest call id the peer accepted.
        last_call_id: CallId,
    },
    /// The peer granted credit on a call, or on the connection ([`CallId::CONNECTION`]): senders
    /// waiting for window may try again.
    Credit {
        /// The call, or the connection.
        call_id: CallId,
    },
    /// A pong answered our keepalive ping.
    PongReceived,
}
