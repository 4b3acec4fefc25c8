//! Streams of messages on a call, for client-, server- and bidirectional-streaming calls: a
//! [`Streaming`] receives, a [`StreamSender`] sends; a [`ClientStreamingCall`] is both halves of a
//! client-streaming call on the client. Both sides of a connection use the same
//! two types.
//!
//! Flow control is per call and per connection (docs/PROTOCOL.md, "Flow control"): a sender waits
//! when the receiver has not granted room, so a receiver that stops reading stops its sender
//! within one window, and a slow stream never blocks other calls on the connection.

mod deadline;
mod receive;
mod scope;
mod send;
mod upload;

pub(crate) use deadline::Deadline;
pub use receive::Streaming;
pub(crate) use scope::in_scope;
pub use send::StreamSender;
pub(crate) use send::send_response_head;
pub use upload::ClientStreamingCall;
