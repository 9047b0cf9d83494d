//! Skein's configuration: defaults < `skein.toml` < `SKEIN_*` environment variables.
//!
//! Every key is documented in `skein.example.toml` at the repository root. The short
//! variables users reach for first (`SKEIN_LISTEN`, `SKEIN_DATABASE_URL`, `SKEIN_REDIS_URL`,
//! `SKEIN_DATA_DIR`, `SKEIN_LOG_FORMAT`, `SKEIN_LOG_LEVEL`, `SKEIN_JWT_SECRET`,
//! `SKEIN_SETUP_TOKEN`) map to their
//! keys; any other key is reachable as `SKEIN_SECTION__KEY` (for example
//! `SKEIN_LIMITS__API_PER_USER_PER_MINUTE=1200`).

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::{Secret, mask_url};

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database, the generated JWT secret and local files live.
    pub data_dir: PathBuf,
    /// The HTTP server.
    pub server: ServerConfig,
    /// The relational database.
    pub database: DatabaseConfig,
    /// Redis, for limits shared by several instances.
    pub redis: RedisConfig,
    /// Tokens and password hashing.
    pub auth: AuthConfig,
    /// Who may register.
    pub registration: RegistrationConfig,
    /// Rate limits and login protection.
    pub limits: LimitsConfig,
    /// Quota, grants and reservations.
    pub billing: BillingConfig,
    /// The relay (API keys, channels).
    pub relay: RelayConfig,
    /// Chat (conversations).
    pub chat: ChatConfig,
    /// Logging.
    pub log: LogConfig,
}

/// The relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Channel groups an API key may name (the first is the default).
    #[serde(deserialize_with = "list_or_csv")]
    pub groups: Vec<String>,
    /// Groups a user may put API keys in until an admin sets that user's own list. Groups
    /// carry price multipliers, so users are given groups, never choose them.
    #[serde(deserialize_with = "list_or_csv")]
    pub default_user_groups: Vec<String>,
    /// 64 hex characters (32 bytes) that seal upstream keys at rest; when empty one is
    /// generated into `data_dir/relay_secret_key`. Every instance must share it.
    pub secret_key: Option<Secret>,
    /// How often channels that were disabled automatically (bad key, no upstream quota) are
    /// probed, and re-enabled when they answer.
    pub probe_interval_secs: u64,
    /// Whether the relay may fetch client image URLs that resolve to private, loopback or
    /// link-local addresses (it fetches them for upstreams that take images only inline, such
    /// as Gemini). Off: a client could otherwise make the server read its own network.
    pub allow_private_image_urls: bool,
    /// Whether a model that has no price is served free (cost 0, recorded with no pricing)
    /// instead of refused with `model_not_priced`. Off: prices are money, set them explicitly.
    pub allow_unpriced: bool,
    /// Most output tokens per answer by model name, over the built-in table of what vendors
    /// document. A request without `max_tokens` is held (and capped upstream) at this.
    pub max_output_tokens: std::collections::BTreeMap<String, i64>,
    /// Most output tokens per answer for a model neither table knows.
    pub default_max_output_tokens: i64,
    /// How long a streamed answer waits for a client that stopped reading before dropping it
    /// (the upstream is still read to its end and billed).
    pub client_write_timeout_secs: u64,
    /// Chat request fields allowed besides the built-in list of those billed only by tokens:
    /// a vendor's own options the operator knows cost nothing extra. Others are refused with
    /// `unsupported_field`, so no field can make a vendor charge what the relay cannot bill.
    #[serde(deserialize_with = "list_or_csv")]
    pub extra_request_fields: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            groups: vec!["default".into()],
            default_user_groups: vec!["default".into()],
            secret_key: None,
            probe_interval_secs: 60,
            allow_private_image_urls: false,
            allow_unpriced: false,
            max_output_tokens: std::collections::BTreeMap::new(),
            default_max_output_tokens: 16_384,
            client_write_timeout_secs: 30,
            extra_request_fields: Vec::new(),
        }
    }
}

/// Chat: which models make titles and summaries, and how much history fits a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Model a new conversation uses when it names none (`None`: the first priced model).
    pub default_model: Option<String>,
    /// Model that writes conversation titles (`None`: the conversation's own model; empty
    /// string: no generated titles).
    pub title_model: Option<String>,
    /// A cheap model that summarises turns too old to fit the window (`None`: older turns are
    /// dropped, not summarised).
    pub summary_model: Option<String>,
    /// Tokens of a model's window kept free for its answer when the conversation sets no
    /// `max_tokens`.
    pub output_reserve: u32,
    /// Longest message a user may send, in characters.
    pub max_message_chars: usize,
    /// Speech-to-text model for voice input.
    pub transcription_model: String,
    /// Context windows (tokens) by model name, over the built-in table.
    pub context_windows: std::collections::BTreeMap<String, u32>,
    /// Window assumed for a model neither table knows.
    pub default_context_window: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            default_model: None,
            title_model: None,
            summary_model: None,
            output_reserve: 4096,
            max_message_chars: 100_000,
            transcription_model: "whisper-1".into(),
            context_windows: Default::default(),
            default_context_window: 16_384,
        }
    }
}

/// Quota, grants and reservations. Amounts are integer quota units.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Quota units per US dollar (one-api's 500,000).
    pub quota_per_usd: i64,
    /// Yuan per US dollar, for showing prices in CNY (display only; never stored).
    pub cny_per_usd: f64,
    /// Quota every new account starts with.
    pub signup_grant: i64,
    /// Quota the inviter receives when someone registers with their code.
    pub invite_reward_inviter: i64,
    /// Quota the invitee receives on top of the signup grant.
    pub invite_reward_invitee: i64,
    /// How far below zero holds may take a balance (0 = never).
    pub overdraft: i64,
    /// An unsettled reservation is released after this long (a crashed caller).
    pub reservation_ttl_secs: i64,
    /// Bearer token for `/internal/billing/*` (other Skein processes); empty disables them.
    pub internal_token: Option<Secret>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            quota_per_usd: 500_000,
            cny_per_usd: 7.2,
            signup_grant: 0,
            invite_reward_inviter: 0,
            invite_reward_invitee: 0,
            overdraft: 0,
            reservation_ttl_secs: 900,
            internal_token: None,
        }
    }
}

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
}

/// The relational database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://...` or `sqlite://...`; empty means `sqlite://<data_dir>/skein.db`.
    pub url: Option<String>,
    /// Connections in the pool.
    pub max_connections: u32,
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
}

/// Who may register.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Whether anyone may register (the first account always may).
    pub enabled: bool,
    /// Whether registration needs an invite code.
    pub invite_required: bool,
    /// How many invite codes a user may create.
    pub user_invite_code_limit: u32,
    /// Uses of each code a user creates (0 = unlimited).
    pub user_invite_code_max_uses: u32,
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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            auth: AuthConfig::default(),
            registration: RegistrationConfig::default(),
            limits: LimitsConfig::default(),
            billing: BillingConfig::default(),
            relay: RelayConfig::default(),
            chat: ChatConfig::default(),
            log: LogConfig::default(),
        }
    }
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
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 16,
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
        }
    }
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            enabled: true,
            invite_required: false,
            user_invite_code_limit: 5,
            user_invite_code_max_uses: 1,
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

/// Short environment variables and the keys they set.
const SHORT_ENV: &[(&str, &str)] = &[
    ("listen", "server.listen"),
    ("database_url", "database.url"),
    ("redis_url", "redis.url"),
    ("data_dir", "data_dir"),
    ("log_format", "log.format"),
    ("log_level", "log.level"),
    ("jwt_secret", "auth.jwt_secret"),
    ("setup_token", "server.setup_token"),
];

/// Sections reachable as `SKEIN_SECTION__KEY`. Other `SKEIN_*` variables (the CLI's
/// `SKEIN_CONFIG` and `SKEIN_SERVICES`, the test harness's) are not configuration and are
/// left alone, while a typo inside a section is still reported.
const SECTIONS: &[&str] = &[
    "server",
    "database",
    "redis",
    "auth",
    "registration",
    "limits",
    "billing",
    "relay",
    "chat",
    "log",
];

impl Config {
    /// Loads defaults, then `file` (when it exists; `None` tries `./skein.toml`), then the
    /// environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        // A file named explicitly must exist; the default one is optional.
        let toml = match file {
            Some(path) => Toml::file_exact(path),
            None => Toml::file("skein.toml"),
        };
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::default()))
                .merge(toml)
                .merge(env_provider()),
        )
    }

    /// Loads from an explicit figment (tests and embedders).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad("server.listen must be an address such as 0.0.0.0:3000");
        }
        if let Some(internal) = &self.server.internal_listen
            && internal.parse::<std::net::SocketAddr>().is_err()
        {
            return bad("server.internal_listen must be an address such as 127.0.0.1:3001");
        }
        if let Some(token) = &self.server.setup_token
            && token.expose().len() < 16
        {
            return bad("server.setup_token must be at least 16 characters");
        }
        if self.server.body_limit_bytes < 1024 {
            return bad("server.body_limit_bytes must be at least 1024");
        }
        if let Some(url) = &self.database.url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return bad("database.url must start with sqlite: or postgres://");
        }
        if let Some(url) = &self.redis.url
            && !(url.starts_with("redis://") || url.starts_with("rediss://"))
        {
            return bad("redis.url must start with redis:// or rediss://");
        }
        if let Some(secret) = &self.auth.jwt_secret
            && secret.expose().len() < 32
        {
            return bad("auth.jwt_secret must be at least 32 characters");
        }
        if self.auth.access_token_ttl_secs < 30 || self.auth.refresh_token_ttl_secs < 60 {
            return bad("auth token lifetimes are too short (access >= 30 s, refresh >= 60 s)");
        }
        if self.auth.argon2_memory_kib < 8 * 1024 || self.auth.argon2_iterations < 1 {
            return bad(
                "auth.argon2_memory_kib must be at least 8192 and argon2_iterations at least 1",
            );
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections must be at least 1");
        }
        if self.relay.groups.is_empty() || self.relay.groups.iter().any(|g| g.trim().is_empty()) {
            return bad("relay.groups must name at least one group");
        }
        if self
            .relay
            .default_user_groups
            .iter()
            .any(|g| !self.relay.groups.contains(g))
        {
            return bad("relay.default_user_groups may name only groups listed in relay.groups");
        }
        if let Some(key) = &self.relay.secret_key
            && (key.expose().len() != 64 || !key.expose().bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return bad("relay.secret_key must be 64 hex characters");
        }
        if self.chat.max_message_chars == 0 || self.chat.default_context_window < 512 {
            return bad(
                "chat.max_message_chars must be at least 1 and chat.default_context_window at least 512",
            );
        }
        if self.relay.probe_interval_secs == 0 {
            return bad("relay.probe_interval_secs must be at least 1");
        }
        let b = &self.billing;
        if b.quota_per_usd <= 0 || b.cny_per_usd <= 0.0 || b.reservation_ttl_secs < 1 {
            return bad(
                "billing.quota_per_usd and cny_per_usd must be positive; reservation_ttl_secs at least 1",
            );
        }
        if [
            b.signup_grant,
            b.invite_reward_inviter,
            b.invite_reward_invitee,
            b.overdraft,
        ]
        .iter()
        .any(|v| *v < 0)
        {
            return bad("billing grants and overdraft cannot be negative");
        }
        if let Some(token) = &b.internal_token
            && token.expose().len() < 32
        {
            return bad("billing.internal_token must be at least 32 characters");
        }
        let l = &self.limits;
        if [
            l.auth_per_ip_per_minute,
            l.api_per_user_per_minute,
            l.api_per_ip_per_minute,
            l.api_per_key_per_minute,
            l.login_failures_per_account,
            l.login_failures_per_ip,
            l.password_changes_per_user_per_hour,
            l.invalid_keys_per_ip_per_minute,
        ]
        .contains(&0)
        {
            return bad("limits must be at least 1");
        }
        Ok(())
    }

    /// The database URL in effect (SQLite in the data folder unless configured).
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("skein.db").display()
            ),
        }
    }

    /// The effective configuration as TOML with every secret masked (`skein config check`).
    pub fn to_masked_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = Some(mask_url(&self.database_url()));
        shown.redis.url = self.redis.url.as_deref().map(mask_url);
        toml_string(&shown)
    }
}

fn toml_string(config: &Config) -> String {
    // figment's TOML support is read-only; render through serde_json into a small writer.
    let value = serde_json::to_value(config).unwrap_or_default();
    let mut out = String::new();
    render_table(&mut out, "", &value);
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

fn env_provider() -> Env {
    Env::prefixed("SKEIN_")
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let section = key.split("__").next().unwrap_or("");
            SHORT_ENV.iter().any(|(short, _)| *short == key)
                || (key.contains("__") && SECTIONS.contains(&section))
        })
        .map(|key| {
            let lower = key.as_str().to_ascii_lowercase();
            match SHORT_ENV.iter().find(|(short, _)| *short == lower) {
                Some((_, full)) => (*full).into(),
                None => lower.replace("__", ".").into(),
            }
        })
        .lowercase(false)
}

/// Accepts `["a","b"]` or `"a,b"`, so lists can be set from one environment variable.
fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "skein.toml",
                "[server]\nlisten = \"127.0.0.1:4000\"\nbody_limit_bytes = 4096\n[auth]\naccess_token_ttl_secs = 600\n",
            )?;
            jail.set_env("SKEIN_LISTEN", "127.0.0.1:5000");
            jail.set_env("SKEIN_LIMITS__API_PER_USER_PER_MINUTE", "77");
            jail.set_env(
                "SKEIN_SERVER__CORS_ORIGINS",
                "https://a.example, https://b.example",
            );
            jail.set_env("SKEIN_SERVICES", "user");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen, "127.0.0.1:5000", "env beats file");
            assert_eq!(c.server.body_limit_bytes, 4096, "file beats default");
            assert_eq!(c.auth.access_token_ttl_secs, 600);
            assert_eq!(c.limits.api_per_user_per_minute, 77);
            assert_eq!(
                c.server.cors_origins,
                vec!["https://a.example", "https://b.example"]
            );
            assert_eq!(
                c.auth.refresh_token_ttl_secs,
                30 * 24 * 3600,
                "default kept"
            );
            Ok(())
        });
    }

    #[test]
    fn rejects_nonsense_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SKEIN_LISTEN", "not an address");
            assert!(Config::load(None).is_err());
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.create_file("skein.toml", "[server]\nlisen = \"x\"\n")?;
            let err = Config::load(None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("lisen"), "typo not reported: {err}");
            Ok(())
        });
    }

    #[test]
    fn every_section_is_reachable_from_the_environment() {
        let value = serde_json::to_value(Config::default()).unwrap_or_default();
        let sections: Vec<&String> = value
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.is_object())
            .map(|(k, _)| k)
            .collect();
        assert!(!sections.is_empty());
        for section in sections {
            assert!(
                SECTIONS.contains(&section.as_str()),
                "SKEIN_{}__* would be ignored",
                section.to_uppercase()
            );
        }
    }

    #[test]
    fn masks_secrets_when_printed() {
        let mut c = Config::default();
        c.auth.jwt_secret = Some(Secret::new("s3cret-s3cret-s3cret-s3cret-s3cret"));
        c.database.url = Some("postgres://skein:pw123@db/skein".into());
        let shown = c.to_masked_toml();
        assert!(
            !shown.contains("s3cret") && !shown.contains("pw123"),
            "{shown}"
        );
        assert!(shown.contains("postgres://skein:****@db/skein"));
        assert!(shown.contains("[server]"));
    }
}
