//! API keys: secrets, storage, the checks a key must pass on every request, and parsing of
//! what owners set on them.

use std::net::IpAddr;

use ipnet::IpNet;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use skein_core::ApiResult;
use skein_core::api::KeyInfo;
use skein_core::ids::ms_to_rfc3339;
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

use crate::errors;

/// Length of the random part of a key.
const SECRET_LEN: usize = 48;
/// Most models or address ranges one key may list.
pub const MAX_LIST: usize = 200;

/// A new secret: `sk-` and 48 letters and digits (about 285 bits).
pub fn new_secret() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    let body: String = (0..SECRET_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("sk-{body}")
}

/// What is stored for a secret.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

/// A recognisable but useless fragment: `sk-abcd...wxyz`.
pub fn hint(secret: &str) -> String {
    let head: String = secret.chars().take(7).collect();
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}...{tail}")
}

/// Whether an API key works; stored and sent as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// The key works (within its expiry, addresses and limits).
    Active,
    /// Switched off by its owner (or revoked).
    Disabled,
}

impl KeyStatus {
    /// The stored and sent name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
        }
    }

    /// The status named `name`, if this build knows it.
    pub fn parse(name: &str) -> Option<KeyStatus> {
        [KeyStatus::Active, KeyStatus::Disabled]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// Decoding a stored status (`#[sqlx(try_from = "String")]`): a name this build does not
/// know reads as `Disabled`, so such a key does not work rather than every key failing to load.
impl From<String> for KeyStatus {
    fn from(name: String) -> Self {
        KeyStatus::parse(&name).unwrap_or(KeyStatus::Disabled)
    }
}

/// An `api_keys` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Owner's label.
    pub name: String,
    /// `sk-abcd...wxyz`.
    pub key_hint: String,
    /// Whether it works.
    #[sqlx(try_from = "String")]
    pub status: KeyStatus,
    /// Expiry, ms.
    pub expires_at: Option<i64>,
    /// Own quota limit.
    pub quota_limit: Option<i64>,
    /// JSON array of model names.
    pub allowed_models: Option<String>,
    /// JSON array of CIDRs.
    pub allowed_ips: Option<String>,
    /// Channel group.
    pub group_name: String,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
    /// Last use, ms.
    pub last_used_at: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
}

const KEY_COLUMNS: &str = "id, user_id, name, key_hint, status, expires_at, quota_limit, allowed_models, allowed_ips, \
     group_name, rpm_limit, tpm_limit, last_used_at, created_at";

impl KeyRow {
    fn models(&self) -> Option<Vec<String>> {
        self.allowed_models
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
    }

    fn ips(&self) -> Option<Vec<IpNet>> {
        self.allowed_ips
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok())
    }

    /// Whether the key may be used now from `ip`.
    pub fn usable(&self, now: i64, ip: IpAddr) -> ApiResult<()> {
        if self.status != KeyStatus::Active {
            return Err(errors::invalid_key());
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(errors::api_key_expired());
        }
        if let Some(nets) = self.ips()
            && !nets.iter().any(|net| net.contains(&ip))
        {
            return Err(errors::ip_not_allowed(ip));
        }
        Ok(())
    }

    /// The permissions handed to the Relay's handlers, with the key's limits clamped to the
    /// server's ceilings now (a key stored before a ceiling was lowered gets the new one).
    pub fn info(&self, max_rpm: u32, max_tpm: Option<u32>) -> KeyInfo {
        let clamp = |v: i64, max: u32| u32::try_from(v).map_or(max, |v| v.min(max));
        KeyInfo {
            key_id: self.id.clone(),
            user_id: self.user_id.clone(),
            group: self.group_name.clone(),
            allowed_models: self.models(),
            quota_limit: self.quota_limit,
            rpm_limit: self.rpm_limit.map(|v| clamp(v, max_rpm)),
            tpm_limit: match (self.tpm_limit, max_tpm) {
                (Some(v), Some(max)) => Some(clamp(v, max)),
                (Some(v), None) => u32::try_from(v).ok(),
                (None, max) => max,
            },
        }
    }
}

/// An API key as its owner sees it (never the secret, except once at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    /// Id.
    pub id: String,
    /// The secret: present only in the answer to creation. Store it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Label.
    pub name: String,
    /// `sk-abcd...wxyz`, to recognise the key.
    pub key_hint: String,
    /// `active` or `disabled`.
    pub status: KeyStatus,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// Quota the key may spend in all; `null` for unlimited.
    pub quota_limit: Option<i64>,
    /// Models the key may use; `null` for any.
    pub allowed_models: Option<Vec<String>>,
    /// Client addresses or CIDR ranges the key works from; `null` for any.
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Vec<String>>,
    /// Price group (one of the owner's granted groups).
    pub group: String,
    /// Requests per minute; `null` for the server default (never above it).
    pub rpm_limit: Option<i64>,
    /// Tokens per minute; `null` for none.
    pub tpm_limit: Option<i64>,
    /// RFC 3339.
    pub last_used_at: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<KeyRow> for ApiKey {
    fn from(row: KeyRow) -> Self {
        ApiKey {
            allowed_models: row.models(),
            allowed_ips: row
                .ips()
                .map(|nets| nets.iter().map(ToString::to_string).collect()),
            id: row.id,
            key: None,
            name: row.name,
            key_hint: row.key_hint,
            status: row.status,
            expires_at: row.expires_at.map(ms_to_rfc3339),
            quota_limit: row.quota_limit,
            group: row.group_name,
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
            last_used_at: row.last_used_at.map(ms_to_rfc3339),
            created_at: ms_to_rfc3339(row.created_at),
        }
    }
}

/// A live key by secret hash (deleted keys are never found).
pub async fn by_hash(db: &Db, hash: &str) -> DbResult<Option<KeyRow>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND deleted_at IS NULL");
    Ok(sqlx::query_as(&sql)
        .bind(hash)
        .fetch_optional(db.pool())
        .await?)
}

/// One of a user's live keys.
pub async fn by_id(db: &Db, user_id: &str, id: &str) -> DbResult<Option<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"
    );
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?)
}

/// The secret hash of a key (to drop it from caches).
pub async fn hash_of(db: &Db, id: &str) -> DbResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.0))
}

/// A page of a user's live keys, newest first.
pub async fn list(db: &Db, user_id: &str, limit: i64, offset: i64) -> DbResult<(Vec<KeyRow>, i64)> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query_as(&sql)
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// Settings of a key, already validated.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// Label.
    pub name: String,
    /// Whether it works.
    pub status: KeyStatus,
    /// Expiry, ms.
    pub expires_at: Option<i64>,
    /// Own quota limit.
    pub quota_limit: Option<i64>,
    /// Model allowlist.
    pub allowed_models: Option<Vec<String>>,
    /// Address allowlist.
    pub allowed_ips: Option<Vec<IpNet>>,
    /// Channel group.
    pub group: String,
    /// Requests per minute.
    pub rpm_limit: Option<i64>,
    /// Tokens per minute.
    pub tpm_limit: Option<i64>,
}

impl KeySettings {
    /// The settings a row has now.
    pub fn of(row: &KeyRow) -> Self {
        KeySettings {
            name: row.name.clone(),
            status: row.status,
            expires_at: row.expires_at,
            quota_limit: row.quota_limit,
            allowed_models: row.models(),
            allowed_ips: row.ips(),
            group: row.group_name.clone(),
            rpm_limit: row.rpm_limit,
            tpm_limit: row.tpm_limit,
        }
    }

    fn models_json(&self) -> Option<String> {
        self.allowed_models
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "[]".into()))
    }

    fn ips_json(&self) -> Option<String> {
        self.allowed_ips
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_else(|_| "[]".into()))
    }
}

/// Stores a new key.
pub async fn insert(
    db: &Db,
    id: &str,
    user_id: &str,
    secret: &str,
    s: &KeySettings,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, user_id, name, key_hash, key_hint, status, expires_at, quota_limit, allowed_models, \
         allowed_ips, group_name, rpm_limit, tpm_limit, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(id)
    .bind(user_id)
    .bind(&s.name)
    .bind(hash_secret(secret))
    .bind(hint(secret))
    .bind(s.status.as_str())
    .bind(s.expires_at)
    .bind(s.quota_limit)
    .bind(s.models_json())
    .bind(s.ips_json())
    .bind(&s.group)
    .bind(s.rpm_limit)
    .bind(s.tpm_limit)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Replaces a key's settings.
pub async fn update(db: &Db, id: &str, user_id: &str, s: &KeySettings, now: i64) -> DbResult<()> {
    sqlx::query(
        "UPDATE api_keys SET name = $3, status = $4, expires_at = $5, quota_limit = $6, allowed_models = $7, \
         allowed_ips = $8, group_name = $9, rpm_limit = $10, tpm_limit = $11, updated_at = $12 \
         WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(user_id)
    .bind(&s.name)
    .bind(s.status.as_str())
    .bind(s.expires_at)
    .bind(s.quota_limit)
    .bind(s.models_json())
    .bind(s.ips_json())
    .bind(&s.group)
    .bind(s.rpm_limit)
    .bind(s.tpm_limit)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Revokes a key for good (kept for the usage records that name it).
pub async fn delete(db: &Db, id: &str, user_id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query("UPDATE api_keys SET deleted_at = $3, status = 'disabled' WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL")
        .bind(id)
        .bind(user_id)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// How many live keys a user has.
pub async fn count(db: &Db, user_id: &str) -> DbResult<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}

/// Parses an address or CIDR (`10.0.0.0/8`, `2001:db8::/32`, `203.0.113.7`).
pub fn parse_net(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hinted() {
        let a = new_secret();
        assert!(a.starts_with("sk-") && a.len() == 51);
        assert_ne!(a, new_secret());
        assert_eq!(hash_secret(&a).len(), 64);
        let h = hint(&a);
        assert!(h.starts_with(&a[..7]) && h.ends_with(&a[a.len() - 4..]) && h.len() < 20);
    }

    #[test]
    fn nets_parse_addresses_and_ranges() {
        assert!(parse_net("10.0.0.0/8").is_some_and(|n| {
            n.contains(
                &"10.1.2.3"
                    .parse::<IpAddr>()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0])),
            )
        }));
        assert!(parse_net("203.0.113.7").is_some());
        assert!(parse_net("::1").is_some());
        assert!(parse_net("not-an-ip").is_none());
        assert!(parse_net("10.0.0.0/33").is_none());
    }
}
