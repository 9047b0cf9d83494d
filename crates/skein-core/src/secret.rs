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

/// Masks the password in a connection URL (`postgres://u:pw@h/db` → `postgres://u:****@h/db`)
/// so effective configuration can be printed.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:****@{host}"),
        None => url.to_string(),
    }
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
}
