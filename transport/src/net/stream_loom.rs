//! Under `cfg(loom)` tokio has no sockets: an uninhabited stand-in keeps the write queue
//! compiling, and its models run without direct writes.

use std::io::{self, IoSlice};

/// No stream exists under loom.
#[derive(Debug)]
pub enum Stream {}

impl Stream {
    pub(crate) fn try_write_vectored(&self, _bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match *self {}
    }
}
