//! Encryption at rest, shared by every service that stores a secret someone gave Skein:
//! AES-256-GCM with a random 96-bit nonce per value and the value's owner (the row it belongs
//! to) as associated data, so a sealed value copied into another row does not open.
//!
//! Two layers:
//! - [`seal_bytes`] / [`open_bytes`]: the primitive, `nonce || ciphertext` under one cipher. The
//!   relay's channel keys and the plugin service's secrets keep their own stored formats on it.
//! - [`Sealer`]: a versioned format, `sealed:v1:<key id>:<base64>`, with a current key and older
//!   keys that still open. [`Opened::stale`] says when a stored value should be written again
//!   (it was plain text from before sealing, or sealed with an older key), which is how keys
//!   rotate and how old plain rows are converted without losing any.
//!
//! Keys are derived from the deployment's secret (`relay.secret_key`) and a purpose label, so
//! one secret never serves two purposes and a derived key never equals the raw secret.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{ApiError, ApiResult};

/// The start of every value [`Sealer::seal`] makes; anything else is legacy plain text.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// Encrypts `plain` with `aad` as associated data; answers `nonce || ciphertext`.
pub fn seal_bytes(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> ApiResult<Vec<u8>> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, Payload { msg: plain, aad })
        .map_err(|_| ApiError::internal("encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Decrypts what [`seal_bytes`] made with the same cipher and `aad`; `None` when the key, the
/// associated data or the bytes differ (AES-GCM's tag covers all three).
pub fn open_bytes(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let (nonce, data) = sealed.split_at(12);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: data, aad })
        .ok()
}

/// A cipher over a raw 32-byte key.
pub fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

/// SHA-256 of `label`, a zero byte and `secret`: the key for one purpose.
pub fn derive_key(label: &str, secret: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(label.as_bytes());
    hash.update([0u8]);
    hash.update(secret);
    hash.finalize().into()
}

/// One key a [`Sealer`] knows, with its public id (8 hex characters of a hash of the key).
#[derive(Clone)]
struct SealKey {
    id: String,
    cipher: Aes256Gcm,
    mac_key: [u8; 32],
}

impl SealKey {
    fn derived(label: &str, secret: &[u8; 32]) -> SealKey {
        let key = derive_key(label, secret);
        let id =
            hex::encode(&Sha256::digest([b"skein key id\0".as_slice(), &key[..]].concat())[..4]);
        SealKey {
            id,
            cipher: cipher(&key),
            mac_key: derive_key(&format!("{label} mac"), secret),
        }
    }
}

/// A value read back: the plain text, and whether the stored form should be replaced by
/// [`Sealer::seal`] (plain text from before sealing, or sealed with an older key).
#[derive(Debug)]
pub struct Opened {
    /// The secret.
    pub plain: String,
    /// True when the stored value is not sealed with the current key.
    pub stale: bool,
}

/// Seals and opens one purpose's secrets, with key versions for rotation.
#[derive(Clone)]
pub struct Sealer {
    current: SealKey,
    older: Vec<SealKey>,
}

impl Sealer {
    /// The sealer for `label` (a purpose, such as `"skein user secrets v1"`) under the
    /// deployment's `current` secret; values sealed under one of `previous` still open, and are
    /// reported stale so they get sealed again under `current`.
    pub fn derived(label: &str, current: &[u8; 32], previous: &[[u8; 32]]) -> Sealer {
        Sealer {
            current: SealKey::derived(label, current),
            older: previous
                .iter()
                .filter(|p| *p != current)
                .map(|p| SealKey::derived(label, p))
                .collect(),
        }
    }

    /// The current key's id, as written into sealed values.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Whether `stored` was sealed with the current key (nothing to convert).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }

    /// Seals `plain` for `owner` under the current key.
    pub fn seal(&self, plain: &str, owner: &str) -> ApiResult<String> {
        let bytes = seal_bytes(&self.current.cipher, plain.as_bytes(), owner.as_bytes())?;
        Ok(format!(
            "{SEALED_PREFIX}{}:{}",
            self.current.id,
            STANDARD.encode(bytes)
        ))
    }

    /// Opens what [`seal`](Self::seal) made for `owner`, under the current key or an older one.
    /// A value without the prefix is plain text stored before sealing: it is answered as it is
    /// and reported stale. A sealed value that does not open (unknown key, another owner,
    /// tampered) is an error, never answered as plain text.
    pub fn open(&self, stored: &str, owner: &str) -> ApiResult<Opened> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(Opened {
                plain: stored.to_string(),
                stale: true,
            });
        };
        let (id, body) = rest
            .split_once(':')
            .ok_or_else(|| ApiError::internal("a sealed secret is malformed"))?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| ApiError::internal("a sealed secret is not base64"))?;
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
            .ok_or_else(|| {
                ApiError::internal(format!(
                    "a secret is sealed with key {id}, which is neither relay.secret_key nor in relay.previous_secret_keys"
                ))
            })?;
        let plain = open_bytes(&key.cipher, &bytes, owner.as_bytes()).ok_or_else(|| {
            ApiError::internal(
                "a sealed secret cannot be decrypted (tampered, or moved to another row)",
            )
        })?;
        let plain = String::from_utf8(plain)
            .map_err(|_| ApiError::internal("a sealed secret is not UTF-8"))?;
        Ok(Opened {
            plain,
            stale: key.id != self.current.id,
        })
    }

    /// HMAC-SHA256 of `data` under a key derived for this purpose, hex: for short values that
    /// must be compared but never read back (one-time SMS codes), so a copy of the database
    /// cannot be searched offline without the deployment's secret.
    pub fn digest(&self, data: &str) -> String {
        // HMAC accepts a key of any length, so this cannot fail; an empty digest never matches.
        match <Hmac<Sha256> as Mac>::new_from_slice(&self.current.mac_key) {
            Ok(mut mac) => {
                mac.update(data.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_binds_to_the_owner() {
        let sealer = Sealer::derived("test", &[7; 32], &[]);
        let sealed = sealer.seal("client-secret-1", "provider:a").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("client-secret"));
        assert!(sealer.is_current(&sealed));
        let opened = sealer.open(&sealed, "provider:a").unwrap();
        assert_eq!(opened.plain, "client-secret-1");
        assert!(!opened.stale);
        assert!(
            sealer.open(&sealed, "provider:b").is_err(),
            "moved rows do not open"
        );
        assert_ne!(
            sealed,
            sealer.seal("client-secret-1", "provider:a").unwrap()
        );
    }

    #[test]
    fn plain_and_old_key_values_open_as_stale() {
        let old = Sealer::derived("test", &[1; 32], &[]);
        let new = Sealer::derived("test", &[2; 32], &[[1; 32]]);
        assert_ne!(old.key_id(), new.key_id());
        let by_old = old.seal("s", "o").unwrap();
        let opened = new.open(&by_old, "o").unwrap();
        assert_eq!((opened.plain.as_str(), opened.stale), ("s", true));
        assert!(!new.is_current(&by_old));
        let plain = new.open("JBSWY3DPEHPK3PXP", "o").unwrap();
        assert_eq!(
            (plain.plain.as_str(), plain.stale),
            ("JBSWY3DPEHPK3PXP", true)
        );
        // Without the old key, an old value is an error, not plain text.
        let alone = Sealer::derived("test", &[2; 32], &[]);
        assert!(alone.open(&by_old, "o").is_err());
    }

    #[test]
    fn labels_give_different_keys_and_digests() {
        let a = Sealer::derived("a", &[3; 32], &[]);
        let b = Sealer::derived("b", &[3; 32], &[]);
        assert_ne!(a.key_id(), b.key_id());
        assert_ne!(a.digest("123456"), b.digest("123456"));
        assert_eq!(a.digest("123456"), a.digest("123456"));
        assert_eq!(a.digest("x").len(), 64);
    }
}
