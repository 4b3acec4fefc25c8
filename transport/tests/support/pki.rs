//! Certificates made at run time with rcgen, so no key is ever committed.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use volley::tls::{CertificateDer, ClientTls, PrivateKeyDer, ServerTls};

/// A certificate authority that issues leaf certificates.
pub(crate) struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) cert: CertificateDer<'static>,
}

/// A leaf certificate and its key.
pub(crate) struct Leaf {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key_der: Vec<u8>,
}

impl Leaf {
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::try_from(self.key_der.clone()).unwrap()
    }
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            cert: cert.der().clone(),
        }
    }

    /// A leaf for `names` (DNS names; `127.0.0.1` is always added as an IP SAN unless `names`
    /// is empty), with common name `cn`, valid now (or expired, with `expired`).
    pub(crate) fn leaf_with(&self, cn: &str, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        if !names.is_empty() {
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    pub(crate) fn leaf(&self, cn: &str, names: &[&str]) -> Leaf {
        self.leaf_with(cn, names, false)
    }

    /// A server TLS config with a `localhost` certificate from this CA.
    pub(crate) fn server_tls(&self) -> ServerTls {
        let leaf = self.leaf("server", &["localhost"]);
        ServerTls::builder(leaf.chain(), leaf.key()).build().unwrap()
    }

    /// A raw rustls server configuration (TLS 1.3, ring) with a `localhost` certificate from
    /// this CA, offering `alpn`: for tests that drive quinn or rustls themselves.
    #[allow(dead_code)]
    pub(crate) fn raw_server_config(&self, alpn: &[u8]) -> rustls::ServerConfig {
        let leaf = self.leaf("server", &["localhost"]);
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(leaf.chain(), leaf.key())
            .unwrap();
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls
    }

    /// A raw rustls client configuration (TLS 1.3, ring) trusting this CA, offering `alpn`:
    /// for tests that drive quinn or rustls themselves.
    #[allow(dead_code)]
    pub(crate) fn raw_client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
        tls
    }

    /// A client trusting this CA, expecting `localhost`.
    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls::builder()
            .ca_certificates(vec![self.cert.clone()])
            .server_name("localhost")
            .build()
            .unwrap()
    }
}
