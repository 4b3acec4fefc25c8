//! A failed QUIC handshake said as TCP with TLS says it: the typed [`TlsError`] of
//! docs/PROTOCOL.md section 12, from quinn's [`quinn::ConnectionError`].
//!
//! QUIC carries TLS alerts as transport error codes `0x100 + alert` (RFC 9001 section 4.8): in a
//! `CONNECTION_CLOSE` the peer sent ([`quinn::ConnectionError::ConnectionClosed`], the peer
//! refused us: read as rustls' `AlertReceived`), or in the error quinn raised itself
//! ([`quinn::ConnectionError::TransportError`], we refused the peer: quinn keeps only the alert
//! and rustls' message, so the variant follows the alert as rustls chose it from its error).

use std::time::Duration;

use rustls::AlertDescription;

use crate::tls::TlsError;

/// First QUIC transport error code of the TLS alert range (`CRYPTO_ERROR`, RFC 9000 section 20.1).
const CRYPTO_ERROR_FIRST: u64 = 0x100;
/// Last QUIC transport error code of the TLS alert range.
const CRYPTO_ERROR_LAST: u64 = 0x1ff;

/// The TLS failure behind `err`, if it is one: a TLS alert either way, a handshake that timed
/// out (`timeout` is the handshake timeout it ran out of), or a TLS error without an alert.
/// Refusals (admission's `CONNECTION_REFUSED`, an application close) and lost paths are not TLS
/// failures and give `None`.
pub(crate) fn tls_error(err: &quinn::ConnectionError, timeout: Duration) -> Option<TlsError> {
    match err {
        quinn::ConnectionError::ConnectionClosed(close) => {
            let alert = alert(close.error_code.into())?;
            Some(TlsError::from_rustls(rustls::Error::AlertReceived(alert)))
        }
        quinn::ConnectionError::TransportError(local) => {
            let reason = || rustls::Error::General(local.reason.clone());
            let Some(alert) = alert(local.code.into()) else {
                // quinn-proto's wording for a rustls error that has no alert.
                return local.reason.starts_with("TLS error").then(|| TlsError::Protocol(reason()));
            };
            Some(match alert {
                AlertDescription::CertificateExpired => TlsError::Expired(reason()),
                // rustls sends `bad_certificate` for a name mismatch among other faults; only
                // its message tells them apart.
                AlertDescription::BadCertificate if names_a_name_mismatch(&local.reason) => TlsError::WrongName(reason()),
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::DecryptError => TlsError::Untrusted(reason()),
                AlertDescription::CertificateRequired => TlsError::ClientCertificateRequired,
                AlertDescription::NoApplicationProtocol => TlsError::Alpn(local.reason.clone()),
                _ => TlsError::Protocol(reason()),
            })
        }
        quinn::ConnectionError::TimedOut => Some(TlsError::Timeout(timeout)),
        _ => None,
    }
}

/// Whether rustls' message is its certificate name mismatch (`NotValidForName`, or
/// `NotValidForNameContext`: "certificate not valid for name ...").
fn names_a_name_mismatch(reason: &str) -> bool {
    reason.contains("NotValidForName") || reason.contains("not valid for name")
}

/// The TLS alert a QUIC transport error code carries, if it is in the crypto range.
fn alert(code: u64) -> Option<AlertDescription> {
    (CRYPTO_ERROR_FIRST..=CRYPTO_ERROR_LAST)
        .contains(&code)
        .then(|| AlertDescription::from((code - CRYPTO_ERROR_FIRST) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_error_codes_carry_the_alert_and_others_none() {
        assert_eq!(alert(0x100 + 48), Some(AlertDescription::UnknownCA));
        assert_eq!(alert(0x100 + 120), Some(AlertDescription::NoApplicationProtocol));
        assert_eq!(alert(0x2), None);
        assert_eq!(alert(0x200), None);
    }
}
