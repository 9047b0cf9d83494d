//! Skein's Relay service. This first part holds API keys: users create, list, change and
//! revoke them under `/api/v1/keys`, and the gateway authenticates `/v1` requests with them
//! through [`KeyDirectory`]. Channels, routing and the vendor-compatible endpoints build on it.
//!
//! **Architecture Invariant:** only this crate touches `api_keys`; a key's secret exists only
//! in the creation response; the table holds its SHA-256.

mod http;
pub mod keys;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use skein_core::ApiError;
use skein_core::api::{AccountEvents, KeyDirectory, KeyInfo, UserDirectory};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

use keys::KeyRow;

/// The Relay service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: "relay",
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// How long an instance trusts its cached view of a key or its owner.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// The Relay service.
pub struct RelayService {
    db: Db,
    users: Arc<dyn UserDirectory>,
    groups: Vec<String>,
    /// Keys by secret hash; dropped at once when this instance changes or revokes a key.
    key_cache: Cache<String, Arc<KeyRow>>,
    /// Whether an owner is active, by user id.
    owner_cache: Cache<String, bool>,
}

impl RelayService {
    /// Builds the service; `groups` are the channel groups a key may name.
    pub fn new(db: Db, users: Arc<dyn UserDirectory>, groups: Vec<String>) -> Arc<Self> {
        let key_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        let owner_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        Arc::new(RelayService {
            db,
            users,
            groups,
            key_cache,
            owner_cache,
        })
    }

    /// The service's `/api/v1` routes (key management).
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// The vendor-compatible routes (`/v1/...`).
    pub fn vendor_routes(self: Arc<Self>) -> axum::Router {
        http::vendor_routes(self)
    }

    fn forget_key(&self, key_hash: &str) {
        self.key_cache.invalidate(key_hash);
    }
}

#[async_trait]
impl KeyDirectory for RelayService {
    async fn authenticate_key(&self, secret: &str, client_ip: IpAddr) -> Result<KeyInfo, ApiError> {
        let hash = keys::hash_secret(secret);
        let row = match self.key_cache.get(&hash) {
            Some(row) => row,
            None => {
                let row = keys::by_hash(&self.db, &hash)
                    .await?
                    .map(Arc::new)
                    .ok_or_else(keys::invalid_key)?;
                self.key_cache.insert(hash, row.clone());
                row
            }
        };
        row.usable(skein_core::ids::now_ms(), client_ip)?;
        let active = match self.owner_cache.get(&row.user_id) {
            Some(active) => active,
            None => {
                let active = self.users.user_active(&row.user_id).await?;
                self.owner_cache.insert(row.user_id.clone(), active);
                active
            }
        };
        if !active {
            return Err(keys::invalid_key());
        }
        Ok(row.info())
    }
}

#[async_trait]
impl AccountEvents for RelayService {
    async fn user_status_changed(&self, user_id: &str) -> Result<(), ApiError> {
        self.owner_cache.invalidate(user_id);
        Ok(())
    }
}
