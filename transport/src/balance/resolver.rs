//! Discovery: a [`Resolver`] says which addresses a balanced channel should use. The channel
//! asks it at start, on an interval, and soon after a connection is lost. [`DnsResolver`] looks
//! a name up (A and AAAA; a Kubernetes headless service answers with every ready replica);
//! [`StaticResolver`] is a fixed list. Tests and users plug their own.

use std::future::Future;
use std::pin::Pin;

use crate::net::Address;

/// Why a resolution gave no addresses. The channel keeps its current endpoints meanwhile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The name lookup failed.
    #[error("could not resolve {name}: {source}; is the name right and DNS reachable?")]
    Lookup {
        /// The name looked up.
        name: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The answer had no address.
    #[error("{name} resolved to no address; the channel keeps the endpoints it had")]
    Empty {
        /// The name looked up.
        name: String,
    },
}

/// The future a [`Resolver`] returns.
pub type Resolution<'a> = Pin<Box<dyn Future<Output = Result<Vec<Address>, ResolveError>> + Send + 'a>>;

/// Says which addresses a balanced channel should call. An answer replaces the channel's set:
/// endpoints whose address is kept keep their connection; new ones are connected on first use;
/// missing ones take no new calls and close once their calls end.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use volley::balance::{Resolution, Resolver};
/// use volley::net::Address;
///
/// /// Answers whatever a test puts in.
/// #[derive(Debug, Clone, Default)]
/// struct Switchable(Arc<Mutex<Vec<Address>>>);
///
/// impl Resolver for Switchable {
///     fn resolve(&self) -> Resolution<'_> {
///         let answer = self.0.lock().unwrap().clone();
///         Box::pin(async move { Ok(answer) })
///     }
/// }
/// ```
pub trait Resolver: Send + Sync + std::fmt::Debug + 'static {
    /// The addresses now.
    fn resolve(&self) -> Resolution<'_>;
}

/// A fixed list of addresses.
#[derive(Clone, Debug)]
pub struct StaticResolver {
    addresses: Vec<Address>,
}

impl StaticResolver {
    /// The list `addresses`.
    pub fn new(addresses: Vec<Address>) -> Self {
        Self { addresses }
    }
}

impl Resolver for StaticResolver {
    fn resolve(&self) -> Resolution<'_> {
        let addresses = self.addresses.clone();
        Box::pin(async move { Ok(addresses) })
    }
}

/// Looks up `host` with the system resolver (A and AAAA records) and pairs every address with
/// `port`. Point it at a Kubernetes headless service (`orders.prod.svc.cluster.local`) to reach
/// every replica.
///
/// ```
/// use volley::balance::DnsResolver;
///
/// let resolver = DnsResolver::new("localhost", 7000);
/// assert_eq!(resolver.name(), "localhost:7000");
/// ```
#[derive(Clone, Debug)]
pub struct DnsResolver {
    name: String,
}

impl DnsResolver {
    /// Resolves `host` and uses `port` on every address it returns.
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            name: format!("{host}:{port}"),
        }
    }

    /// The `host:port` looked up.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Resolver for DnsResolver {
    fn resolve(&self) -> Resolution<'_> {
        Box::pin(async move {
            let found = tokio::net::lookup_host(self.name.as_str())
                .await
                .map_err(|source| ResolveError::Lookup {
                    name: self.name.clone(),
                    source,
                })?;
            let mut addresses: Vec<Address> = Vec::new();
            for socket in found {
                let address = Address::Tcp(socket);
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
            if addresses.is_empty() {
                return Err(ResolveError::Empty { name: self.name.clone() });
            }
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dns_resolves_localhost_to_loopback() {
        let addresses = DnsResolver::new("localhost", 7000).resolve().await.unwrap();
        assert!(!addresses.is_empty());
        for address in addresses {
            let Address::Tcp(socket) = address else { panic!("a TCP address") };
            assert!(socket.ip().is_loopback() && socket.port() == 7000, "{socket}");
        }
    }
}
