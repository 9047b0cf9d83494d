//! Encryption at rest for upstream secrets (channel keys, extra headers): AES-256-GCM with a
//! random nonce per value, stored as base64 of `nonce || ciphertext`.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use skein_core::{ApiError, ApiResult};

/// Seals and opens secrets with the deployment's key.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl Vault {
    /// A vault over a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Vault {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)),
        }
    }

    /// Encrypts `plain`.
    pub fn seal(&self, plain: &[u8]) -> ApiResult<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain)
            .map_err(|_| ApiError::internal("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`seal`](Self::seal) made; fails if it was made with another key or
    /// tampered with.
    pub fn open(&self, sealed: &str) -> ApiResult<Vec<u8>> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| ApiError::internal("stored secret is not base64"))?;
        if bytes.len() < 12 {
            return Err(ApiError::internal("stored secret is truncated"));
        }
        let (nonce, data) = bytes.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), data)
            .map_err(|_| {
                ApiError::internal("stored secret cannot be decrypted: wrong relay secret key?")
            })
    }
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
}
