//! Encryption at rest for upstream secrets (channel keys, extra headers): AES-256-GCM with a
//! random nonce per value, stored as base64 of `nonce || ciphertext`.
//!
//! A value bound to an owner ([`Vault::seal_bound`]) carries the owner (a channel id) as
//! AES-GCM associated data and is stored as `v2:` + base64: copied into another owner's row it
//! no longer decrypts, so a sealed key cannot be moved to a channel pointing at another host.
//! Values without the prefix are from before binding and open without associated data; the
//! relay re-seals them bound at load, so they do not stay movable.

use aes_gcm::Aes256Gcm;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use skein_core::seal::{cipher, open_bytes, seal_bytes};
use skein_core::{ApiError, ApiResult};

/// Seals and opens secrets with the deployment's key (the AES-GCM steps are
/// [`skein_core::seal`]'s; this type keeps the relay's stored format).
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// A vault over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Vault {
            cipher: cipher(key),
        }
    }

    /// Encrypts `plain`.
    pub fn seal(&self, plain: &[u8]) -> ApiResult<String> {
        Ok(STANDARD.encode(seal_bytes(&self.cipher, plain, &[])?))
    }

    /// Encrypts `plain` bound to `owner` (associated data): only [`open_bound`](Self::open_bound)
    /// with the same owner opens it.
    pub fn seal_bound(&self, plain: &[u8], owner: &[u8]) -> ApiResult<String> {
        let sealed = seal_bytes(&self.cipher, plain, owner)?;
        Ok(format!("{BOUND_PREFIX}{}", STANDARD.encode(sealed)))
    }

    /// Whether `sealed` is bound to an owner (made by [`seal_bound`](Self::seal_bound)).
    pub fn is_bound(sealed: &str) -> bool {
        sealed.starts_with(BOUND_PREFIX)
    }

    /// Decrypts what [`seal_bound`](Self::seal_bound) made for `owner`, or a value sealed before
    /// binding existed (no prefix, no associated data). The prefix decides which, never a retry:
    /// a bound value with its prefix stripped fails too, since its tag covers the owner.
    pub fn open_bound(&self, sealed: &str, owner: &[u8]) -> ApiResult<Vec<u8>> {
        let Some(body) = sealed.strip_prefix(BOUND_PREFIX) else {
            return self.open(sealed);
        };
        open_bytes(&self.cipher, &decode(body)?, owner).ok_or_else(|| {
            ApiError::internal(
                "stored secret cannot be decrypted: wrong relay secret key, or sealed for another owner?",
            )
        })
    }

    /// Decrypts what [`seal`](Self::seal) made; fails if it was made with another key or
    /// tampered with.
    pub fn open(&self, sealed: &str) -> ApiResult<Vec<u8>> {
        open_bytes(&self.cipher, &decode(sealed)?, &[]).ok_or_else(|| {
            ApiError::internal("stored secret cannot be decrypted: wrong relay secret key?")
        })
    }
}

/// Marks a value sealed with its owner as associated data.
const BOUND_PREFIX: &str = "v2:";

/// Decodes the stored base64.
fn decode(sealed: &str) -> ApiResult<Vec<u8>> {
    STANDARD
        .decode(sealed)
        .map_err(|_| ApiError::internal("stored secret is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_the_wrong_key() {
        let vault = Vault::new(&[7u8; 32]);
        let sealed = vault.seal(b"sk-upstream-secret").expect("seal");
        assert!(!sealed.contains("upstream"));
        assert_ne!(
            sealed,
            vault.seal(b"sk-upstream-secret").expect("seal"),
            "nonces differ"
        );
        assert_eq!(vault.open(&sealed).expect("open"), b"sk-upstream-secret");
        assert!(Vault::new(&[8u8; 32]).open(&sealed).is_err());
        assert!(vault.open("AAAA").is_err());
    }

    #[test]
    fn a_bound_value_opens_only_for_its_owner() {
        let vault = Vault::new(&[7u8; 32]);
        let sealed = vault.seal_bound(b"sk-a", b"channel-a").expect("seal");
        assert!(Vault::is_bound(&sealed));
        assert_eq!(
            vault.open_bound(&sealed, b"channel-a").expect("open"),
            b"sk-a"
        );
        assert!(
            vault.open_bound(&sealed, b"channel-b").is_err(),
            "moved to B"
        );
        let stripped = sealed.trim_start_matches(BOUND_PREFIX);
        assert!(
            vault.open_bound(stripped, b"channel-b").is_err(),
            "prefix stripped"
        );
        assert!(vault.open(stripped).is_err());
        // A value sealed before binding still opens (it is re-sealed bound at load).
        let legacy = vault.seal(b"sk-old").expect("seal");
        assert!(!Vault::is_bound(&legacy));
        assert_eq!(
            vault.open_bound(&legacy, b"channel-a").expect("open"),
            b"sk-old"
        );
    }
}
