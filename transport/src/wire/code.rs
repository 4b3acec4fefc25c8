//! Status codes: the one byte a Status frame or a GoAway carries, with gRPC's meanings.
//!
//! The codes and their meanings are gRPC's, so a tonic user reads them the same way. They live in
//! the wire layer because they are wire bytes; [`Status`](crate::Status) builds on them.

use std::fmt;

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
