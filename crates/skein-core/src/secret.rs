//! A string that must never be printed: configuration secrets and tokens.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A secret value; `Debug`, `Display` and `Serialize` all show a mask.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("********")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Masks the credentials in a URL so it can be printed: the password of its userinfo
/// (`postgres://u:pw@h/db` → `postgres://u:****@h/db`) and the value of every query parameter
/// whose name looks like a credential (`?key=…`, `api_key`, `token`, `sig`, `password`, …),
/// since vendors and databases take secrets there too.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The authority ends at the first `/`, `?` or `#`; an `@` after it is not userinfo.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:****@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (tail, None),
    };
    let tail = match before_fragment.split_once('?') {
        Some((path, query)) => format!("{path}?{}", mask_query(query)),
        None => before_fragment.to_string(),
    };
    match fragment {
        Some(f) => format!("{scheme}://{authority}{tail}#{f}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// `query` with the values of credential-like parameters replaced by `****`.
fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if !value.is_empty() && is_credential_name(name) => {
                format!("{name}=****")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a query parameter's name says it carries a credential (substring match, case- and
/// separator-insensitive: `api_key`, `apiKey`, `X-Amz-Signature`, `access_token`, `sslpassword`).
fn is_credential_name(name: &str) -> bool {
    const MARKERS: &[&str] = &[
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "sig",
        "auth",
        "credential",
        "session",
        "code",
    ];
    let name: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    MARKERS.iter().any(|m| name.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_itself() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(
            !serde_json::to_string(&s)
                .unwrap_or_default()
                .contains("hunter2")
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            mask_url("postgres://app:pw@db:5432/x"),
            "postgres://app:****@db:5432/x"
        );
        assert_eq!(mask_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(mask_url("sqlite://data/skein.db"), "sqlite://data/skein.db");
    }

    #[test]
    fn masks_credentials_in_query_strings() {
        for (url, masked) in [
            (
                "https://generativelanguage.googleapis.com/v1beta?key=AIzaSECRET",
                "https://generativelanguage.googleapis.com/v1beta?key=****",
            ),
            (
                "https://x.openai.azure.com?api-version=2024-06-01&api_key=SECRET",
                "https://x.openai.azure.com?api-version=2024-06-01&api_key=****",
            ),
            (
                "https://h/p?token=SECRET&sig=SECRET&X-Amz-Signature=SECRET&accessToken=SECRET#frag",
                "https://h/p?token=****&sig=****&X-Amz-Signature=****&accessToken=****#frag",
            ),
            (
                "postgres://app:pw@db/x?sslmode=require&password=SECRET",
                "postgres://app:****@db/x?sslmode=require&password=****",
            ),
            // An `@` in the query is not userinfo.
            (
                "https://h/p?email=a@b.c&secret=SECRET",
                "https://h/p?email=a@b.c&secret=****",
            ),
            (
                "https://h/p?model=m&limit=10",
                "https://h/p?model=m&limit=10",
            ),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
            assert!(!mask_url(url).contains("SECRET"), "{url}");
        }
    }
}
