//! The status a caller gets for a message the peer's max frame size cannot carry.

use crate::status::Status;

/// The status for a message too large for the peer's max frame size.
pub(crate) fn frame_too_large(len: usize, max: u32) -> Status {
    Status::resource_exhausted(format!(
        "message of {len} bytes is over the peer's max frame size of {max} bytes; send smaller messages or raise max_frame_size on the peer"
    ))
}
