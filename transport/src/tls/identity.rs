//! The peer's verified identity: what its certificate names.

use std::net::IpAddr;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Who the peer is, from the end-entity certificate it presented in the TLS handshake, verified
/// against this side's CAs before the connection was set up. Handlers get it through
/// [`ConnectionInfo::peer_identity`](crate::server::ConnectionInfo::peer_identity) (under mutual
/// TLS; a client that presents no certificate has none).
///
/// ```no_run
/// use volley::{Request, Server, Status};
///
/// # fn demo(tls: volley::tls::ServerTls) -> Result<(), volley::Error> {
/// let server = Server::builder()
///     .unary("/bank.Bank/Balance", |request: Request<()>| async move {
///         let identity = request.context().connection().and_then(|c| c.peer_identity().cloned());
///         match identity {
///             Some(peer) if peer.dns_names().iter().any(|name| name == "teller.bank.internal") => Ok(42u64),
///             _ => Err(Status::permission_denied("only the teller service may ask")),
///         }
///     })
///     .tls(tls)
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    subject: String,
    common_name: Option<String>,
    dns_names: Vec<String>,
    ip_addresses: Vec<IpAddr>,
    uris: Vec<String>,
    certificate: CertificateDer<'static>,
}

impl PeerIdentity {
    /// Reads the names of a certificate rustls has verified. A part that does not parse is left
    /// empty (the certificate itself is kept).
    pub(crate) fn from_certificate(certificate: &CertificateDer<'_>) -> Self {
        let mut identity = Self {
            subject: String::new(),
            common_name: None,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            certificate: certificate.clone().into_owned(),
        };
        let Ok((_, parsed)) = X509Certificate::from_der(certificate.as_ref()) else {
            tracing::debug!("the peer's certificate verified but did not parse for its names");
            return identity;
        };
        identity.subject = parsed.subject().to_string();
        identity.common_name = parsed
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identity.dns_names.push((*dns).to_owned()),
                    GeneralName::URI(uri) => identity.uris.push((*uri).to_owned()),
                    GeneralName::IPAddress(raw) => match raw.len() {
                        4 => identity
                            .ip_addresses
                            .push(IpAddr::from(<[u8; 4]>::try_from(*raw).unwrap_or_default())),
                        16 => identity
                            .ip_addresses
                            .push(IpAddr::from(<[u8; 16]>::try_from(*raw).unwrap_or_default())),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        identity
    }

    /// The certificate's subject, as in RFC 4514 (`CN=teller, O=Bank`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject's common name (CN), if it has one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The DNS names of the subject alternative names.
    pub fn dns_names(&self) -> &[String] {
        &self.dns_names
    }

    /// The IP addresses of the subject alternative names.
    pub fn ip_addresses(&self) -> &[IpAddr] {
        &self.ip_addresses
    }

    /// The URIs of the subject alternative names (SPIFFE ids, for example).
    pub fn uris(&self) -> &[String] {
        &self.uris
    }

    /// The end-entity certificate, DER-encoded, for checks of your own.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }
}
