//! TLS configuration for servers ([`ServerTls`]) and clients ([`ClientTls`]).

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::{ALPN_VOLLEY, TlsError};

/// rustls with ring: TLS 1.3 suites AES-GCM and ChaCha20-Poly1305, key exchange X25519, P-256
/// and P-384. rustls 0.23.48 deprecates ring's provider because ring has no post-quantum key
/// exchange (X25519MLKEM768 needs aws-lc-rs); docs/security.md says what that leaves open.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Credentials(format!("{what}: {err}")))?;
    if certs.is_empty() {
        return Err(TlsError::Credentials(format!("{what}: no `BEGIN CERTIFICATE` block in the PEM")));
    }
    Ok(certs)
}

fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| TlsError::Credentials(format!("private key: {err}")))
}

fn roots(certs: &[CertificateDer<'static>]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert.clone())
            .map_err(|err| TlsError::Credentials(format!("CA certificate: {err}")))?;
    }
    Ok(store)
}

fn certified_key(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<Arc<CertifiedKey>, TlsError> {
    if chain.is_empty() {
        return Err(TlsError::Credentials("the certificate chain is empty".to_owned()));
    }
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|err| TlsError::Credentials(format!("the key does not fit the certificate or is not supported: {err}")))
}

/// The server's certificate, swapped by [`ServerTls::reload`]; each handshake takes the one
/// current when it starts.
#[derive(Debug)]
struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// A server's TLS: its certificate and key, and under mutual TLS the CAs that sign its clients'
/// certificates. TLS 1.3 only, ALPN `volley/1` required. Cloning shares it: a clone's
/// [`ServerTls::reload`] changes the certificate of every server using it.
///
/// ```no_run
/// use volley::tls::ServerTls;
///
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerTls::builder_from_pem(&std::fs::read("server.pem")?, &std::fs::read("server.key")?)?
///     .client_ca_pem(&std::fs::read("clients-ca.pem")?)? // mutual TLS: clients need a certificate
///     .build()?;
/// let server = volley::Server::builder().tls(tls.clone()).build()?;
/// // Later, after the certificate was renewed: new connections get the new one.
/// tls.reload_pem(&std::fs::read("server.pem")?, &std::fs::read("server.key")?)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    cert: Arc<ReloadableCert>,
    mutual: bool,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("mutual", &self.mutual).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server TLS configuration with `chain` (leaf first) and its private key.
    pub fn builder(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerTlsBuilder {
        ServerTlsBuilder {
            chain,
            key,
            client_cas: None,
            client_optional: false,
        }
    }

    /// Like [`ServerTls::builder`], from PEM text.
    pub fn builder_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<ServerTlsBuilder, TlsError> {
        Ok(Self::builder(
            certificates_from_pem(chain_pem, "certificate chain")?,
            key_from_pem(key_pem)?,
        ))
    }

    /// Replaces the certificate and key without a restart: handshakes that start from now on
    /// use the new ones; connections already open keep theirs. On an error the old ones stay.
    pub fn reload(&self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<(), TlsError> {
        let key = certified_key(chain, key)?;
        *self.cert.current.write().unwrap_or_else(PoisonError::into_inner) = key;
        Ok(())
    }

    /// Like [`ServerTls::reload`], from PEM text.
    pub fn reload_pem(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        self.reload(certificates_from_pem(chain_pem, "certificate chain")?, key_from_pem(key_pem)?)
    }

    /// Whether clients must (or, see [`ServerTlsBuilder::optional_client_certificate`], may)
    /// present a certificate.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    pub(crate) fn rustls_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

/// Builds a [`ServerTls`]; from [`ServerTls::builder`].
pub struct ServerTlsBuilder {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_cas: Option<Vec<CertificateDer<'static>>>,
    client_optional: bool,
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("chain", &self.chain.len())
            .field("client_cas", &self.client_cas.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl ServerTlsBuilder {
    /// Mutual TLS: every client must present a certificate that one of `cas` signed; the
    /// handshake of one that does not fails.
    #[must_use]
    pub fn client_ca_certificates(mut self, cas: Vec<CertificateDer<'static>>) -> Self {
        self.client_cas = Some(cas);
        self
    }

    /// Like [`ServerTlsBuilder::client_ca_certificates`], from PEM text.
    pub fn client_ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        Ok(self.client_ca_certificates(certificates_from_pem(pem, "client CA")?))
    }

    /// With client CAs set: clients may also connect without a certificate (their connections
    /// then have no [`PeerIdentity`](super::PeerIdentity)); one that presents a certificate must
    /// still present a valid one.
    #[must_use]
    pub fn optional_client_certificate(mut self) -> Self {
        self.client_optional = true;
        self
    }

    /// Checks the certificate, key and CAs.
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let provider = provider();
        let cert = Arc::new(ReloadableCert {
            current: RwLock::new(certified_key(self.chain, self.key)?),
        });
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|err| TlsError::Credentials(err.to_string()))?;
        let mutual = self.client_cas.is_some();
        let builder = match self.client_cas {
            Some(cas) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&cas)?), provider);
                let verifier = if self.client_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|err| TlsError::Credentials(format!("client CA: {err}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![ALPN_VOLLEY.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            cert,
            mutual,
        })
    }
}

/// A client's TLS: the CAs it trusts, the name it expects in the server's certificate, and
/// optionally its own certificate for mutual TLS. TLS 1.3 only, ALPN `volley/1`.
///
/// ```no_run
/// use volley::Client;
/// use volley::tls::ClientTls;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ClientTls::builder()
///     .ca_pem(&std::fs::read("ca.pem")?)?
///     .server_name("orders.internal")
///     .client_certificate_pem(&std::fs::read("me.pem")?, &std::fs::read("me.key")?)? // mutual TLS
///     .build()?;
/// let client = Client::builder().tls(tls).connect("10.0.0.7:7443").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// A builder with no trusted CA yet.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder::default()
    }

    /// Uses a rustls configuration as it is (for roots from the platform or webpki-roots, a
    /// custom verifier, session resumption settings). It must offer ALPN `volley/1` (see
    /// [`ALPN_VOLLEY`](super::ALPN_VOLLEY)); the server name defaults to the address's IP.
    pub fn from_rustls(config: Arc<ClientConfig>, server_name: Option<ServerName<'static>>) -> Self {
        Self { config, server_name }
    }

    pub(crate) fn rustls_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to check the server's certificate against: the configured one, or `ip`.
    pub(crate) fn server_name(&self, ip: std::net::IpAddr) -> ServerName<'static> {
        self.server_name.clone().unwrap_or(ServerName::IpAddress(ip.into()))
    }
}

/// Builds a [`ClientTls`]; from [`ClientTls::builder`].
#[derive(Default)]
pub struct ClientTlsBuilder {
    cas: Vec<CertificateDer<'static>>,
    server_name: Option<String>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl fmt::Debug for ClientTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTlsBuilder")
            .field("cas", &self.cas.len())
            .field("server_name", &self.server_name)
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTlsBuilder {
    /// Trusts server certificates signed by these CAs.
    #[must_use]
    pub fn ca_certificates(mut self, cas: Vec<CertificateDer<'static>>) -> Self {
        self.cas.extend(cas);
        self
    }

    /// Like [`ClientTlsBuilder::ca_certificates`], from PEM text.
    pub fn ca_pem(self, pem: &[u8]) -> Result<Self, TlsError> {
        Ok(self.ca_certificates(certificates_from_pem(pem, "CA")?))
    }

    /// The name the server's certificate must carry (a DNS name or an IP address). Without it,
    /// the IP address the client connects to.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Mutual TLS: presents this certificate chain (leaf first) and key to the server.
    #[must_use]
    pub fn client_certificate(mut self, chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        self.identity = Some((chain, key));
        self
    }

    /// Like [`ClientTlsBuilder::client_certificate`], from PEM text.
    pub fn client_certificate_pem(self, chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Ok(self.client_certificate(
            certificates_from_pem(chain_pem, "client certificate chain")?,
            key_from_pem(key_pem)?,
        ))
    }

    /// Checks the CAs, the name and the client certificate.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        if self.cas.is_empty() {
            return Err(TlsError::Credentials(
                "no trusted CA: add the CA that signs the server's certificate with ClientTlsBuilder::ca_pem (or build a rustls config with webpki-roots and use ClientTls::from_rustls)".to_owned(),
            ));
        }
        let server_name = self
            .server_name
            .map(|name| {
                ServerName::try_from(name.clone())
                    .map_err(|_| TlsError::Credentials(format!("`{name}` is not a DNS name or an IP address")))
            })
            .transpose()?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|err| TlsError::Credentials(err.to_string()))?
            .with_root_certificates(roots(&self.cas)?);
        let mut config = match self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| TlsError::Credentials(format!("client certificate: {err}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_VOLLEY.to_vec()];
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }
}
