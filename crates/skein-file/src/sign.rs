//! Signed, expiring URLs: `?exp=<unix secs>&sig=<HMAC-SHA256>` over what the URL grants (a
//! file and variant, or a share's download), so a CDN or a browser can fetch without a
//! session, and nothing else can be reached with the signature.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a signature grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A file's content (a variant of it, or the original).
    File,
    /// A share's download, once its password was given.
    Share,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::File => "file",
            Scope::Share => "share",
        }
    }
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// Signed, but past its expiry.
    Expired,
    /// Not signed by us, or for something else.
    Forged,
}

/// Signs and checks URLs with the deployment's signing key.
#[derive(Clone)]
pub struct Signer {
    base: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(********)")
    }
}

impl Signer {
    /// A signer with `key` (HMAC takes keys of any length; the error is for the type's sake).
    pub fn new(key: &[u8]) -> Result<Self, String> {
        let base = HmacSha256::new_from_slice(key).map_err(|e| e.to_string())?;
        Ok(Signer { base })
    }

    fn mac(&self, scope: Scope, subject: &str, variant: &str, exp: i64) -> HmacSha256 {
        let mut mac = self.base.clone();
        mac.update(format!("{}\n{subject}\n{variant}\n{exp}", scope.as_str()).as_bytes());
        mac
    }

    /// The signature of `subject` (a file id or share token) and `variant` until `exp`.
    pub fn sign(&self, scope: Scope, subject: &str, variant: &str, exp: i64) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac(scope, subject, variant, exp)
                .finalize()
                .into_bytes(),
        )
    }

    /// Checks a signature in constant time, then its expiry (`now` in unix seconds).
    pub fn verify(
        &self,
        scope: Scope,
        subject: &str,
        variant: &str,
        exp: i64,
        sig: &str,
        now: i64,
    ) -> Result<(), SignatureError> {
        let Ok(given) = URL_SAFE_NO_PAD.decode(sig) else {
            return Err(SignatureError::Forged);
        };
        self.mac(scope, subject, variant, exp)
            .verify_slice(&given)
            .map_err(|_| SignatureError::Forged)?;
        if exp <= now {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_everything_they_grant() {
        let s = Signer::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let sig = s.sign(Scope::File, "f1", "", 100);
        assert_eq!(s.verify(Scope::File, "f1", "", 100, &sig, 50), Ok(()));
        assert_eq!(
            s.verify(Scope::File, "f1", "", 100, &sig, 100),
            Err(SignatureError::Expired)
        );
        for (scope, id, variant, exp) in [
            (Scope::Share, "f1", "", 100),
            (Scope::File, "f2", "", 100),
            (Scope::File, "f1", "thumb", 100),
            (Scope::File, "f1", "", 101),
        ] {
            assert_eq!(
                s.verify(scope, id, variant, exp, &sig, 50),
                Err(SignatureError::Forged)
            );
        }
        let other = Signer::new(b"another key another key another k").unwrap();
        assert_eq!(
            other.verify(Scope::File, "f1", "", 100, &sig, 50),
            Err(SignatureError::Forged)
        );
    }
}
