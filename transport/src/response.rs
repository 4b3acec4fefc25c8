//! `Response`: a response message with the metadata that travels with it.

use crate::wire::Metadata;

/// A response message with its head metadata (sent before the message) and trailing metadata
/// (sent with the call's final OK status), like tonic's `Response`.
///
/// A handler returns one to send metadata with a successful answer; a plain message is the
/// same as `Response::new(message)`. On the client, `Client::unary_response` and the generated
/// `_with` methods return one, so the caller can read what the server sent.
///
/// ```
/// use volley::{Metadata, Response};
///
/// let mut head = Metadata::new();
/// head.insert("x-served-by", "replica-2").unwrap();
/// let response = Response::new(7_u64).with_metadata(head);
/// assert_eq!(response.metadata().get("x-served-by"), Some(&b"replica-2"[..]));
/// assert_eq!(response.into_inner(), 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response<T> {
    message: T,
    metadata: Metadata,
    trailers: Metadata,
}

impl<T> Response<T> {
    /// A response with no metadata.
    pub fn new(message: T) -> Self {
        Self {
            message,
            metadata: Metadata::new(),
            trailers: Metadata::new(),
        }
    }

    /// With `metadata` in the response head.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// With `trailers` on the final status.
    #[must_use]
    pub fn with_trailers(mut self, trailers: Metadata) -> Self {
        self.trailers = trailers;
        self
    }

    /// The head metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The head metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// The trailing metadata.
    pub fn trailers(&self) -> &Metadata {
        &self.trailers
    }

    /// The trailing metadata, mutably.
    pub fn trailers_mut(&mut self) -> &mut Metadata {
        &mut self.trailers
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message, by value.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// Message, head metadata and trailers.
    pub fn into_parts(self) -> (T, Metadata, Metadata) {
        (self.message, self.metadata, self.trailers)
    }

    /// The same metadata around another message (a decoded one, say).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            message: f(self.message),
            metadata: self.metadata,
            trailers: self.trailers,
        }
    }
}

impl<T> From<T> for Response<T> {
    fn from(message: T) -> Self {
        Self::new(message)
    }
}

/// What a unary or client-streaming handler may answer with: a message, or a [`Response`]
/// carrying metadata too.
pub trait IntoResponse: Send + 'static {
    /// The response message type.
    type Message: prost::Message;

    /// The response.
    fn into_response(self) -> Response<Self::Message>;
}

impl<M: prost::Message + 'static> IntoResponse for M {
    type Message = M;

    fn into_response(self) -> Response<M> {
        Response::new(self)
    }
}

impl<M: prost::Message + 'static> IntoResponse for Response<M> {
    type Message = M;

    fn into_response(self) -> Self {
        self
    }
}
