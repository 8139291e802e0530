//! What a real submission server asks of a client before it takes mail:
//! TLS (STARTTLS on a plain connection, or TLS from the first byte) and
//! `AUTH` (PLAIN or LOGIN, RFC 4954) with a known user and password.
//!
//! The certificate is made at start with `rcgen` for `127.0.0.1` and
//! `localhost`; a client trusts it through [`super::SmtpSink::ca_pem`].

use std::io;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// How the sink wants its clients to protect the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP; `STARTTLS` is not offered.
    None,
    /// Plain at first; `STARTTLS` is offered and required before `MAIL`
    /// (a submission server on port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// What the sink asks of its clients.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// When set, `AUTH PLAIN` or `AUTH LOGIN` with this user and password is
    /// required before `MAIL`, and offered only on an encrypted connection
    /// when the sink has TLS.
    pub credentials: Option<(String, String)>,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            tls: SmtpTls::None,
            credentials: None,
        }
    }
}

/// The sink's certificate and the acceptor that serves it.
pub(super) struct TlsIdentity {
    pub(super) acceptor: TlsAcceptor,
    /// The self-signed certificate, PEM: what a client must trust.
    pub(super) ca_pem: String,
}

impl TlsIdentity {
    pub(super) fn generate() -> io::Result<TlsIdentity> {
        let invalid =
            |e: &dyn std::fmt::Display| io::Error::new(io::ErrorKind::InvalidInput, e.to_string());
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .map_err(|e| invalid(&e))?;
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .map_err(|e| invalid(&e))?;
        Ok(TlsIdentity {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: certified.cert.pem(),
        })
    }
}

/// The user and password of an `AUTH PLAIN` response:
/// base64 of `authzid NUL authcid NUL password`.
pub(super) fn plain_credentials(response: &str) -> Option<(String, String)> {
    let decoded = BASE64.decode(response.trim()).ok()?;
    let mut parts = decoded.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let password = String::from_utf8(parts.next()?.to_vec()).ok()?;
    parts.next().is_none().then_some((user, password))
}

/// One base64 line of an `AUTH LOGIN` exchange.
pub(super) fn login_line(response: &str) -> Option<String> {
    String::from_utf8(BASE64.decode(response.trim()).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_responses_decode_to_user_and_password_or_nothing() {
        let encode = |raw: &[u8]| BASE64.encode(raw);
        assert_eq!(
            plain_credentials(&encode(b"\0ada\0s3cret")),
            Some(("ada".into(), "s3cret".into()))
        );
        assert_eq!(
            plain_credentials(&encode(b"admin\0ada\0s3cret")),
            Some(("ada".into(), "s3cret".into()))
        );
        for bad in [
            encode(b"ada\0s3cret"),
            encode(b"\0ada\0s3cret\0more"),
            "not base64!".to_owned(),
            String::new(),
        ] {
            assert_eq!(plain_credentials(&bad), None, "{bad:?}");
        }
        assert_eq!(login_line(&encode(b"ada")), Some("ada".into()));
        assert_eq!(login_line("***"), None);
    }
}
