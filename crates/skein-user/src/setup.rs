//! The first run: while no account exists, registering the first (root) account needs a
//! one-time setup token, so whoever reaches a fresh server first cannot take it over.
//!
//! The token is the configured `server.setup_token`, or a random one made at start and
//! printed to the log by `skein serve` (regenerated each start; only its SHA-256 is kept).

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use skein_core::ApiResult;

use crate::tokens::{hash_token, new_refresh_token};
use crate::{UserService, store};

/// What the service knows about set-up.
#[derive(Default)]
pub(crate) struct SetupGate {
    /// SHA-256 of the token that opens the first registration; `None` until prepared.
    token_hash: RwLock<Option<String>>,
    /// Set once an account exists, so the public check needs no query after that.
    done: AtomicBool,
}

impl SetupGate {
    /// Whether `given` is the setup token.
    pub(crate) fn accepts(&self, given: Option<&str>) -> bool {
        let Some(given) = given.map(str::trim).filter(|t| !t.is_empty()) else {
            return false;
        };
        let expected = self.token_hash.read().map(|h| h.clone()).unwrap_or(None);
        // Both sides are SHA-256 digests, so comparing them leaks nothing about the token.
        expected.is_some_and(|expected| expected == hash_token(given))
    }

    /// Records that an account exists.
    pub(crate) fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        if let Ok(mut hash) = self.token_hash.write() {
            *hash = None;
        }
    }
}

impl UserService {
    /// Prepares the first-run gate at start: answers the token to print when no account exists
    /// yet and none was configured; `None` when set-up is done or the token is configured.
    pub async fn prepare_setup(&self, configured: Option<&str>) -> ApiResult<Option<String>> {
        if !self.needs_setup().await? {
            return Ok(None);
        }
        let (token, generated) = match configured {
            Some(token) => (token.trim().to_string(), false),
            None => (format!("sks_{}", &new_refresh_token()[4..]), true),
        };
        if let Ok(mut hash) = self.setup.token_hash.write() {
            *hash = Some(hash_token(&token));
        }
        Ok(generated.then_some(token))
    }

    /// Whether no account has been made yet (the first registration needs the setup token).
    pub async fn needs_setup(&self) -> ApiResult<bool> {
        if self.setup.done.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let claimed = store::flag_exists(self.db.pool(), "root_claimed").await?;
        if claimed {
            self.setup.finish();
        }
        Ok(!claimed)
    }
}
