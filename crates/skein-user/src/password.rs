//! Argon2id password hashing, off the async runtime and a few at a time.
//!
//! Each hash takes `argon2_memory_kib` of memory (19 MiB by default): a thousand parallel
//! sign-ins would ask for 19 GB. A semaphore sized to the cores lets only that many run at
//! once; the rest wait their turn, holding nothing but a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    /// Hashes allowed to run at once (one per core).
    permits: Arc<tokio::sync::Semaphore>,
    /// Hashes running now and the most ever seen at once (the bound's proof in tests).
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
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
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Passwords {
            params,
            decoy: Arc::new(decoy),
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
            running: Arc::default(),
            peak: Arc::default(),
        })
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// The most hashes that ever ran at the same time.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Runs one argon2 computation on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        let running = self.running.clone();
        let peak = self.peak.clone();
        tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let out = work();
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
            out
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// The PHC string for a new password.
    pub async fn hash(&self, password: String) -> ApiResult<String> {
        let params = self.params.clone();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon(&params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(ApiError::internal)
        })
        .await
    }

    /// Whether `password` matches the stored hash; `None` verifies against the decoy and
    /// answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> ApiResult<bool> {
        let is_decoy = stored.is_none();
        let stored = stored.unwrap_or_else(|| self.decoy.as_ref().clone());
        let params = self.params.clone();
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&stored).map_err(ApiError::internal)?;
                Ok(argon(&params)
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_hashes_never_exceed_the_core_count() {
        let p = Passwords::new(8 * 1024, 1).expect("params");
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let p = p.clone();
                tokio::spawn(async move { p.hash(format!("password {i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("hash");
        }
        assert!(p.peak() >= 1);
        assert!(
            p.peak() <= p.concurrency(),
            "{} hashes ran at once on {} cores",
            p.peak(),
            p.concurrency()
        );
    }
}
