//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits — what every
//! authenticator app speaks) and recovery codes.

use hmac::{Hmac, Mac};
use rand::Rng;
use rand::rngs::OsRng;
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::tokens::hash_token;

/// Seconds per step.
pub const STEP_SECS: i64 = 30;
/// Recovery codes handed out at once.
pub const RECOVERY_CODES: usize = 10;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 160-bit secret, base32 (the length RFC 4226 recommends).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    OsRng.fill(&mut bytes);
    base32_encode(&bytes)
}

/// The `otpauth://` URI authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let issuer_enc = percent(issuer);
    format!(
        "otpauth://totp/{issuer_enc}:{}?secret={secret}&issuer={issuer_enc}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        percent(account)
    )
}

/// The 6-digit code of `secret` (base32) at time step `step`.
pub fn code_at(secret: &str, step: i64) -> Option<String> {
    let key = base32_decode(secret)?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    Some(format!("{:06}", bin % 1_000_000))
}

/// The step a right `code` belongs to, looking one step either side of `now_secs` (clocks
/// drift) and never at or before `last_step` (a code works once).
pub fn verify(secret: &str, code: &str, now_secs: i64, last_step: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = now_secs.div_euclid(STEP_SECS);
    let mut found = None;
    for step in [now_step - 1, now_step, now_step + 1] {
        let expected = code_at(secret, step)?;
        // Compared in constant time; every candidate is checked so timing says nothing.
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && step > last_step {
            found = Some(step);
        }
    }
    found
}

/// New recovery codes, `XXXXX-XXXXX` (about 49 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let code = crate::tokens::new_invite_code();
            format!("{}-{}", &code[..5], &code[5..])
        })
        .collect()
}

/// What is stored for a recovery code: the hash of its normalised form, so case, spaces and
/// the dash do not matter when typed.
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hash_token(&format!("recovery:{normal}"))
}

/// Whether typed text looks like a recovery code rather than a 6-digit TOTP code.
pub fn looks_like_recovery(code: &str) -> bool {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).count() == 10
}

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(BASE32[((buffer >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=' && c != b' ') {
        let value = BASE32.iter().position(|&x| x == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, key "12345678901234567890", last 6 of the 8 digits.
        let secret = base32_encode(b"12345678901234567890");
        assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(code_at(&secret, 59 / 30).as_deref(), Some("287082"));
        assert_eq!(code_at(&secret, 1111111109 / 30).as_deref(), Some("081804"));
        assert_eq!(code_at(&secret, 2000000000 / 30).as_deref(), Some("279037"));
    }

    #[test]
    fn a_code_works_once_and_within_one_step() {
        let secret = new_secret();
        let now = 1_700_000_000;
        let code = code_at(&secret, now / 30).unwrap();
        let step = verify(&secret, &code, now, 0).unwrap();
        assert_eq!(verify(&secret, &code, now, step), None, "replayed");
        assert!(
            verify(&secret, &code, now + 30, 0).is_some(),
            "one step late"
        );
        assert_eq!(verify(&secret, &code, now + 90, 0), None, "too late");
        assert_eq!(verify(&secret, "12345", now, 0), None);
        assert_eq!(verify(&secret, "abcdef", now, 0), None);
    }

    #[test]
    fn recovery_codes_normalise() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(looks_like_recovery(&codes[0]));
        assert_eq!(
            recovery_hash(&codes[0]),
            recovery_hash(&codes[0].to_lowercase().replace('-', " "))
        );
        assert!(
            otpauth_uri("Skein", "ada@example.com", "ABC")
                .starts_with("otpauth://totp/Skein:ada@example.com?secret=ABC")
        );
    }
}
