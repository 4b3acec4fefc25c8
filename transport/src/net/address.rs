//! Where a server listens or a client connects: a TCP socket address or a Unix socket path.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A TCP address (IPv4 or IPv6) or a Unix socket path.
///
/// ```
/// use volley::net::Address;
///
/// let tcp: Address = "127.0.0.1:7000".parse().unwrap();
/// let unix: Address = "unix:/tmp/volley.sock".parse().unwrap();
/// assert!(matches!(tcp, Address::Tcp(_)));
/// assert!(matches!(unix, Address::Unix(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP socket address.
    Tcp(SocketAddr),
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// A QUIC endpoint's UDP address (feature `quic`), written `quic://ip:port`.
    #[cfg(feature = "quic")]
    Quic(SocketAddr),
}

/// An address string that is neither `host:port` nor `unix:/path`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an address: use `ip:port` (e.g. 127.0.0.1:7000, [::1]:7000), `unix:/path/to.sock` or (feature `quic`) `quic://ip:port`"
)]
pub struct AddressParseError(String);

impl std::str::FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        #[cfg(feature = "quic")]
        if let Some(addr) = s.strip_prefix("quic://") {
            return addr.parse().map(Self::Quic).map_err(|_| AddressParseError(s.to_owned()));
        }
        s.parse().map(Self::Tcp).map_err(|_| AddressParseError(s.to_owned()))
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Self::Tcp(addr)
    }
}

impl From<PathBuf> for Address {
    fn from(path: PathBuf) -> Self {
        Self::Unix(path)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            #[cfg(feature = "quic")]
            Self::Quic(addr) => write!(f, "quic://{addr}"),
        }
    }
}

/// Anything that names an [`Address`]: an `Address`, a `SocketAddr`, or a string
/// (`"127.0.0.1:7000"`, `"[::1]:7000"`, `"unix:/tmp/x.sock"`).
pub trait ToAddress {
    /// The address, or why the value is not one.
    fn to_address(&self) -> Result<Address, crate::Error>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address, crate::Error> {
        Ok(self.clone())
    }
}

impl ToAddress for SocketAddr {
    fn to_address(&self) -> Result<Address, crate::Error> {
        Ok(Address::Tcp(*self))
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address, crate::Error> {
        self.parse().map_err(|err: AddressParseError| crate::Error::Config(err.to_string()))
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address, crate::Error> {
        self.as_str().to_address()
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address, crate::Error> {
        (**self).to_address()
    }
}
