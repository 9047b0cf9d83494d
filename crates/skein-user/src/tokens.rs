//! Opaque secrets the User service hands out: refresh tokens and invite codes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// Prefix of refresh tokens, so leaked ones are recognisable to secret scanners.
pub const REFRESH_PREFIX: &str = "skr_";

/// A new refresh token: 256 random bits.
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill(&mut bytes);
    format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Prefix of one-time links sent by mail (verification, password reset).
pub const LINK_PREFIX: &str = "skl_";

/// A new one-time link token: 256 random bits. It is looked up by its hash, so it needs no
/// signature: nobody can make one that the database holds.
pub fn new_link_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill(&mut bytes);
    format!("{LINK_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for a token: its SHA-256, hex. A 256-bit random token needs no salt or
/// slow hash; the database never holds a usable token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Letters and digits that cannot be confused when read aloud or typed (no 0/O, 1/I/L).
const INVITE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A new invite code, 10 characters (about 49 bits).
pub fn new_invite_code() -> String {
    let mut rng = OsRng;
    (0..10)
        .map(|_| char::from(INVITE_ALPHABET[rng.gen_range(0..INVITE_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a, b);
        assert!(a.starts_with(REFRESH_PREFIX) && a.len() > 40);
        assert_eq!(hash_token(&a).len(), 64);
        assert_ne!(hash_token(&a), hash_token(&b));
        let code = new_invite_code();
        assert_eq!(code.len(), 10);
        assert!(code.bytes().all(|c| INVITE_ALPHABET.contains(&c)));
    }
}
