//! The configuration sections several crates share (server, database, Redis, auth, limits,
//! logs), the error a bad configuration is, and helpers for reading and printing sections.
//!
//! Each service's own section lives in its crate (`skein_billing::BillingConfig`, ...); the
//! binary's `skein::config::Config` composes them all from one `skein.toml` and the
//! `SKEIN_*` environment.

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::Secret;

/// The HTTP server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// A request that takes longer is answered 408.
    pub request_timeout_secs: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// Origins allowed by CORS; empty means same-origin only, `["*"]` means any.
    #[serde(deserialize_with = "list_or_csv")]
    pub cors_origins: Vec<String>,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Where `/internal/*` (service-to-service routes) is served; `None` serves it nowhere.
    /// Never on `listen`, so the public port cannot reach it.
    pub internal_listen: Option<String>,
    /// The one-time token that registering the first (root) account needs. `None`: a random
    /// one is made at start while no account exists and printed to the log.
    pub setup_token: Option<Secret>,
    /// The bearer token Prometheus scrapes `/metrics` with. `None`: `/metrics` does not exist
    /// (answers 404), so nothing about the process is public by default.
    pub metrics_token: Option<Secret>,
}

/// The relational database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...`; empty means `sqlite://<data_dir>/skein.db`.
    pub url: Option<String>,
    /// Connections in the pool. Unset: 16 for PostgreSQL; for SQLite twice the CPU cores, from
    /// 4 to 16, since SQLite serialises writes and each connection is a thread with its own
    /// page cache and statements (issue #22: 16 SQLite connections held ~20 MiB more than 4,
    /// for no throughput on 2 cores).
    pub max_connections: Option<u32>,
    /// A connection idle this long is closed (the pool keeps one for SQLite): each SQLite
    /// connection holds about 5 MiB of page and statement cache (measured, issue #22), so the
    /// pool a burst grew to 16 shrinks back instead of keeping ~80 MiB for ten minutes.
    pub idle_timeout_secs: u64,
    /// SQLite's page cache per connection, in KiB (`PRAGMA cache_size = -N`; SQLite's own
    /// default is 2,000). Every open connection keeps up to this much.
    pub sqlite_cache_kib: u32,
    /// A soft limit on all of SQLite's own heap (every connection together), in MiB
    /// (`PRAGMA soft_heap_limit`): above it SQLite recycles page-cache pages instead of
    /// allocating new ones. 0: no limit.
    pub sqlite_heap_limit_mib: u64,
}

/// Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port/db`; when empty, limits are kept in memory (one instance).
    pub url: Option<String>,
    /// Prefix of every key Skein writes, so several deployments can share a Redis.
    pub key_prefix: String,
}

/// Tokens and password hashing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC secret for access tokens; when empty one is generated into `data_dir/jwt_secret`.
    /// Every instance of a deployment must share it.
    pub jwt_secret: Option<Secret>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: i64,
    /// Lifetime of a session (its refresh tokens) since its last use.
    pub refresh_token_ttl_secs: i64,
    /// Argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_iterations: u32,
    /// How long the gateway may trust a cached session check across instances.
    pub session_cache_secs: u64,
    /// Accounts of role `user` with an unverified email cannot sign in (needs `[mail]`).
    pub verified_email_for_login: bool,
    /// API keys of accounts with an unverified email are refused by the relay (needs `[mail]`).
    pub verified_email_for_relay: bool,
    /// How long an email verification link works.
    pub email_verification_ttl_secs: i64,
    /// How long a password reset link works.
    pub password_reset_ttl_secs: i64,
    /// Admins and root act as plain users until they turn on two-factor sign-in.
    pub two_factor_required_for_admins: bool,
}

/// Rate limits and login protection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests to login, register and refresh per client IP per minute.
    pub auth_per_ip_per_minute: u32,
    /// `/api` requests per signed-in user per minute.
    pub api_per_user_per_minute: u32,
    /// `/api` requests per anonymous client IP per minute.
    pub api_per_ip_per_minute: u32,
    /// `/v1` requests per API key per minute for a key that sets no limit of its own, and the
    /// most a key may set (a higher `rpm_limit` is clamped to it).
    pub api_per_key_per_minute: u32,
    /// The most tokens per minute one API key may use (0: no ceiling). When set, a key's own
    /// `tpm_limit` is clamped to it and a key without one gets it.
    pub max_tokens_per_key_per_minute: u32,
    /// Failed logins of one account from one address (an IPv6 /64) that cost nothing; each
    /// further one makes that pair wait, 5 s doubling up to `login_lockout_secs`.
    pub login_failures_per_account: u32,
    /// Failed logins from one IP before it is locked for a while.
    pub login_failures_per_ip: u32,
    /// The window the per-IP failures are counted over; also the longest delay.
    pub login_lockout_secs: u64,
    /// Password changes (right or wrong current password) per user per hour.
    pub password_changes_per_user_per_hour: u32,
    /// Requests with an unknown, revoked or malformed API key per client IP per minute; past
    /// it, keys from that address are refused before they are looked up.
    pub invalid_keys_per_ip_per_minute: u32,
    /// Started sign-ins with another service (`POST /auth/oauth/{slug}/start`) per client IP
    /// per hour: each stores a pending state and may fetch the provider's discovery document.
    pub oauth_starts_per_ip_per_hour: u32,
    /// Password-reset mails asked for (`POST /auth/password/forgot`) per client IP per hour,
    /// whatever the addresses: the per-account limit alone lets one client mail everyone.
    pub password_resets_per_ip_per_hour: u32,
    /// One-time links presented (`POST /auth/verify-email`, `POST /auth/password/reset`) per
    /// client IP per hour.
    pub account_links_per_ip_per_hour: u32,
    /// SMS codes sent per client IP per hour (sign-in and binding together).
    pub sms_codes_per_ip_per_hour: u32,
    /// SMS codes sent per phone number per hour.
    pub sms_codes_per_phone_per_hour: u32,
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (people) or `json` (machines).
    pub format: LogFormat,
    /// A tracing filter (`info`, `skein=debug,sqlx=warn`).
    pub level: String,
}

/// Distributed traces: OpenTelemetry spans sent over OTLP/HTTP (JSON). Off unless an endpoint
/// is set here or in the standard `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`); spans go to
    /// `<endpoint>/v1/traces`. `None`: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (the base) when set, else no traces.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` spans are reported under; `OTEL_SERVICE_NAME` overrides it. Give each
    /// process of a split deployment its own (`skein-relay`, `skein-billing`).
    pub service_name: String,
    /// The share of new traces recorded, from 0 to 1. A request arriving with a `traceparent`
    /// follows its caller's decision (the `sampled` flag) instead.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "skein".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:3000".into(),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 60,
            shutdown_grace_secs: 30,
            cors_origins: Vec::new(),
            trust_forwarded_for: false,
            internal_listen: None,
            setup_token: None,
            metrics_token: None,
        }
    }
}

impl DatabaseConfig {
    /// The pool's size: `max_connections` when set, else the default for the database.
    pub fn pool_size(&self, sqlite: bool) -> u32 {
        self.max_connections.unwrap_or_else(|| {
            if sqlite {
                let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
                u32::try_from((2 * cores).clamp(4, 16)).unwrap_or(4)
            } else {
                16
            }
        })
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: None,
            idle_timeout_secs: 20,
            sqlite_cache_kib: 2_000,
            sqlite_heap_limit_mib: 0,
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            key_prefix: "skein:".into(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            session_cache_secs: 10,
            verified_email_for_login: false,
            verified_email_for_relay: false,
            email_verification_ttl_secs: 24 * 3600,
            password_reset_ttl_secs: 3600,
            two_factor_required_for_admins: false,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            auth_per_ip_per_minute: 30,
            api_per_user_per_minute: 1200,
            api_per_ip_per_minute: 600,
            api_per_key_per_minute: 6000,
            max_tokens_per_key_per_minute: 0,
            login_failures_per_account: 5,
            login_failures_per_ip: 50,
            login_lockout_secs: 15 * 60,
            password_changes_per_user_per_hour: 5,
            invalid_keys_per_ip_per_minute: 30,
            oauth_starts_per_ip_per_hour: 60,
            password_resets_per_ip_per_hour: 20,
            account_links_per_ip_per_hour: 60,
            sms_codes_per_ip_per_hour: 10,
            sms_codes_per_phone_per_hour: 5,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The configuration could not be loaded or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or variable could not be read or has the wrong type.
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// Values that parse but cannot work together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Renders a JSON object as TOML: plain keys first, then one `[table]` per nested object
/// (figment's TOML support is read-only). `null` becomes a comment that the key is not set.
pub fn render_toml(value: &serde_json::Value) -> String {
    let mut out = String::new();
    render_table(&mut out, "", value);
    out
}

fn render_table(out: &mut String, prefix: &str, value: &serde_json::Value) {
    let Some(map) = value.as_object() else { return };
    for (k, v) in map {
        if !v.is_object() && !v.is_null() {
            out.push_str(&format!("{k} = {v}\n"));
        } else if v.is_null() {
            out.push_str(&format!("# {k} is not set\n"));
        }
    }
    for (k, v) in map {
        if v.is_object() {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push_str(&format!("\n[{name}]\n"));
            render_table(out, &name, v);
        }
    }
}

/// Accepts `["a","b"]` or `"a,b"`, so lists can be set from one environment variable.
pub fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(list) => list,
        Either::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}
