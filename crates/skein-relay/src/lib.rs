//! Skein's Relay service: API keys (`/api/v1/keys`), channels (`/api/v1/channels`), the
//! pricing table, and the vendor-compatible API (`/v1/...`) that routes each request to a
//! channel and bills it through [`BillingApi`].
//!
//! **Architecture Invariant:** only this crate touches `api_keys`, `channels`,
//! `model_prices`, `group_multipliers`, `relay_user_groups` and the request log
//! (`relay_requests`, `relay_request_attempts`, see [`journal`]); a key's secret exists only in the creation
//! response (the table holds its SHA-256); upstream keys are stored sealed by
//! [`vault::Vault`] and never leave the process. The hot path reads channels, prices and group
//! multipliers from memory, never from the database.

pub mod balance;
pub mod breaker;
pub mod cache;
pub mod caller;
mod channel_fields;
pub mod channels;
pub mod channels_file;
pub mod config;
pub mod declared;
pub(crate) mod errors;
pub mod estimate;
pub mod groups;
mod http;
mod in_process;
pub mod journal;
pub mod keys;
mod metrics;
pub mod model_routes;
mod multipart;
pub mod pipeline;
pub mod pricing;
pub mod probes;
pub mod proxy;
pub mod remote;
pub mod renew;
pub(crate) mod responses;
pub mod routing;
mod service;
pub mod upstream;
pub mod vault;
pub mod vendor;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use skein_core::ApiError;
use std::collections::HashMap;
use std::sync::RwLock;

pub use config::RelayConfig;
use skein_core::api::{
    AccountEvents, BillingApi, EntitlementWatcher, Entitlements, KeyDirectory, KeyInfo,
    UserDirectory,
};
use skein_core::bus::{Bus, Note};
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

pub use in_process::InProcessRelay;
use keys::KeyRow;

pub use remote::RemoteRelay;

/// The Relay service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::Relay,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// How long an instance trusts its cached view of a key or its owner.
const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// How often an instance re-reads channels and prices written by other instances.
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// What a user may set on a key: the groups users get until an admin sets their own, and the
/// ceilings of a key's per-minute limits.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// Groups of a user an admin has not set (`relay.default_user_groups`).
    pub default_groups: Vec<String>,
    /// The most requests per minute a key may have (`limits.api_per_key_per_minute`).
    pub max_rpm: u32,
    /// The most tokens per minute a key may have, if capped
    /// (`limits.max_tokens_per_key_per_minute`).
    pub max_tpm: Option<u32>,
}

/// The Relay service.
pub struct RelayService {
    db: Db,
    users: Arc<dyn UserDirectory>,
    billing: Arc<dyn BillingApi>,
    /// The gateway's limiter, for tokens-per-minute limits of keys.
    limiter: Arc<dyn skein_core::limit::RateLimiter>,
    vault: vault::Vault,
    http: reqwest::Client,
    /// Whether remote images may be fetched from private addresses (for inline-only upstreams).
    images: upstream::ImagePolicy,
    groups: Vec<String>,
    /// Default groups and limit ceilings for keys.
    policy: KeyPolicy,
    /// Routing table, swapped whole on every change.
    table: RwLock<Arc<channels::ChannelTable>>,
    /// Prices by model, swapped whole on every change.
    prices: RwLock<Arc<HashMap<String, pricing::Rates>>>,
    /// Model aliases and fallbacks, swapped whole on every change.
    model_routes: RwLock<Arc<model_routes::RouteTable>>,
    /// Price multipliers (per-mille) by group, swapped whole on every change.
    multipliers: RwLock<Arc<HashMap<String, i64>>>,
    /// Whether a model without a price is served free instead of refused.
    allow_unpriced: bool,
    /// Circuit breakers by channel id.
    breakers: breaker::Breakers,
    /// What this instance measured of each channel (latency, errors), for routing.
    routing_stats: routing::Stats,
    /// Routing policies by group, swapped whole on every change.
    policies: RwLock<Arc<HashMap<String, routing::Policy>>>,
    /// Remaining upstream balances by channel id, where the vendor reports one.
    balances: RwLock<Arc<HashMap<String, balance::Known>>>,
    /// Cache policies by group, swapped whole on every change.
    cache_policies: RwLock<Arc<HashMap<String, cache::CachePolicy>>>,
    /// Kept answers of the groups that cache.
    response_cache: cache::ResponseCache,
    /// The same with names and currencies, for the metrics endpoint.
    balance_view: RwLock<Arc<Vec<BalanceRow>>>,
    /// Settles and stream readers still running after their response; shutdown waits for them.
    tasks: tokio_util::task::TaskTracker,
    /// One permit per answer sent whose settle has not finished
    /// ([`Tuning::max_settles_behind`]). Without a bound a ledger slower than the upstream
    /// let settles pile up as tasks, tens of thousands within seconds of saturation.
    settles_behind: Arc<tokio::sync::Semaphore>,
    /// The reload and the probe of disabled channels.
    background: BackgroundTasks,
    /// Limits that bound what one request may hold and how long it may wait on its client.
    tuning: Tuning,
    /// Holds of running requests, renewed until they end.
    renewals: renew::Renewals,
    /// Keys by secret hash; dropped at once when this instance changes or revokes a key.
    key_cache: Cache<String, Arc<KeyRow>>,
    /// Whether an owner is active, by user id.
    owner_cache: Cache<String, bool>,
    /// The groups a user may use (their plans' first, then an admin's grant), by user id;
    /// dropped at once when this instance changes them or Billing here says a plan changed.
    group_cache: Cache<String, Arc<Vec<String>>>,
    /// What each user's active subscription plans entitle them to (Billing's answer), by
    /// user id; dropped with the groups.
    plan_cache: Cache<String, Arc<Entitlements>>,
    /// Bumped by every invalidation of the three caches above: a lookup that read the
    /// database before an invalidation does not cache what it read (it may be the old row).
    cache_epoch: AtomicU64,
    /// One reload at a time, so a slow periodic reload that read the old tables cannot
    /// overwrite the newer tables a note's reload just installed.
    reload_lock: tokio::sync::Mutex<()>,
    /// The other instances, told when channels, prices, groups or keys change (set once at
    /// start-up; see [`RelayService::join_bus`]).
    bus: OnceLock<Arc<dyn Bus>>,
    /// The built-in embedding model, served as [`skein_embed::MODEL_NAME`] when installed.
    local_embed: std::sync::OnceLock<Arc<skein_embed::StaticModel>>,
    /// Finished requests waiting to be written to the request log.
    request_log: journal::RequestLog,
    /// What this instance last did with `relay.channels_file`.
    channels_file: std::sync::Mutex<channels_file::FileState>,
}

/// A channel's known balance for the metrics endpoint: id, name, amount, currency, low.
pub type BalanceRow = (String, String, f64, String, bool);

/// The bus topic of relay changes.
const BUS_TOPIC: &str = "relay";

/// What changed, as told to the other instances on [`BUS_TOPIC`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "what", content = "id", rename_all = "snake_case")]
enum Change {
    /// Channels, prices or group multipliers: reload them.
    Routing,
    /// The key with this secret hash changed or was revoked.
    Key(String),
    /// The groups this user may use changed.
    Groups(String),
}

/// Limits of one request: the output it may be held for, and how long its stream waits on a
/// client that stopped reading.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Most output tokens per answer, by model.
    pub output: estimate::OutputLimits,
    /// How long a write to a client that stopped reading may wait before it is dropped.
    pub client_write_timeout: Duration,
    /// Request fields the operator allows besides the built-in list.
    pub extra_request_fields: Vec<String>,
    /// Idle upstream connections kept per host.
    pub upstream_idle_per_host: usize,
    /// How long an idle upstream connection is kept.
    pub upstream_idle: Duration,
    /// Most answers sent whose settle has not finished; the next answer waits past it.
    pub max_settles_behind: usize,
    /// Days the request log keeps a request.
    pub request_log_retention_days: u32,
    /// How often the request log is pruned.
    pub request_log_prune_every: Duration,
    /// The prefix of the environment variables the admin API's channels apply may read.
    pub channels_env_prefix: String,
    /// Whether a Responses API request that leaves `store` unset is kept.
    pub responses_store_default: bool,
    /// Days a kept Responses API response is kept.
    pub responses_retention_days: u32,
    /// The channels file kept applied, if one is set.
    pub channels_file: Option<channels_file::FileSettings>,
    /// How often every model of every enabled channel is probed; `None`: only on demand.
    pub model_probe_every: Option<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            output: estimate::OutputLimits::default(),
            client_write_timeout: Duration::from_secs(30),
            extra_request_fields: Vec::new(),
            upstream_idle_per_host: 64,
            upstream_idle: Duration::from_secs(90),
            max_settles_behind: 2_048,
            request_log_retention_days: 30,
            request_log_prune_every: Duration::from_secs(3600),
            channels_env_prefix: "SKEIN_CHANNEL_".into(),
            responses_store_default: true,
            responses_retention_days: 30,
            channels_file: None,
            model_probe_every: None,
        }
    }
}

impl Tuning {
    /// The limits the relay section of the configuration sets.
    pub fn from_config(config: &RelayConfig) -> Tuning {
        Tuning {
            output: estimate::OutputLimits {
                overrides: config.max_output_tokens.clone(),
                default: config.default_max_output_tokens.max(1),
            },
            client_write_timeout: Duration::from_secs(config.client_write_timeout_secs.max(1)),
            extra_request_fields: config.extra_request_fields.clone(),
            upstream_idle_per_host: config.upstream_idle_per_host,
            upstream_idle: Duration::from_secs(config.upstream_idle_secs.max(1)),
            max_settles_behind: config.max_settles_behind.max(1),
            request_log_retention_days: config.request_log_retention_days,
            request_log_prune_every: Duration::from_secs(
                config.request_log_prune_every_secs.max(1),
            ),
            channels_env_prefix: config.channels_env_prefix.clone(),
            responses_store_default: config.responses_store_default,
            responses_retention_days: config.responses_retention_days.max(1),
            channels_file: config
                .channels_file
                .clone()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|path| channels_file::FileSettings {
                    path,
                    prune: config.channels_file_prune,
                    every: Duration::from_secs(config.channels_file_check_secs.max(1)),
                }),
            model_probe_every: (config.model_probe_interval_secs > 0)
                .then(|| Duration::from_secs(config.model_probe_interval_secs)),
        }
    }
}

impl RelayService {
    /// Serves `model` at `/v1/embeddings` (and to other services' `embed`) as
    /// [`skein_embed::MODEL_NAME`], computed here: no channel, no upstream, no charge. Set
    /// once; later calls are ignored.
    pub fn serve_local_embeddings(&self, model: Arc<skein_embed::StaticModel>) {
        let _ = self.local_embed.set(model);
    }

    /// Starts the service: loads channels and prices, and re-reads them periodically so
    /// changes made on other instances arrive. `groups` are the channel groups a key may name;
    /// `secret_key` seals upstream keys at rest; `images` says where remote images may be
    /// fetched from for upstreams that take images only inline; `allow_unpriced` serves models
    /// without a price free instead of refusing them; `policy` says which groups users get
    /// until an admin decides and how high a key's own limits may go.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        db: Db,
        users: Arc<dyn UserDirectory>,
        billing: Arc<dyn BillingApi>,
        limiter: Arc<dyn skein_core::limit::RateLimiter>,
        groups: Vec<String>,
        policy: KeyPolicy,
        secret_key: &[u8; 32],
        probe_every: Duration,
        images: upstream::ImagePolicy,
        allow_unpriced: bool,
        tuning: Tuning,
    ) -> Result<Arc<Self>, ApiError> {
        let key_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        let owner_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        let group_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        let plan_cache = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(KEY_CACHE_TTL)
            .build();
        // Redirects are not followed: a channel's key goes to the host it was entered for and
        // to no other, whatever that host answers.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(tuning.upstream_idle_per_host)
            .pool_idle_timeout(tuning.upstream_idle)
            .build()
            .map_err(ApiError::internal)?;
        let service = Arc::new(RelayService {
            db,
            users,
            billing,
            limiter,
            vault: vault::Vault::new(secret_key),
            http,
            images,
            groups,
            policy,
            table: RwLock::new(Arc::new(channels::ChannelTable::default())),
            breakers: breaker::Breakers::default(),
            routing_stats: routing::Stats::default(),
            policies: RwLock::new(Arc::new(HashMap::new())),
            balances: RwLock::new(Arc::new(HashMap::new())),
            balance_view: RwLock::new(Arc::new(Vec::new())),
            cache_policies: RwLock::new(Arc::new(HashMap::new())),
            response_cache: cache::ResponseCache::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            settles_behind: Arc::new(tokio::sync::Semaphore::new(
                tuning
                    .max_settles_behind
                    .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
            )),
            background: BackgroundTasks::new(),
            prices: RwLock::new(Arc::new(HashMap::new())),
            multipliers: RwLock::new(Arc::new(HashMap::new())),
            model_routes: RwLock::new(Arc::new(model_routes::RouteTable::default())),
            allow_unpriced,
            renewals: renew::Renewals::default(),
            key_cache,
            owner_cache,
            group_cache,
            plan_cache,
            cache_epoch: AtomicU64::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
            bus: OnceLock::new(),
            local_embed: std::sync::OnceLock::new(),
            request_log: journal::RequestLog::new(tuning.request_log_retention_days),
            channels_file: channels_file::FileState::new(),
            tuning,
        });
        service.reload().await?;
        // Holds of running requests kept alive; stopped only after the requests are drained.
        service.background.every(
            "relay.renewals",
            renew::TICK,
            FirstRun::AfterPeriod,
            &service,
            |service| async move { service.renewals.renew_due(service.billing.as_ref()).await },
        );
        // What another instance changed arrives within one period.
        service.background.every(
            "relay.reload",
            RELOAD_EVERY,
            FirstRun::AfterPeriod,
            &service,
            |service| async move {
                if let Err(error) = service.reload().await {
                    tracing::warn!(%error, "relay reload failed");
                }
            },
        );
        // The request log: written in batches off the request path, pruned to its retention.
        service.background.every(
            "relay.request_log.flush",
            journal::FLUSH_EVERY,
            FirstRun::AfterPeriod,
            &service,
            |service| async move { service.request_log.flush(&service.db).await },
        );
        service.background.every(
            "relay.request_log.prune",
            service.tuning.request_log_prune_every,
            FirstRun::Now,
            &service,
            |service| async move {
                match service.request_log.prune(&service.db).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "request log pruned"),
                    Err(error) => tracing::warn!(%error, "could not prune the request log"),
                }
            },
        );
        if let Some(every) = service.tuning.model_probe_every {
            service.background.every(
                "relay.model_probes",
                every,
                FirstRun::AfterPeriod,
                &service,
                move |service| async move { probes::scheduled_round(&service, every).await },
            );
        }
        // The channels file: applied now (before the first request, where the start waits
        // for it) and whenever it changes.
        if let Some(file) = service.tuning.channels_file.clone() {
            channels_file::reconcile(&service, &file).await;
            service.background.every(
                "relay.channels_file",
                file.every,
                FirstRun::AfterPeriod,
                &service,
                move |service| {
                    let file = file.clone();
                    async move { channels_file::reconcile(&service, &file).await }
                },
            );
        }
        // Kept Responses API responses: removed after their retention, and background ones
        // left by an instance that stopped are failed.
        service.background.every(
            "relay.responses.prune",
            service
                .tuning
                .request_log_prune_every
                .min(Duration::from_secs(60)),
            FirstRun::AfterPeriod,
            &service,
            |service| async move {
                match responses::prune(&service.db, service.tuning.responses_retention_days).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "kept responses pruned"),
                    Err(error) => tracing::warn!(%error, "could not prune kept responses"),
                }
            },
        );
        service.background.every(
            "relay.balances",
            balance::REFRESH_EVERY,
            // Stored balances load with the channels; the first read waits a period, so a
            // command-line run of the service calls no vendor.
            FirstRun::AfterPeriod,
            &service,
            |service| async move { service.refresh_balances().await },
        );
        service.background.every(
            "relay.probe",
            probe_every,
            FirstRun::AfterPeriod,
            &service,
            |service| async move { service.probe_disabled().await },
        );
        Ok(service)
    }

    /// Joins the deployment's bus: changes other instances make to channels, prices, groups,
    /// keys and users reach this one's memory at once, and this one's reach them. After a lost
    /// connection everything is reloaded and every cache dropped, since notes may have been
    /// missed; the periodic reload stays as the safety net.
    pub fn join_bus(self: &Arc<Self>, bus: Arc<dyn Bus>) {
        self.background.on_notes(
            "relay.bus",
            &bus,
            BUS_TOPIC,
            self,
            |service, note| async move {
                match note {
                    Note::Message(text) => match serde_json::from_str(&text) {
                        Ok(Change::Routing) => {
                            if let Err(error) = service.reload().await {
                                tracing::warn!(%error, "relay reload failed");
                            }
                        }
                        Ok(Change::Key(hash)) => service.forget_key_here(&hash),
                        Ok(Change::Groups(user_id)) => service.forget_groups_here(&user_id),
                        Err(error) => tracing::warn!(%error, "unreadable relay note"),
                    },
                    Note::Resync => service.resync().await,
                }
            },
        );
        self.background.on_notes(
            "relay.bus.users",
            &bus,
            skein_core::bus::USER_TOPIC,
            self,
            |service, note| async move {
                match note {
                    Note::Message(text) => {
                        if let Ok(skein_core::bus::UserChange::User(user_id)) =
                            serde_json::from_str(&text)
                        {
                            service.bump_epoch();
                            service.owner_cache.invalidate(&user_id);
                        }
                    }
                    // The relay topic's listener resyncs everything.
                    Note::Resync => {}
                }
            },
        );
        let _ = self.bus.set(bus);
    }

    /// Reloads the tables and drops every cached key, owner and grant.
    async fn resync(&self) {
        self.bump_epoch();
        self.key_cache.invalidate_all();
        self.owner_cache.invalidate_all();
        self.group_cache.invalidate_all();
        self.plan_cache.invalidate_all();
        if let Err(error) = self.reload().await {
            tracing::warn!(%error, "relay reload failed");
        }
    }

    /// A place among the settles behind their answers, waited for when
    /// [`Tuning::max_settles_behind`] are; held until the settle finishes. `None` only if the
    /// semaphore were closed, which it never is.
    pub(crate) async fn settle_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(slot) = self.settles_behind.clone().try_acquire_owned() {
            return Some(slot);
        }
        metrics::SETTLE_WAITS.inc(&[]);
        self.settles_behind.clone().acquire_owned().await.ok()
    }

    fn bump_epoch(&self) {
        self.cache_epoch.fetch_add(1, Ordering::SeqCst);
    }

    fn tell(&self, change: Change) {
        skein_core::bus::tell(self.bus.get(), &self.background, BUS_TOPIC, &change);
    }

    /// Reloads channels, prices and multipliers after this instance changed them, and tells
    /// the other instances to do the same.
    pub async fn routing_changed(&self) -> Result<(), ApiError> {
        let reloaded = self.reload().await;
        self.tell(Change::Routing);
        reloaded
    }

    /// Takes a channel out of rotation after a request found it dead — once its own key
    /// confirms it. A rejection of one request (a 403 for a model the account may not use, a
    /// vendor refusing a client's content) must not take the channel away from everyone else,
    /// so a key said to be rejected is first tried on the vendor's model list (and, where that
    /// says nothing, on a one-token chat with `model`). Answers whether the channel was
    /// disabled. An account out of quota is read from the vendor's structured error fields,
    /// which no client can write, and disables at once.
    pub async fn disable_if_confirmed(
        &self,
        channel: &channels::LiveChannel,
        model: &str,
        reason: &str,
    ) -> bool {
        if reason.contains(vendor::KEY_REJECTED) {
            let works = match upstream::key_works(&self.http, channel).await {
                Ok(works) => works,
                Err(_) => upstream::probe(&self.http, channel, model).await.is_ok(),
            };
            if works {
                tracing::warn!(channel = %channel.id, %reason, "the upstream refused one request as unauthorised, but the channel's key works: kept in rotation");
                return false;
            }
        }
        self.auto_disable(&channel.id, reason).await;
        true
    }

    /// Takes a channel out of rotation because its upstream rejected its key or its account
    /// is out of quota; the prober brings it back when it answers again.
    pub async fn auto_disable(&self, channel_id: &str, reason: &str) {
        tracing::error!(channel = %channel_id, %reason, "channel disabled automatically");
        let now = skein_core::ids::now_ms();
        if let Err(error) = channels::set_status(
            &self.db,
            channel_id,
            channels::ChannelStatus::AutoDisabled,
            Some(reason),
            now,
        )
        .await
        {
            tracing::error!(%error, "could not disable the channel");
        }
        if let Err(error) = self.routing_changed().await {
            tracing::warn!(%error, "relay reload failed");
        }
    }

    /// Tries every automatically disabled channel once and re-enables those that answer.
    pub async fn probe_disabled(&self) {
        let Ok(rows) = channels::all(&self.db).await else {
            return;
        };
        let mut changed = false;
        for row in rows
            .into_iter()
            .filter(|r| r.status == channels::ChannelStatus::AutoDisabled)
        {
            let models: Vec<String> = serde_json::from_str(&row.models).unwrap_or_default();
            let Some(model) = models.first().cloned() else {
                continue;
            };
            let id = row.id.clone();
            let Some(channel) = channels::live(&row, &self.vault) else {
                continue;
            };
            if upstream::probe(&self.http, &channel, &model).await.is_ok() {
                let now = skein_core::ids::now_ms();
                if channels::set_status(&self.db, &id, channels::ChannelStatus::Enabled, None, now)
                    .await
                    .is_ok()
                {
                    tracing::info!(channel = %id, "channel answered its probe; re-enabled");
                    changed = true;
                }
            }
        }
        if changed && let Err(error) = self.routing_changed().await {
            tracing::warn!(%error, "relay reload failed");
        }
    }

    /// Waits (up to `limit`) for the settles and stream readers still running, so a graceful
    /// shutdown bills what was delivered.
    pub async fn drain(&self, limit: Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.tasks.len(),
                "relay tasks still running at shutdown; their holds will expire"
            );
        }
        // What the finished requests wrote to the buffer reaches the log before the exit.
        self.request_log.flush(&self.db).await;
    }

    /// This instance's circuit state of a channel, for the admin view.
    pub fn circuit(&self, channel_id: &str) -> &'static str {
        match self.breakers.status(channel_id) {
            breaker::Status::Closed => "closed",
            breaker::Status::Open => "open",
            breaker::Status::HalfOpen => "half_open",
        }
    }

    /// Every enabled channel this instance routes to, as (id, name, circuit state), for the
    /// metrics endpoint.
    pub fn channel_circuits(&self) -> Vec<(String, String, &'static str)> {
        let table = match self.table.read() {
            Ok(table) => table.clone(),
            Err(_) => return Vec::new(),
        };
        table
            .channels()
            .into_iter()
            .map(|c| (c.id.clone(), c.name.clone(), self.circuit(&c.id)))
            .collect()
    }

    /// Re-reads channels, prices and group multipliers into memory.
    pub async fn reload(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let mut rows = channels::all(&self.db).await?;
        // Rows sealed before keys were bound to their channel are re-sealed bound now, once:
        // a value that opens without its channel id could be copied to another channel.
        let upgraded = channels::bind_legacy_secrets(&self.db, &self.vault, &mut rows).await;
        if upgraded > 0 {
            tracing::info!(
                channels = upgraded,
                "channel secrets re-sealed bound to their channel"
            );
        }
        let table = Arc::new(channels::ChannelTable::build(&rows, &self.vault));
        // Balances as last stored (by any instance), for enabled channels only.
        let known: Vec<&channels::ChannelRow> = rows
            .iter()
            .filter(|r| r.status == channels::ChannelStatus::Enabled && r.balance.is_some())
            .collect();
        let balances: HashMap<String, balance::Known> = known
            .iter()
            .filter_map(|r| {
                let amount = r.balance?;
                Some((
                    r.id.clone(),
                    balance::Known {
                        amount,
                        low: channels::balance_is_low(amount, r.low_balance_threshold),
                    },
                ))
            })
            .collect();
        let balance_view: Vec<BalanceRow> = known
            .iter()
            .filter_map(|r| {
                let amount = r.balance?;
                Some((
                    r.id.clone(),
                    r.name.clone(),
                    amount,
                    r.balance_currency.clone().unwrap_or_default(),
                    channels::balance_is_low(amount, r.low_balance_threshold),
                ))
            })
            .collect();
        if let Ok(mut slot) = self.balances.write() {
            *slot = Arc::new(balances);
        }
        if let Ok(mut slot) = self.balance_view.write() {
            *slot = Arc::new(balance_view);
        }
        let prices = Arc::new(pricing::map(&self.db).await?);
        let multipliers = Arc::new(
            pricing::group_multipliers(&self.db)
                .await?
                .into_iter()
                .map(|(group, (permille, _))| (group, permille))
                .collect(),
        );
        if let Ok(mut slot) = self.table.write() {
            *slot = table;
        }
        if let Ok(mut slot) = self.prices.write() {
            *slot = prices;
        }
        if let Ok(mut slot) = self.multipliers.write() {
            *slot = multipliers;
        }
        let routes = Arc::new(model_routes::RouteTable::build(
            &model_routes::all(&self.db).await?,
        ));
        if let Ok(mut slot) = self.model_routes.write() {
            *slot = routes;
        }
        let policies = Arc::new(
            routing::all(&self.db)
                .await?
                .into_iter()
                .map(|(group, (policy, _))| (group, policy))
                .collect(),
        );
        if let Ok(mut slot) = self.policies.write() {
            *slot = policies;
        }
        let caching = Arc::new(
            cache::all(&self.db)
                .await?
                .into_iter()
                .map(|(group, (policy, _))| (group, policy))
                .collect(),
        );
        let cache_changed = match self.cache_policies.write() {
            Ok(mut slot) => {
                let changed = **slot != *caching;
                *slot = caching;
                changed
            }
            Err(_) => false,
        };
        // Settings changed here or on another instance (its routing note, or this periodic
        // reload when a note was missed): answers kept under the old settings go, so a group
        // that stopped sharing never serves one user's answer to another on any instance.
        if cache_changed {
            self.response_cache.clear();
        }
        Ok(())
    }

    /// The groups keys may name, as configured.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// The groups `user_id` may put keys in now (cached like keys, for the hot path): the
    /// groups of their active plans first (so chat and a new key route in the plan's group),
    /// then those an admin granted.
    pub async fn allowed_groups(&self, user_id: &str) -> Result<Arc<Vec<String>>, ApiError> {
        if let Some(allowed) = self.group_cache.get(user_id) {
            return Ok(allowed);
        }
        let epoch = self.cache_epoch.load(Ordering::SeqCst);
        let stored = groups::stored(&self.db, user_id).await?;
        let plans = self.entitlements(user_id).await?;
        let allowed = Arc::new(groups::with_plans(
            &self.groups,
            &plans.groups,
            groups::effective(&self.groups, stored.as_deref(), &self.policy.default_groups),
        ));
        if self.cache_epoch.load(Ordering::SeqCst) == epoch {
            self.group_cache
                .insert(user_id.to_string(), allowed.clone());
        }
        Ok(allowed)
    }

    /// What `user_id`'s active plans entitle them to (cached like keys; Billing tells this
    /// instance when they change, other instances' copies expire).
    pub async fn entitlements(&self, user_id: &str) -> Result<Arc<Entitlements>, ApiError> {
        if let Some(found) = self.plan_cache.get(user_id) {
            return Ok(found);
        }
        let epoch = self.cache_epoch.load(Ordering::SeqCst);
        let found = Arc::new(self.billing.entitlements(user_id).await?);
        if self.cache_epoch.load(Ordering::SeqCst) == epoch {
            self.plan_cache.insert(user_id.to_string(), found.clone());
        }
        Ok(found)
    }

    /// Drops the cached grant of `user_id` here and on the other instances (after an admin
    /// changed it).
    fn forget_groups(&self, user_id: &str) {
        self.forget_groups_here(user_id);
        self.tell(Change::Groups(user_id.to_string()));
    }

    fn forget_groups_here(&self, user_id: &str) {
        self.bump_epoch();
        self.group_cache.invalidate(user_id);
    }

    /// A group's price multiplier in per-mille (×1.0 when unset).
    pub fn multiplier(&self, group: &str) -> i64 {
        self.multipliers
            .read()
            .ok()
            .and_then(|m| m.get(group).copied())
            .unwrap_or(pricing::NEUTRAL_PERMILLE)
    }

    /// Refuses `group` unless `user_id` was granted it.
    pub async fn check_group(&self, user_id: &str, group: &str) -> Result<(), ApiError> {
        let allowed = self.allowed_groups(user_id).await?;
        if allowed.iter().any(|g| g == group) {
            Ok(())
        } else {
            Err(errors::group_not_allowed(group, &allowed))
        }
    }

    /// What `model` costs for a key of `group` now: its rates and the group's multiplier (×1.0
    /// when unset). A model without a price is `None`, or free when `relay.allow_unpriced`.
    pub fn price_for(&self, group: &str, model: &str) -> Option<pricing::Price> {
        let rates = self.prices.read().ok().and_then(|p| p.get(model).copied());
        let Some(rates) = rates else {
            return self.allow_unpriced.then(|| pricing::Price::unpriced(group));
        };
        let multiplier_permille = self
            .multipliers
            .read()
            .ok()
            .and_then(|m| m.get(group).copied())
            .unwrap_or(pricing::NEUTRAL_PERMILLE);
        Some(pricing::Price {
            rates,
            group: group.to_string(),
            multiplier_permille,
            priced: true,
        })
    }

    /// The routing table now.
    pub fn table(&self) -> Arc<channels::ChannelTable> {
        self.table.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// A group's routing policy now (priority when none was set).
    pub fn policy(&self, group: &str) -> routing::Policy {
        self.policies
            .read()
            .ok()
            .and_then(|p| p.get(group).copied())
            .unwrap_or_default()
    }

    /// A group's response-cache policy now (off when none was set).
    pub fn cache_policy(&self, group: &str) -> cache::CachePolicy {
        self.cache_policies
            .read()
            .ok()
            .and_then(|p| p.get(group).copied())
            .unwrap_or_default()
    }

    /// The remaining upstream balances now, by channel id.
    pub fn balances(&self) -> Arc<HashMap<String, balance::Known>> {
        self.balances.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Every enabled channel's known balance as (id, name, amount, currency, low), for the
    /// metrics endpoint.
    pub fn channel_balances(&self) -> Vec<BalanceRow> {
        self.balance_view
            .read()
            .map(|b| b.as_ref().clone())
            .unwrap_or_default()
    }

    /// Stores a balance just read for `row` and routes by it at once; a balance that just
    /// went under the channel's threshold is logged as an alert.
    pub async fn balance_read(
        &self,
        row: &channels::ChannelRow,
        reported: &balance::Reported,
    ) -> Result<(), ApiError> {
        balance::record(&self.db, &row.id, reported, skein_core::ids::now_ms()).await?;
        let low = channels::balance_is_low(reported.amount, row.low_balance_threshold);
        let was_low = row
            .balance
            .is_some_and(|b| channels::balance_is_low(b, row.low_balance_threshold));
        if low && !was_low {
            tracing::warn!(channel = %row.id, name = %row.name, amount = reported.amount, currency = %reported.currency,
                threshold = ?row.low_balance_threshold, "upstream balance is low: the channel is tried last until it is topped up");
        }
        if let Ok(mut slot) = self.balances.write() {
            let mut next = slot.as_ref().clone();
            next.insert(
                row.id.clone(),
                balance::Known {
                    amount: reported.amount,
                    low,
                },
            );
            *slot = Arc::new(next);
        }
        if let Ok(mut slot) = self.balance_view.write() {
            let mut next = slot.as_ref().clone();
            next.retain(|(id, ..)| *id != row.id);
            next.push((
                row.id.clone(),
                row.name.clone(),
                reported.amount,
                reported.currency.clone(),
                low,
            ));
            *slot = Arc::new(next);
        }
        Ok(())
    }

    /// Reads the balance of every enabled channel whose vendor reports one.
    pub async fn refresh_balances(&self) {
        let Ok(rows) = channels::all(&self.db).await else {
            return;
        };
        let table = self.table();
        for channel in table.channels() {
            if balance::path(channel.kind).is_none() {
                continue;
            }
            let Some(row) = rows.iter().find(|r| r.id == channel.id) else {
                continue;
            };
            match balance::fetch(&self.http, &channel).await {
                Ok(Some(reported)) => {
                    if let Err(error) = self.balance_read(row, &reported).await {
                        tracing::warn!(channel = %channel.id, %error, "could not store a balance");
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(channel = %channel.id, %reason, "could not read the upstream balance");
                }
            }
        }
    }

    /// This instance's measurements of a channel, for the admin view.
    pub fn channel_health(&self, channel_id: &str) -> Option<channels::ChannelHealth> {
        self.routing_stats
            .health(channel_id, std::time::Instant::now())
    }

    /// The model aliases and fallbacks now.
    pub fn model_routes(&self) -> Arc<model_routes::RouteTable> {
        self.model_routes
            .read()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// The prices now.
    pub fn prices(&self) -> Arc<HashMap<String, pricing::Rates>> {
        self.prices.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// The service's `/api/v1` routes (key management).
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// The vendor-compatible routes (`/v1/...`).
    pub fn vendor_routes(self: Arc<Self>) -> axum::Router {
        http::vendor_routes(self)
    }

    /// Drops a changed or revoked key here and on the other instances.
    fn forget_key(&self, key_hash: &str) {
        self.forget_key_here(key_hash);
        self.tell(Change::Key(key_hash.to_string()));
    }

    fn forget_key_here(&self, key_hash: &str) {
        self.bump_epoch();
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
                let epoch = self.cache_epoch.load(Ordering::SeqCst);
                let row = keys::by_hash(&self.db, &hash)
                    .await?
                    .map(Arc::new)
                    .ok_or_else(errors::invalid_key)?;
                if self.cache_epoch.load(Ordering::SeqCst) == epoch {
                    self.key_cache.insert(hash, row.clone());
                }
                row
            }
        };
        row.usable(skein_core::ids::now_ms(), client_ip)?;
        let active = match self.owner_cache.get(&row.user_id) {
            Some(active) => active,
            None => {
                let epoch = self.cache_epoch.load(Ordering::SeqCst);
                let active = self.users.user_active(&row.user_id).await?;
                if self.cache_epoch.load(Ordering::SeqCst) == epoch {
                    self.owner_cache.insert(row.user_id.clone(), active);
                }
                active
            }
        };
        if !active {
            return Err(errors::invalid_key());
        }
        // A group taken away from the owner stops its keys too, or a key made before the
        // change would keep the cheaper group's prices.
        self.check_group(&row.user_id, &row.group_name).await?;
        Ok(row.info(self.policy.max_rpm, self.policy.max_tpm))
    }
}

/// Billing in this process tells the relay when a user's plans changed: their groups and
/// model list are read again on the next request.
impl EntitlementWatcher for RelayService {
    fn entitlements_changed(&self, user_id: &str) {
        self.bump_epoch();
        self.plan_cache.invalidate(user_id);
        self.group_cache.invalidate(user_id);
    }
}

#[async_trait]
impl AccountEvents for RelayService {
    async fn user_status_changed(&self, user_id: &str) -> Result<(), ApiError> {
        self.bump_epoch();
        self.owner_cache.invalidate(user_id);
        Ok(())
    }
}

/// Sizes for the runtime report: the key, owner and group caches (each at most 100,000
/// entries, [`KEY_CACHE_TTL`]), holds being renewed and background tasks (running requests),
/// breakers (channels), request-log rows waiting to be written.
impl skein_core::runtime::Gauges for RelayService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        use skein_core::runtime::count;
        // Pending evictions first, so the counts say what the caches really hold.
        self.key_cache.run_pending_tasks();
        self.owner_cache.run_pending_tasks();
        self.group_cache.run_pending_tasks();
        self.plan_cache.run_pending_tasks();
        vec![
            ("relay.key_cache", self.key_cache.entry_count()),
            ("relay.owner_cache", self.owner_cache.entry_count()),
            ("relay.group_cache", self.group_cache.entry_count()),
            ("relay.plan_cache", self.plan_cache.entry_count()),
            ("relay.renewals", count(self.renewals.len())),
            ("relay.breakers", count(self.breakers.len())),
            // At most cache::MAX_BYTES of answers.
            ("relay.response_cache", self.response_cache.len()),
            ("relay.tasks", count(self.tasks.len())),
            // At most Tuning::max_settles_behind.
            (
                "relay.settles_behind",
                count(
                    self.tuning
                        .max_settles_behind
                        .saturating_sub(self.settles_behind.available_permits()),
                ),
            ),
            // At most journal::MAX_BUFFERED rows wait for the next write.
            (
                "relay.request_log_buffer",
                count(self.request_log.buffered()),
            ),
        ]
    }
}
