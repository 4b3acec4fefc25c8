//! Call outcomes: the status [`Code`] and the [`Status`] a call ends with.
//!
//! The codes and their meanings are gRPC's, so a tonic user reads them the same way. On the wire a
//! code is one byte (see `docs/PROTOCOL.md`, "Status codes").

use std::fmt;

pub use crate::wire::Code;
use crate::wire::Metadata;

/// How a call ended: a [`Code`], a human-readable message and optional trailing metadata.
///
/// Handlers return `Err(Status)` to fail a call; clients receive it as the error of a call.
///
/// ```
/// use volley::{Code, Status};
///
/// let status = Status::not_found("order 42 does not exist; check the client order id");
/// assert_eq!(status.code(), Code::NotFound);
/// assert!(status.message().contains("order 42"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
    metadata: Metadata,
}

macro_rules! status_constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                Self::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message` and no metadata.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            metadata: Metadata::new(),
        }
    }

    /// A status with trailing metadata.
    pub fn with_metadata(code: Code, message: impl Into<String>, metadata: Metadata) -> Self {
        Self {
            code,
            message: message.into(),
            metadata,
        }
    }

    status_constructors! {
        /// A [`Code::Cancelled`] status.
        cancelled => Cancelled,
        /// A [`Code::Unknown`] status.
        unknown => Unknown,
        /// A [`Code::InvalidArgument`] status.
        invalid_argument => InvalidArgument,
        /// A [`Code::DeadlineExceeded`] status.
        deadline_exceeded => DeadlineExceeded,
        /// A [`Code::NotFound`] status.
        not_found => NotFound,
        /// A [`Code::AlreadyExists`] status.
        already_exists => AlreadyExists,
        /// A [`Code::PermissionDenied`] status.
        permission_denied => PermissionDenied,
        /// A [`Code::ResourceExhausted`] status.
        resource_exhausted => ResourceExhausted,
        /// A [`Code::FailedPrecondition`] status.
        failed_precondition => FailedPrecondition,
        /// A [`Code::Aborted`] status.
        aborted => Aborted,
        /// A [`Code::OutOfRange`] status.
        out_of_range => OutOfRange,
        /// A [`Code::Unimplemented`] status.
        unimplemented => Unimplemented,
        /// A [`Code::Internal`] status.
        internal => Internal,
        /// A [`Code::Unavailable`] status.
        unavailable => Unavailable,
        /// A [`Code::DataLoss`] status.
        data_loss => DataLoss,
        /// A [`Code::Unauthenticated`] status.
        unauthenticated => Unauthenticated,
    }

    /// The status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message, meant for people reading logs.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Trailing metadata sent with the status.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Mutable access to the trailing metadata.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Whether a caller may retry the call as it is: the call never reached a handler or the
    /// server asked to be tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.code, Code::Unavailable | Code::ResourceExhausted)
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Status");
        s.field("code", &self.code).field("message", &self.message);
        if !self.metadata.is_empty() {
            s.field("metadata", &self.metadata);
        }
        s.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_byte() {
        for byte in 0..=16u8 {
            assert_eq!(Code::from_u8(byte).as_u8(), byte);
        }
        assert_eq!(Code::from_u8(17), Code::Unknown);
        assert_eq!(Code::from_u8(255), Code::Unknown);
    }

    #[test]
    fn display_names_the_code_and_message() {
        let status = Status::unavailable("connection lost; retry");
        assert_eq!(status.to_string(), "UNAVAILABLE: connection lost; retry");
        assert!(status.is_retryable());
        assert!(!Status::internal("bug").is_retryable());
    }
}
