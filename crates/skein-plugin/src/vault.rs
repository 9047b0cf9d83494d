//! Encryption at rest for plugin secrets (an OpenAPI plugin's key, a user's own keys, the
//! search provider's key): AES-256-GCM with a random nonce per value, bound to its owner (the
//! row it belongs to) as associated data, stored as base64 of `nonce || ciphertext`. The same
//! scheme as the relay's channel keys: a sealed value copied into another row does not open.
//!
//! The key is derived from the deployment's relay secret key (SHA-256 of a label and that
//! key), so every process that shares the relay key opens plugin secrets, and a plugin secret
//! never opens with the raw relay key.

use aes_gcm::Aes256Gcm;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use skein_core::seal::{cipher, derive_key, open_bytes, seal_bytes};
use skein_core::{ApiError, ApiResult};

/// Seals and opens plugin secrets (the AES-GCM steps are [`skein_core::seal`]'s; this type
/// keeps the plugin service's stored format).
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// A vault whose key is derived from the deployment's 32-byte secret.
    pub fn derived(secret: &[u8; 32]) -> Self {
        Vault {
            cipher: cipher(&derive_key("skein plugin secrets v1", secret)),
        }
    }

    /// Encrypts `plain` for `owner`.
    pub fn seal(&self, plain: &[u8], owner: &str) -> ApiResult<String> {
        Ok(STANDARD.encode(seal_bytes(&self.cipher, plain, owner.as_bytes())?))
    }

    /// Decrypts what [`seal`](Self::seal) made for `owner`.
    pub fn open(&self, sealed: &str, owner: &str) -> ApiResult<Vec<u8>> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| ApiError::internal("a stored plugin secret is not base64"))?;
        open_bytes(&self.cipher, &bytes, owner.as_bytes()).ok_or_else(|| {
            ApiError::internal(
                "a stored plugin secret cannot be decrypted: wrong relay secret key?",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_owner() {
        let vault = Vault::derived(&[7; 32]);
        let sealed = vault.seal(b"sk-secret", "plugin-a").unwrap();
        assert!(!sealed.contains("sk-secret"));
        assert_eq!(vault.open(&sealed, "plugin-a").unwrap(), b"sk-secret");
        assert!(vault.open(&sealed, "plugin-b").is_err());
        assert!(Vault::derived(&[8; 32]).open(&sealed, "plugin-a").is_err());
    }
}
