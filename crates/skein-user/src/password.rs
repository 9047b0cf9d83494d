//! Argon2id password hashing, off the async runtime.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use skein_core::{ApiError, ApiResult};

/// Hashes and verifies passwords with the configured argon2id cost.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password: verifying against it when an account does not exist makes
    /// "no such user" take as long as "wrong password", so timing reveals no accounts.
    decoy: Arc<String>,
}

impl Passwords {
    /// Prepares hashing with `memory_kib` and `iterations`.
    pub fn new(memory_kib: u32, iterations: u32) -> ApiResult<Self> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(ApiError::internal)?;
        let salt = SaltString::generate(&mut OsRng);
        let decoy = argon(&params)
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map_err(ApiError::internal)?
            .to_string();
        Ok(Passwords {
            params,
            decoy: Arc::new(decoy),
        })
    }

    /// The PHC string for a new password.
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon(&params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(ApiError::internal)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Whether `password` matches the stored hash; `None` verifies against the decoy and
    /// answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> ApiResult<bool> {
        let is_decoy = stored.is_none();
        let stored = stored.unwrap_or_else(|| self.decoy.as_ref().clone());
        let params = self.params.clone();
        let matches = tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored).map_err(ApiError::internal)?;
            Ok::<bool, ApiError>(
                argon(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(ApiError::internal)??;
        Ok(matches && !is_decoy)
    }
}

fn argon(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let p = Passwords::new(8 * 1024, 1).expect("params");
        let hash = p.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            p.verify("correct horse".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !p.verify("wrong horse".into(), Some(hash))
                .await
                .expect("verify")
        );
        assert!(!p.verify("anything".into(), None).await.expect("decoy"));
    }
}
