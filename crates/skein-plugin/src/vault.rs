//! Encryption at rest for plugin secrets (an OpenAPI plugin's key, a user's own keys, the
//! search provider's key): AES-256-GCM with a random nonce per value, bound to its owner (the
//! row it belongs to) as associated data, stored as base64 of `nonce || ciphertext`. The same
//! scheme as the relay's channel keys: a sealed value copied into another row does not open.
//!
//! The key is derived from the deployment's relay secret key (SHA-256 of a label and that
//! key), so every process that shares the relay key opens plugin secrets, and a plugin secret
//! never opens with the raw relay key.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use skein_core::{ApiError, ApiResult};

/// Seals and opens plugin secrets.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// A vault whose key is derived from the deployment's 32-byte secret.
    pub fn derived(secret: &[u8; 32]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"skein plugin secrets v1\0");
        hash.update(secret);
        let key = hash.finalize();
        Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
        }
    }

    /// Encrypts `plain` for `owner`.
    pub fn seal(&self, plain: &[u8], owner: &str) -> ApiResult<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| ApiError::internal("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`seal`](Self::seal) made for `owner`.
    pub fn open(&self, sealed: &str, owner: &str) -> ApiResult<Vec<u8>> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| ApiError::internal("a stored plugin secret is not base64"))?;
        if bytes.len() < 12 {
            return Err(ApiError::internal("a stored plugin secret is too short"));
        }
        let (nonce, data) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: data,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| {
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
