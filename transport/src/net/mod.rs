//! Sockets: tuning options applied through socket2, and the addresses Volley listens on and
//! connects to.

mod address;
#[cfg(not(loom))]
mod polled;
#[cfg(all(feature = "quic", not(loom)))]
pub(crate) mod quic;
mod socket;
#[cfg(not(loom))]
mod stream;
#[cfg(loom)]
#[path = "stream_loom.rs"]
mod stream;
#[cfg(all(feature = "tls", not(loom)))]
pub(crate) mod tls;

pub use address::{Address, AddressParseError, ToAddress};
#[cfg(not(loom))]
pub use polled::PolledStream;
#[cfg(all(feature = "quic", not(loom)))]
pub use quic::QuicStream;
pub use socket::{AppliedSocketOptions, DEFAULT_UNIX_SEND_BUFFER, KeepaliveConfig, SocketConfig};
pub use stream::Stream;
#[cfg(all(feature = "tls", not(loom)))]
pub use tls::TlsStream;
