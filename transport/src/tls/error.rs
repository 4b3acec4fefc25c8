//! What can go wrong with TLS, said so that the reader knows what to change.

use std::time::Duration;

use rustls::{AlertDescription, CertificateError};

/// A TLS failure: loading credentials, or a handshake with a peer. Each variant says what failed
/// and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate, key or CA could not be loaded.
    #[error(
        "cannot load TLS credentials: {0}; pass a PEM or DER certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or SEC1)"
    )]
    Credentials(String),
    /// The peer's certificate is not signed by a CA this side trusts.
    #[error(
        "the peer's certificate is not trusted ({0}); give this side the CA that issued it (ClientTlsBuilder::ca_pem, ServerTlsBuilder::client_ca_pem)"
    )]
    Untrusted(rustls::Error),
    /// The peer's certificate has expired or is not valid yet.
    #[error("the peer's certificate is outside its validity period ({0}); renew it (or check this host's clock)")]
    Expired(rustls::Error),
    /// The server's certificate does not name the server name the client asked for.
    #[error(
        "the server's certificate is not valid for the name the client asked for ({0}); set ClientTlsBuilder::server_name to a name in its subject alternative names, or issue a certificate for this name"
    )]
    WrongName(rustls::Error),
    /// The server requires a client certificate (mutual TLS) and this client sent none.
    #[error(
        "the server requires a client certificate (mutual TLS) and this client presented none; configure one with ClientTlsBuilder::client_certificate_pem"
    )]
    ClientCertificateRequired,
    /// The peer refused this side's certificate.
    #[error(
        "the peer rejected this side's certificate (TLS alert {0:?}); use a certificate issued by a CA the peer trusts, valid now and for the peer's expected name"
    )]
    Rejected(AlertDescription),
    /// The peers did not agree on the ALPN protocol `volley/1`.
    #[error(
        "the peer did not agree on ALPN `volley/1` ({0}); both sides must be Volley with TLS (a ClientTls built from a rustls config must offer `volley/1`)"
    )]
    Alpn(String),
    /// A TLS client reached a port that serves plaintext Volley.
    #[error("the server answered in plaintext Volley: this port does not serve TLS; connect without TLS, or to the server's TLS port")]
    PlaintextServer,
    /// A plaintext Volley client reached a port that serves TLS.
    #[error("the client sent the plaintext Volley preface to a TLS port; it must connect with TLS (Client::builder().tls(..))")]
    PlaintextClient,
    /// The peer sent bytes that are not TLS.
    #[error("the peer does not speak TLS ({0}); is this a TLS port, and is the peer a Volley TLS peer?")]
    NotTls(rustls::Error),
    /// The handshake did not finish within the handshake timeout.
    #[error("the TLS handshake did not finish within {0:?} (the handshake timeout); is the peer a TLS server, and is it overloaded?")]
    Timeout(Duration),
    /// The peer ended the handshake with an alert.
    #[error("the peer ended the TLS handshake with alert {0:?}; its logs say why")]
    Alert(AlertDescription),
    /// Any other TLS failure.
    #[error("TLS failed: {0}")]
    Protocol(rustls::Error),
    /// The socket failed during the handshake.
    #[error("the connection failed during the TLS handshake: {0}")]
    Io(std::io::Error),
}

impl TlsError {
    /// Sorts a rustls error into the variant that says what to do.
    pub(crate) fn from_rustls(err: rustls::Error) -> Self {
        use rustls::Error as E;
        match &err {
            E::InvalidCertificate(cert) => match cert {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => Self::Expired(err),
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => Self::WrongName(err),
                _ => Self::Untrusted(err),
            },
            E::AlertReceived(AlertDescription::CertificateRequired) | E::NoCertificatesPresented => Self::ClientCertificateRequired,
            E::AlertReceived(
                alert @ (AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied),
            ) => Self::Rejected(*alert),
            E::AlertReceived(AlertDescription::NoApplicationProtocol) | E::NoApplicationProtocol => {
                Self::Alpn("the server supports none of the protocols the client offered".to_owned())
            }
            E::AlertReceived(alert) => Self::Alert(*alert),
            E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::PeerSentOversizedRecord => Self::NotTls(err),
            _ => Self::Protocol(err),
        }
    }

    /// Sorts an IO error from a handshake: rustls errors travel inside them.
    pub(crate) fn from_io(err: std::io::Error) -> Self {
        match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls) => Self::from_rustls(rustls.clone()),
            None => Self::Io(err),
        }
    }
}
