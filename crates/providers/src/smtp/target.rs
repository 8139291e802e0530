//! Where the SMTP relay is and how to talk to it, read from a URL in the
//! form lettre's `from_url` reads (so `HERALD_SMTP_URL` means what it
//! always meant):
//!
//! * `smtp://host[:25]`: plain SMTP;
//! * `smtp://host[:587]?tls=required`: STARTTLS, refused if not offered;
//! * `smtp://host[:587]?tls=opportunistic`: STARTTLS when offered;
//! * `smtps://host[:465]`: TLS from the first byte;
//! * `user:password@` (percent-encoded) for `AUTH`, and a path
//!   (`smtp://host/client.example`) for the name Herald gives in `EHLO`.

use std::fmt;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use percent_encoding::percent_decode_str;

use crate::ProviderError;

/// How the connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// STARTTLS; `required` refuses a server that does not offer it.
    StartTls {
        required: bool,
    },
    /// TLS from the first byte.
    Implicit,
}

#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    pub hello: ClientId,
    /// The TLS settings (the host name to verify, the roots to trust);
    /// `None` for plain SMTP.
    pub tls: Option<TlsParameters>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticates", &self.credentials.is_some())
            .finish()
    }
}

fn invalid(why: impl fmt::Display) -> ProviderError {
    ProviderError::permanent(format!("invalid SMTP url: {why}"))
}

impl Target {
    /// Reads `url`; `roots` are extra trusted certificates (PEM) for a relay
    /// whose certificate a public root does not sign.
    pub fn parse(url: &str, roots: Option<&[u8]>) -> Result<Target, ProviderError> {
        let parsed = url::Url::parse(url).map_err(invalid)?;
        let host = parsed
            .host_str()
            .ok_or_else(|| invalid("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = parsed
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTls { required: true }, 587),
            ("smtp", Some("opportunistic")) => (Security::StartTls { required: false }, 587),
            ("smtps", None) => (Security::Implicit, 465),
            (scheme, tls) => {
                return Err(invalid(format!(
                    "scheme {scheme:?} with tls={tls:?}: use smtp:// (with ?tls=required or \
                     ?tls=opportunistic for STARTTLS) or smtps://"
                )))
            }
        };
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| invalid("the user or password is not UTF-8 once decoded"))
        };
        let credentials = match parsed.password() {
            Some(password) => Some(Credentials::new(
                decode(parsed.username())?,
                decode(password)?,
            )),
            None if !parsed.username().is_empty() => {
                return Err(invalid("a user without a password"))
            }
            None => None,
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let tls = match security {
            Security::Plain => None,
            Security::StartTls { .. } | Security::Implicit => {
                let mut builder = TlsParameters::builder(host.clone());
                if let Some(pem) = roots {
                    for certificate in split_pem(pem)? {
                        builder = builder.add_root_certificate(certificate);
                    }
                }
                Some(
                    builder
                        .build_rustls()
                        .map_err(|e| ProviderError::permanent(format!("SMTP TLS settings: {e}")))?,
                )
            }
        };
        Ok(Target {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
            tls,
        })
    }
}

/// Each certificate of a PEM bundle.
fn split_pem(pem: &[u8]) -> Result<Vec<Certificate>, ProviderError> {
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut certificates = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.windows(END.len()).position(|w| w == END) {
        let (one, tail) = rest.split_at(at + END.len());
        certificates.push(
            Certificate::from_pem(one)
                .map_err(|e| ProviderError::permanent(format!("SMTP CA file: {e}")))?,
        );
        rest = tail;
    }
    if certificates.is_empty() {
        return Err(ProviderError::permanent(
            "SMTP CA file: no PEM certificate in it",
        ));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Target {
        Target::parse(url, None).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls_read_as_lettre_reads_them() {
        let t = parsed("smtp://mail.example.com");
        assert_eq!((t.port, t.security), (25, Security::Plain));
        assert!(t.tls.is_none() && t.credentials.is_none());
        let t = parsed("smtp://mailer:p%40ss%3Aword@mail.example.com?tls=required");
        assert_eq!(
            (t.port, t.security),
            (587, Security::StartTls { required: true })
        );
        assert_eq!(
            t.credentials,
            Some(Credentials::new("mailer".into(), "p@ss:word".into()))
        );
        let t = parsed("smtp://mail.example.com:2525?tls=opportunistic");
        assert_eq!(
            (t.port, t.security),
            (2525, Security::StartTls { required: false })
        );
        let t = parsed("smtps://127.0.0.1/herald.example");
        assert_eq!((t.port, t.security), (465, Security::Implicit));
        assert_eq!(t.hello, ClientId::Domain("herald.example".into()));
        assert_eq!(t.host, "127.0.0.1");
        assert!(!format!("{t:?}").contains("word"), "no password in Debug");
    }

    #[test]
    fn urls_that_say_nothing_sure_are_refused() {
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://mail.example.com?tls=maybe",
            "smtps://mail.example.com?tls=required",
            "smtp://mailer@mail.example.com",
            "smtp://",
        ] {
            assert!(Target::parse(bad, None).is_err(), "{bad}");
        }
        assert!(Target::parse("smtps://mail.example.com", Some(b"not pem")).is_err());
    }
}
