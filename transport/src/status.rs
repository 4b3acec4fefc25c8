//! Call outcomes: the status [`Code`] and the [`Status`] a call ends with.
//!
//! The codes and their meanings are gRPC's, so a tonic user reads them the same way. On the wire a
//! code is one byte (see `docs/PROTOCOL.md`, "Status codes").

use std::fmt;

use crate::wire::Metadata;

/// The outcome class of a call, with gRPC's 17 meanings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// The call succeeded.
    Ok = 0,
    /// The call was cancelled, usually by the caller.
    Cancelled = 1,
    /// An error with no better code; check the message.
    Unknown = 2,
    /// The caller sent an argument the handler rejects; fix the request.
    InvalidArgument = 3,
    /// The deadline passed before the call finished; retry with a longer deadline if it is idempotent.
    DeadlineExceeded = 4,
    /// The requested entity does not exist.
    NotFound = 5,
    /// The entity the caller tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not do this.
    PermissionDenied = 7,
    /// A resource (a limit, a quota, memory) ran out; back off before retrying.
    ResourceExhausted = 8,
    /// The system is not in a state the operation needs; fix the state before retrying.
    FailedPrecondition = 9,
    /// The operation was aborted, typically by a concurrency conflict; retry at a higher level.
    Aborted = 10,
    /// The operation went past the valid range.
    OutOfRange = 11,
    /// The method is not implemented by this server.
    Unimplemented = 12,
    /// An invariant broke inside the transport or the handler; a bug somewhere.
    Internal = 13,
    /// The service is unavailable now (connection lost, server shutting down); retry with backoff.
    Unavailable = 14,
    /// Data was lost or corrupted.
    DataLoss = 15,
    /// The caller did not present valid credentials.
    Unauthenticated = 16,
}

impl Code {
    /// The code for a wire byte; unknown values map to [`Code::Unknown`], as gRPC does.
    pub fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Ok,
            1 => Self::Cancelled,
            3 => Self::InvalidArgument,
            4 => Self::DeadlineExceeded,
            5 => Self::NotFound,
            6 => Self::AlreadyExists,
            7 => Self::PermissionDenied,
            8 => Self::ResourceExhausted,
            9 => Self::FailedPrecondition,
            10 => Self::Aborted,
            11 => Self::OutOfRange,
            12 => Self::Unimplemented,
            13 => Self::Internal,
            14 => Self::Unavailable,
            15 => Self::DataLoss,
            16 => Self::Unauthenticated,
            _ => Self::Unknown,
        }
    }

    /// The code's wire byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The gRPC name of the code, such as `DEADLINE_EXCEEDED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "CANCELLED",
            Self::Unknown => "UNKNOWN",
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Self::NotFound => "NOT_FOUND",
            Self::AlreadyExists => "ALREADY_EXISTS",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Aborted => "ABORTED",
            Self::OutOfRange => "OUT_OF_RANGE",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::DataLoss => "DATA_LOSS",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
