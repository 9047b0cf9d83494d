//! Channels: upstream accounts (a vendor, a base URL, one or more keys, the models they serve)
//! and the in-memory table the hot path routes with, so a relay request never reads channels
//! from the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use skein_core::ids::ms_to_rfc3339;
use skein_core::{ApiError, ApiResult};
use skein_db::sqlx;
use skein_db::{Db, DbResult};
use utoipa::ToSchema;

use crate::vault::Vault;

pub mod health;
pub mod kind;
pub mod status;

pub use health::{ChannelHealth, ModelHealth, balance_is_low};
pub use kind::{ChannelKind, StoredKind, UnknownKind};
pub use status::ChannelStatus;

/// What is encrypted: upstream keys and extra headers (either may carry credentials).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChannelSecrets {
    /// Upstream API keys, used round-robin.
    pub keys: Vec<String>,
    /// Extra headers sent upstream.
    pub headers: BTreeMap<String, String>,
}

/// A `channels` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRow {
    /// Id.
    pub id: String,
    /// Wire format, as stored (a kind this build does not know stays readable).
    #[sqlx(try_from = "String")]
    pub kind: StoredKind,
    /// Label.
    pub name: String,
    /// Upstream base URL.
    pub base_url: String,
    /// Sealed [`ChannelSecrets`].
    pub secrets: String,
    /// How many keys.
    pub key_count: i64,
    /// JSON array of model names.
    pub models: String,
    /// JSON object client name → upstream name.
    pub model_mapping: String,
    /// JSON array of groups.
    pub groups_list: String,
    /// Higher first.
    pub priority: i64,
    /// Share inside a priority.
    pub weight: i64,
    /// Upstream timeout.
    pub timeout_secs: i64,
    /// JSON array of extra header names (values are sealed).
    pub header_names: String,
    /// JSON object merged into the body sent upstream.
    pub param_overrides: String,
    /// In rotation or not, and why.
    #[sqlx(try_from = "String")]
    pub status: ChannelStatus,
    /// Why it is not enabled.
    pub status_reason: Option<String>,
    /// What the channel costs upstream relative to the model's price list, per-mille.
    pub cost_ratio_permille: i64,
    /// The upstream balance the vendor last reported.
    pub balance: Option<f64>,
    /// Its currency.
    pub balance_currency: Option<String>,
    /// When it was read, ms.
    pub balance_at: Option<i64>,
    /// Under this balance the channel is tried last and shown as low.
    pub low_balance_threshold: Option<f64>,
    /// Last test, ms.
    pub last_test_at: Option<i64>,
    /// Last test latency.
    pub last_test_latency_ms: Option<i64>,
    /// Last test outcome.
    pub last_test_result: Option<String>,
    /// Created, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
}

const CHANNEL_COLUMNS: &str = "id, kind, name, base_url, secrets, key_count, models, model_mapping, groups_list, priority, \
     weight, timeout_secs, header_names, param_overrides, cost_ratio_permille, balance, balance_currency, balance_at, low_balance_threshold, status, status_reason, last_test_at, last_test_latency_ms, last_test_result, created_at, updated_at";

/// A channel as admins see it: never a key or header value.
#[derive(Debug, Serialize, ToSchema)]
pub struct Channel {
    /// Id.
    pub id: String,
    /// Wire format. A channel of a kind this version does not know (written by a newer one)
    /// shows that kind's name, with status `disabled` and the reason.
    #[serde(rename = "type")]
    #[schema(value_type = ChannelKind)]
    pub kind: StoredKind,
    /// Label.
    pub name: String,
    /// Upstream base URL.
    pub base_url: String,
    /// How many keys it holds (the keys are never shown again).
    pub key_count: i64,
    /// Models it serves.
    pub models: Vec<String>,
    /// Client model name → upstream model name.
    pub model_mapping: BTreeMap<String, String>,
    /// Groups that may use it.
    pub groups: Vec<String>,
    /// Higher priorities are tried first.
    pub priority: i64,
    /// Share of traffic inside its priority.
    pub weight: i64,
    /// Upstream timeout, seconds.
    pub timeout_secs: i64,
    /// Names of the extra headers sent upstream (values are secret).
    pub header_names: Vec<String>,
    /// Fields merged into every body sent upstream through this channel (they win over the
    /// client's).
    #[schema(value_type = Object)]
    pub param_overrides: serde_json::Map<String, serde_json::Value>,
    /// What the channel costs upstream relative to the model's price list, per-mille (1000 =
    /// list price); the `cost` routing strategy prefers the lowest.
    pub cost_ratio_permille: i64,
    /// This instance's measurements of the channel (absent before its first request here).
    pub health: Option<ChannelHealth>,
    /// The upstream balance the vendor last reported (vendors with a balance endpoint:
    /// `deepseek`, `moonshot`, `siliconflow`).
    pub balance: Option<f64>,
    /// Its currency (`CNY`, `USD`).
    pub balance_currency: Option<String>,
    /// RFC 3339 of when it was read.
    pub balance_at: Option<String>,
    /// Under this balance the channel is tried last, whatever the routing strategy.
    pub low_balance_threshold: Option<f64>,
    /// Whether the balance is under the threshold.
    pub balance_low: bool,
    /// `enabled`, `disabled` or `auto_disabled`.
    pub status: ChannelStatus,
    /// Why it is not enabled.
    pub status_reason: Option<String>,
    /// This instance's circuit breaker: `closed` (traffic flows), `open` (kept away after
    /// repeated failures) or `half_open` (one trial request decides).
    pub circuit: &'static str,
    /// RFC 3339 of when the breaker opened or went half-open (absent when closed).
    pub circuit_since: Option<String>,
    /// The last upstream failure this instance saw on the channel (a status or transport
    /// error, never a key), kept after the breaker closes.
    pub last_error: Option<String>,
    /// RFC 3339 of that failure.
    pub last_error_at: Option<String>,
    /// RFC 3339 of the last test.
    pub last_test_at: Option<String>,
    /// Latency of the last test.
    pub last_test_latency_ms: Option<i64>,
    /// Outcome of the last test.
    pub last_test_result: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

fn json_or<T: for<'de> Deserialize<'de> + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

impl From<ChannelRow> for Channel {
    fn from(r: ChannelRow) -> Self {
        let (status, status_reason) = match r.kind.known() {
            Ok(_) => (r.status, r.status_reason),
            Err(unknown) => (ChannelStatus::Disabled, Some(unknown.to_string())),
        };
        Channel {
            models: json_or(&r.models),
            model_mapping: json_or(&r.model_mapping),
            groups: json_or(&r.groups_list),
            header_names: json_or(&r.header_names),
            param_overrides: json_or(&r.param_overrides),
            id: r.id,
            kind: r.kind,
            name: r.name,
            base_url: r.base_url,
            key_count: r.key_count,
            priority: r.priority,
            weight: r.weight,
            timeout_secs: r.timeout_secs,
            cost_ratio_permille: r.cost_ratio_permille,
            health: None,
            balance_low: r
                .balance
                .is_some_and(|b| balance_is_low(b, r.low_balance_threshold)),
            balance: r.balance,
            balance_currency: r.balance_currency,
            balance_at: r.balance_at.map(ms_to_rfc3339),
            low_balance_threshold: r.low_balance_threshold,
            status,
            status_reason,
            circuit: "closed",
            circuit_since: None,
            last_error: None,
            last_error_at: None,
            last_test_at: r.last_test_at.map(ms_to_rfc3339),
            last_test_latency_ms: r.last_test_latency_ms,
            last_test_result: r.last_test_result,
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// Validated settings of a channel.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// Wire format.
    pub kind: ChannelKind,
    /// Label.
    pub name: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Keys and headers.
    pub secrets: ChannelSecrets,
    /// Models.
    pub models: Vec<String>,
    /// Mapping.
    pub model_mapping: BTreeMap<String, String>,
    /// Groups.
    pub groups: Vec<String>,
    /// Priority.
    pub priority: i64,
    /// Weight.
    pub weight: i64,
    /// Timeout.
    pub timeout_secs: i64,
    /// Fields merged into the upstream body.
    pub param_overrides: serde_json::Map<String, serde_json::Value>,
    /// Upstream cost relative to the price list, per-mille.
    pub cost_ratio_permille: i64,
    /// The low-balance threshold (`None`: no alert).
    pub low_balance_threshold: Option<f64>,
    /// `enabled` or `disabled`.
    pub status: ChannelStatus,
}

/// The associated data a channel's secrets are sealed with: its id, so a sealed value copied
/// into another channel's row does not open there.
fn secrets_owner(id: &str) -> Vec<u8> {
    format!("skein-channel:{id}").into_bytes()
}

/// Opens a channel's sealed secrets (bound to `id`, or sealed before binding existed).
pub fn open_secrets(vault: &Vault, id: &str, sealed: &str) -> ApiResult<ChannelSecrets> {
    let plain = vault.open_bound(sealed, &secrets_owner(id))?;
    serde_json::from_slice(&plain).map_err(ApiError::internal)
}

/// Seals a channel's secrets bound to its id.
pub fn seal_secrets(vault: &Vault, id: &str, secrets: &ChannelSecrets) -> ApiResult<String> {
    let plain = serde_json::to_vec(secrets).map_err(ApiError::internal)?;
    vault.seal_bound(&plain, &secrets_owner(id))
}

/// Re-seals, bound to their channel, the secrets of rows sealed before binding existed, so no
/// unbound (movable) value stays in the database after a load. The write is conditional on
/// the old value, so a concurrent admin edit wins. Rows that cannot be opened are left alone
/// (the table skips them and logs why). Returns how many rows were upgraded.
pub async fn bind_legacy_secrets(db: &Db, vault: &Vault, rows: &mut [ChannelRow]) -> usize {
    let mut upgraded = 0;
    for row in rows.iter_mut().filter(|r| !Vault::is_bound(&r.secrets)) {
        let Ok(secrets) = open_secrets(vault, &row.id, &row.secrets) else {
            continue;
        };
        let Ok(sealed) = seal_secrets(vault, &row.id, &secrets) else {
            continue;
        };
        let written =
            sqlx::query("UPDATE channels SET secrets = $1 WHERE id = $2 AND secrets = $3")
                .bind(&sealed)
                .bind(&row.id)
                .bind(&row.secrets)
                .execute(db.pool())
                .await;
        match written {
            Ok(done) if done.rows_affected() == 1 => {
                row.secrets = sealed;
                upgraded += 1;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(channel = %row.id, %error, "could not re-seal a channel's secrets bound to it");
            }
        }
    }
    upgraded
}

/// Stores a channel (insert or full replace).
pub async fn save(
    db: &Db,
    vault: &Vault,
    id: &str,
    s: &ChannelSettings,
    now: i64,
    insert: bool,
) -> ApiResult<()> {
    let sealed = seal_secrets(vault, id, &s.secrets)?;
    let header_names: Vec<&String> = s.secrets.headers.keys().collect();
    let sql = if insert {
        "INSERT INTO channels (id, kind, name, base_url, secrets, key_count, models, model_mapping, groups_list, priority, \
         weight, timeout_secs, header_names, status, created_at, updated_at, param_overrides, cost_ratio_permille, low_balance_threshold) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17, NULLIF($18, -1.0))"
    } else {
        "UPDATE channels SET kind = $2, name = $3, base_url = $4, secrets = $5, key_count = $6, models = $7, \
         model_mapping = $8, groups_list = $9, priority = $10, weight = $11, timeout_secs = $12, header_names = $13, \
         status = $14, status_reason = NULL, updated_at = $15, param_overrides = $16, cost_ratio_permille = $17, low_balance_threshold = NULLIF($18, -1.0) WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id)
        .bind(s.kind)
        .bind(&s.name)
        .bind(&s.base_url)
        .bind(sealed)
        .bind(i64::try_from(s.secrets.keys.len()).unwrap_or(0))
        .bind(json(&s.models))
        .bind(json(&s.model_mapping))
        .bind(json(&s.groups))
        .bind(s.priority)
        .bind(s.weight)
        .bind(s.timeout_secs)
        .bind(json(&header_names))
        .bind(s.status.as_str())
        .bind(now)
        .bind(json(&s.param_overrides))
        .bind(s.cost_ratio_permille)
        .bind(skein_db::float_or_null(s.low_balance_threshold))
        .execute(db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
    Ok(())
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// One channel.
pub async fn by_id(db: &Db, id: &str) -> DbResult<Option<ChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(db.pool())
        .await?)
}

/// Every channel, highest priority first.
pub async fn all(db: &Db) -> DbResult<Vec<ChannelRow>> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels ORDER BY priority DESC, created_at");
    Ok(sqlx::query_as(&sql).fetch_all(db.pool()).await?)
}

/// Deletes a channel, with its model probes.
pub async fn delete(db: &Db, id: &str) -> DbResult<bool> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM relay_model_probes WHERE channel_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM channels WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(deleted)
}

/// `row` as a channel to send to, whatever its status (a test, a probe, a balance read), for
/// its first group and model; `None` when it lists neither or its secrets cannot be read.
pub fn live(row: &ChannelRow, vault: &Vault) -> Option<std::sync::Arc<LiveChannel>> {
    let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
    let groups: Vec<String> = serde_json::from_str(&row.groups_list).unwrap_or_default();
    let (model, group) = (models.first()?, groups.first()?);
    let table = ChannelTable::build(
        &[ChannelRow {
            status: ChannelStatus::Enabled,
            ..row.clone()
        }],
        vault,
    );
    table.candidates(group, model).into_iter().next()
}

/// Sets a channel's status and why (automatic disabling and re-enabling).
pub async fn set_status(
    db: &Db,
    id: &str,
    status: ChannelStatus,
    reason: Option<&str>,
    now: i64,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE channels SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records a test's outcome.
pub async fn record_test(
    db: &Db,
    id: &str,
    now: i64,
    latency_ms: i64,
    result: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE channels SET last_test_at = $2, last_test_latency_ms = $3, last_test_result = $4 WHERE id = $1")
        .bind(id)
        .bind(now)
        .bind(latency_ms)
        .bind(result)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A channel ready to route to, with its secrets decrypted.
#[derive(Debug)]
pub struct LiveChannel {
    /// Id.
    pub id: String,
    /// Name, for logs.
    pub name: String,
    /// Wire format.
    pub kind: ChannelKind,
    /// Base URL.
    pub base_url: String,
    /// Keys, round-robin.
    pub keys: Vec<String>,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
    /// Client name → upstream name.
    pub model_mapping: BTreeMap<String, String>,
    /// Priority.
    pub priority: i64,
    /// Weight.
    pub weight: i64,
    /// Timeout, seconds.
    pub timeout_secs: i64,
    /// Fields merged into the upstream body (`None` when there are none).
    pub param_overrides: Option<serde_json::Map<String, serde_json::Value>>,
    /// Upstream cost relative to the price list, per-mille.
    pub cost_ratio_permille: i64,
    next_key: std::sync::atomic::AtomicUsize,
    /// Its upstream URLs by path, parsed once (see [`LiveChannel::post`]).
    urls: Mutex<Vec<(&'static str, reqwest::Url)>>,
}

impl LiveChannel {
    /// `body` with this channel's overrides merged in (borrowed as is when it has none).
    pub fn with_overrides<'a>(
        &self,
        body: &'a serde_json::Value,
    ) -> std::borrow::Cow<'a, serde_json::Value> {
        match (&self.param_overrides, body.as_object()) {
            (Some(overrides), Some(fields)) => {
                let mut merged = fields.clone();
                for (key, value) in overrides {
                    merged.insert(key.clone(), value.clone());
                }
                std::borrow::Cow::Owned(serde_json::Value::Object(merged))
            }
            _ => std::borrow::Cow::Borrowed(body),
        }
    }
}

impl LiveChannel {
    /// The next key, round-robin.
    pub fn key(&self) -> &str {
        let n = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.keys
            .get(n % self.keys.len().max(1))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// A `POST` to `path` under the base URL. The URL is parsed once per channel and path and
    /// kept: handed a string, reqwest parses it (host normalisation included) on every
    /// request, which showed in the relay's profile. A URL that does not parse goes to
    /// reqwest as text, to fail as it always did.
    pub fn post(&self, http: &reqwest::Client, path: &'static str) -> reqwest::RequestBuilder {
        /// Paths kept per channel: a channel serves a handful (chat, embeddings, images …).
        const KEPT: usize = 16;
        let Ok(mut urls) = self.urls.lock() else {
            return http.post(format!("{}{path}", self.base_url));
        };
        if let Some((_, url)) = urls.iter().find(|(p, _)| *p == path) {
            return http.post(url.clone());
        }
        let text = format!("{}{path}", self.base_url);
        match reqwest::Url::parse(&text) {
            Ok(url) => {
                if urls.len() < KEPT {
                    urls.push((path, url.clone()));
                }
                http.post(url)
            }
            Err(_) => http.post(text),
        }
    }

    /// The upstream name of a client model name.
    pub fn upstream_model<'a>(&'a self, model: &'a str) -> &'a str {
        self.model_mapping
            .get(model)
            .map(String::as_str)
            .unwrap_or(model)
    }
}

/// Channels by (group, model), each list sorted by priority, with smooth weighted round-robin
/// state per list. Rebuilt whole whenever channels change.
#[derive(Default)]
pub struct ChannelTable {
    /// Routes by group, then by model: looked up with borrowed names, so routing a request
    /// builds no key.
    routes: HashMap<String, HashMap<String, Route>>,
}

struct Route {
    channels: Vec<std::sync::Arc<LiveChannel>>,
    /// Current weights of smooth weighted round-robin (nginx's algorithm), one per channel.
    current: Mutex<Vec<i64>>,
    /// Requests routed so far (which ones explore, under a measured strategy).
    served: std::sync::atomic::AtomicU64,
}

impl ChannelTable {
    /// Every channel in the table once, by id.
    pub fn channels(&self) -> Vec<std::sync::Arc<LiveChannel>> {
        let mut seen = std::collections::BTreeMap::new();
        for route in self.routes.values().flat_map(|models| models.values()) {
            for channel in &route.channels {
                seen.entry(channel.id.clone())
                    .or_insert_with(|| channel.clone());
            }
        }
        seen.into_values().collect()
    }

    /// Builds the table from stored channels; channels whose secrets cannot be opened are
    /// skipped with an error in the log.
    pub fn build(rows: &[ChannelRow], vault: &Vault) -> ChannelTable {
        let mut routes: HashMap<(String, String), Vec<std::sync::Arc<LiveChannel>>> =
            HashMap::new();
        for row in rows.iter().filter(|r| r.status == ChannelStatus::Enabled) {
            let kind = match row.kind.known() {
                Ok(kind) => kind,
                Err(unknown) => {
                    tracing::error!(channel = %row.id, %unknown, "channel skipped: this version has no adapter for its kind");
                    continue;
                }
            };
            let secrets = match open_secrets(vault, &row.id, &row.secrets) {
                Ok(s) => s,
                Err(error) => {
                    tracing::error!(channel = %row.id, %error, "channel skipped: its secrets cannot be read");
                    continue;
                }
            };
            let live = std::sync::Arc::new(LiveChannel {
                id: row.id.clone(),
                name: row.name.clone(),
                kind,
                base_url: row.base_url.clone(),
                keys: secrets.keys,
                headers: secrets.headers,
                model_mapping: json_or(&row.model_mapping),
                priority: row.priority,
                weight: row.weight.max(1),
                timeout_secs: row.timeout_secs,
                param_overrides: Some(json_or::<serde_json::Map<String, serde_json::Value>>(
                    &row.param_overrides,
                ))
                .filter(|o| !o.is_empty()),
                cost_ratio_permille: row.cost_ratio_permille,
                next_key: Default::default(),
                urls: Mutex::default(),
            });
            let models: Vec<String> = json_or(&row.models);
            let groups: Vec<String> = json_or(&row.groups_list);
            for group in &groups {
                for model in &models {
                    routes
                        .entry((group.clone(), model.clone()))
                        .or_default()
                        .push(live.clone());
                }
            }
        }
        let mut by_group: HashMap<String, HashMap<String, Route>> = HashMap::new();
        for ((group, model), mut channels) in routes {
            channels.sort_by_key(|c| std::cmp::Reverse(c.priority));
            let current = Mutex::new(vec![0; channels.len()]);
            by_group.entry(group).or_default().insert(
                model,
                Route {
                    channels,
                    current,
                    served: Default::default(),
                },
            );
        }
        ChannelTable { routes: by_group }
    }

    /// Models a group can reach.
    pub fn models(&self, group: &str) -> Vec<String> {
        let mut models: Vec<String> = self
            .routes
            .get(group)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        models.sort();
        models
    }

    /// The order to try channels in for one request: priority levels from highest, and inside
    /// a level, smooth weighted round-robin picks the first (so over any short window each
    /// channel gets its share, without clustering) and the rest follow as fallbacks.
    pub fn candidates(&self, group: &str, model: &str) -> Vec<std::sync::Arc<LiveChannel>> {
        self.numbered(group, model).0
    }

    /// [`ChannelTable::candidates`], with the request's number on its route (from 0).
    pub fn numbered(&self, group: &str, model: &str) -> (Vec<std::sync::Arc<LiveChannel>>, u64) {
        let Some(route) = self.routes.get(group).and_then(|m| m.get(model)) else {
            return (Vec::new(), 0);
        };
        let n = route
            .served
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (Self::ordered(route), n)
    }

    fn ordered(route: &Route) -> Vec<std::sync::Arc<LiveChannel>> {
        let mut order: Vec<usize> = Vec::with_capacity(route.channels.len());
        let Ok(mut current) = route.current.lock() else {
            return route.channels.clone();
        };
        let mut start = 0;
        while start < route.channels.len() {
            let priority = route.channels[start].priority;
            let end = route.channels[start..]
                .iter()
                .position(|c| c.priority != priority)
                .map(|p| start + p)
                .unwrap_or(route.channels.len());
            let total: i64 = route.channels[start..end].iter().map(|c| c.weight).sum();
            let mut best = start;
            for i in start..end {
                current[i] += route.channels[i].weight;
                if current[i] > current[best] {
                    best = i;
                }
            }
            current[best] -= total;
            order.push(best);
            order.extend((start..end).filter(|i| *i != best));
            start = end;
        }
        order
            .into_iter()
            .map(|i| route.channels[i].clone())
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored channel for unit tests.
    pub(crate) fn row(id: &str, priority: i64, weight: i64, vault: &Vault) -> ChannelRow {
        let secrets = ChannelSecrets {
            keys: vec![format!("key-{id}")],
            headers: BTreeMap::new(),
        };
        ChannelRow {
            id: id.into(),
            kind: ChannelKind::OpenAi.into(),
            name: id.into(),
            base_url: "http://x".into(),
            secrets: seal_secrets(vault, id, &secrets).unwrap_or_default(),
            key_count: 1,
            models: r#"["m"]"#.into(),
            model_mapping: "{}".into(),
            groups_list: r#"["default"]"#.into(),
            priority,
            weight,
            timeout_secs: 60,
            header_names: "[]".into(),
            param_overrides: "{}".into(),
            cost_ratio_permille: 1000,
            balance: None,
            balance_currency: None,
            balance_at: None,
            low_balance_threshold: None,
            status: ChannelStatus::Enabled,
            status_reason: None,
            last_test_at: None,
            last_test_latency_ms: None,
            last_test_result: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn higher_priority_first_and_weights_spread_smoothly() {
        let vault = Vault::new(&[1u8; 32]);
        let rows = vec![
            row("a", 0, 5, &vault),
            row("b", 0, 1, &vault),
            row("c", 0, 1, &vault),
            row("top", 10, 1, &vault),
        ];
        let table = ChannelTable::build(&rows, &vault);
        let mut firsts_at_level0 = Vec::new();
        for _ in 0..7 {
            let order = table.candidates("default", "m");
            assert_eq!(order[0].id, "top", "priority 10 is always tried first");
            assert_eq!(order.len(), 4);
            firsts_at_level0.push(order[1].id.clone());
        }
        // nginx's smooth WRR for 5:1:1 gives a a b a c a a: never b or c twice in a row.
        assert_eq!(firsts_at_level0, vec!["a", "a", "b", "a", "c", "a", "a"]);
        assert!(table.candidates("default", "other").is_empty());
        assert!(table.candidates("vip", "m").is_empty());
    }

    #[test]
    fn a_channels_urls_are_parsed_once_and_built_as_reqwest_would() {
        let vault = Vault::new(&[1u8; 32]);
        let mut stored = row("u", 0, 1, &vault);
        stored.base_url = "http://Upstream.EXAMPLE:8080/v1".into();
        let table = ChannelTable::build(&[stored], &vault);
        let channel = table.candidates("default", "m")[0].clone();
        let http = reqwest::Client::new();
        let url = |path: &'static str| {
            channel
                .post(&http, path)
                .build()
                .map(|r| r.url().to_string())
                .unwrap_or_default()
        };
        // The same URL reqwest makes of the text (the host lower-cased), each time.
        let expected = http
            .post("http://Upstream.EXAMPLE:8080/v1/chat/completions")
            .build()
            .map(|r| r.url().to_string())
            .unwrap_or_default();
        assert_eq!(expected, "http://upstream.example:8080/v1/chat/completions");
        assert_eq!(url("/chat/completions"), expected);
        assert_eq!(url("/chat/completions"), expected);
        assert_eq!(
            url("/embeddings"),
            "http://upstream.example:8080/v1/embeddings"
        );
        assert_eq!(channel.urls.lock().map(|u| u.len()).unwrap_or(0), 2);
        // A base URL that does not parse fails when the request is built, as before.
        let mut broken = row("b", 0, 1, &vault);
        broken.base_url = "not a url".into();
        let table = ChannelTable::build(&[broken], &vault);
        let channel = table.candidates("default", "m")[0].clone();
        assert!(channel.post(&http, "/chat/completions").build().is_err());
        assert_eq!(channel.urls.lock().map(|u| u.len()).unwrap_or(9), 0);
    }

    #[test]
    fn a_sealed_key_copied_to_another_channel_does_not_open_there() {
        let vault = Vault::new(&[1u8; 32]);
        let a = row("a", 0, 1, &vault);
        let mut b = row("b", 0, 1, &vault);
        b.secrets = a.secrets.clone();
        assert!(open_secrets(&vault, "b", &b.secrets).is_err());
        let table = ChannelTable::build(&[a, b], &vault);
        let ids: Vec<String> = table
            .candidates("default", "m")
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(ids, vec!["a"], "b holds a's key and is skipped");
    }

    #[test]
    fn secrets_sealed_before_binding_still_open() {
        let vault = Vault::new(&[1u8; 32]);
        let mut legacy = row("old", 0, 1, &vault);
        let secrets = ChannelSecrets {
            keys: vec!["key-old".into()],
            headers: BTreeMap::new(),
        };
        legacy.secrets = vault
            .seal(&serde_json::to_vec(&secrets).unwrap_or_default())
            .unwrap_or_default();
        let table = ChannelTable::build(&[legacy], &vault);
        let found = table.candidates("default", "m");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key(), "key-old");
    }

    #[test]
    fn a_channel_of_an_unknown_kind_is_skipped_and_shown_disabled() {
        let vault = Vault::new(&[1u8; 32]);
        let known = row("a", 0, 1, &vault);
        let mut newer = row("b", 0, 1, &vault);
        newer.kind = StoredKind::from("baichuan".to_string());
        let table = ChannelTable::build(&[known, newer.clone()], &vault);
        let ids: Vec<String> = table
            .candidates("default", "m")
            .iter()
            .map(|c| c.id.clone())
            .collect();
        assert_eq!(ids, vec!["a"], "b has no adapter in this version");
        let view = serde_json::to_value(Channel::from(newer)).unwrap_or_default();
        assert_eq!(view["type"], "baichuan");
        assert_eq!(view["status"], "disabled");
        assert!(
            view["status_reason"]
                .as_str()
                .is_some_and(|r| r.contains("unknown channel kind `baichuan`"))
        );
    }
}
