//! API keys and their scopes.
//!
//! Keys come from configuration (`HERALD_API_KEYS`), preferably as SHA-256
//! hashes so the configuration never holds a usable secret. A request shows
//! its key as `Authorization: Bearer <key>`; Herald hashes what it is shown
//! and compares in constant time. With no keys configured the API is open,
//! which Herald allows only on a loopback address.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Server-side integration: send, follow, manage users and preferences.
    Send,
    /// Client apps: read the inbox, mark read, preferences, register devices.
    Inbox,
    /// Everything, including operator endpoints.
    Admin,
}

impl Scope {
    fn parse(value: &str) -> Option<Scope> {
        match value {
            "send" => Some(Scope::Send),
            "inbox" => Some(Scope::Inbox),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Send => "send",
            Scope::Inbox => "inbox",
            Scope::Admin => "admin",
        })
    }
}

#[derive(Clone)]
struct Key {
    hash: [u8; 32],
    scopes: Vec<Scope>,
}

/// The configured keys. Empty means the API is open.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Arc<Vec<Key>>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("HERALD_API_KEYS entry {index}: {message}")]
pub struct KeyConfigError {
    index: usize,
    message: String,
}

impl ApiKeys {
    /// Parses `entry,entry,…` where an entry is `<key>:<scope>[+<scope>…]`
    /// or `sha256:<64 hex>:<scope>[+<scope>…]`. Scopes: send, inbox, admin.
    pub fn parse(spec: &str) -> Result<ApiKeys, KeyConfigError> {
        let mut keys = Vec::new();
        for (index, entry) in spec
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let fail = |message: &str| KeyConfigError {
                index: index + 1,
                message: message.to_owned(),
            };
            let (secret, scopes) = entry
                .rsplit_once(':')
                .ok_or_else(|| fail("expected <key>:<scopes>"))?;
            let scopes: Vec<Scope> = scopes
                .split('+')
                .map(|s| {
                    Scope::parse(s.trim())
                        .ok_or_else(|| fail("scopes are send, inbox and admin, joined by +"))
                })
                .collect::<Result<_, _>>()?;
            let hash = match secret.strip_prefix("sha256:") {
                Some(hex) => parse_hex(hex)
                    .ok_or_else(|| fail("sha256: must be followed by 64 hex digits"))?,
                None if secret.len() < 16 => {
                    return Err(fail("a key must be at least 16 characters"))
                }
                None => Sha256::digest(secret.as_bytes()).into(),
            };
            keys.push(Key { hash, scopes });
        }
        Ok(ApiKeys {
            keys: Arc::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The scopes of the key presented, if it is one of ours.
    fn scopes_of(&self, presented: &str) -> Option<&[Scope]> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for key in self.keys.iter() {
            // Compare every key fully, so timing says nothing about which matched.
            let same = key
                .hash
                .iter()
                .zip(hash.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same {
                found = Some(key.scopes.as_slice());
            }
        }
        found
    }
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The hash form of a key, for putting in configuration.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a group of routes requires: any one of these scopes (admin always).
#[derive(Clone)]
pub struct Required {
    pub keys: ApiKeys,
    pub scopes: &'static [Scope],
}

pub async fn require(State(required): State<Required>, request: Request, next: Next) -> Response {
    if required.keys.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an API key as Authorization: Bearer <key>",
        )
        .into_response();
    };
    let Some(scopes) = required.keys.scopes_of(presented) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key")
            .into_response();
    };
    let allowed =
        scopes.contains(&Scope::Admin) || scopes.iter().any(|s| required.scopes.contains(s));
    if !allowed {
        let needed: Vec<String> = required.scopes.iter().map(Scope::to_string).collect();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this key lacks the scope for this endpoint (one of: {}, admin)",
                needed.join(", ")
            ),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_in_plain_and_hashed_form() {
        let hashed = hash_key("inbox-key-0123456789");
        let keys = ApiKeys::parse(&format!(
            "server-key-0123456789:send+admin, sha256:{hashed}:inbox"
        ))
        .unwrap();
        assert_eq!(
            keys.scopes_of("server-key-0123456789"),
            Some(&[Scope::Send, Scope::Admin][..])
        );
        assert_eq!(
            keys.scopes_of("inbox-key-0123456789"),
            Some(&[Scope::Inbox][..])
        );
        assert_eq!(keys.scopes_of("guess"), None);
        assert!(ApiKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn bad_key_entries_are_refused_with_their_position() {
        for (spec, needle) in [
            ("nocolon", "expected"),
            ("long-enough-key-123:root", "scopes"),
            ("short:send", "at least 16"),
            ("sha256:abc:send", "64 hex"),
            ("long-enough-key-123:send,x:send", "entry 2"),
        ] {
            let err = ApiKeys::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }
}
