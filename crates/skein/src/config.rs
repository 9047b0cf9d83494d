//! Skein's configuration: defaults < `skein.toml` < `SKEIN_*` environment variables.
//!
//! Every key is documented in `skein.example.toml` at the repository root. The short
//! variables users reach for first (`SKEIN_LISTEN`, `SKEIN_DATABASE_URL`, `SKEIN_REDIS_URL`,
//! `SKEIN_DATA_DIR`, `SKEIN_LOG_FORMAT`, `SKEIN_LOG_LEVEL`, `SKEIN_JWT_SECRET`,
//! `SKEIN_SETUP_TOKEN`, `SKEIN_METRICS_TOKEN`) map to their
//! keys; any other key is reachable as `SKEIN_SECTION__KEY` (for example
//! `SKEIN_LIMITS__API_PER_USER_PER_MINUTE=1200`).
//!
//! The binary owns the whole: each service crate owns its section's type and rules
//! (`skein_billing::BillingConfig`, ...), the shared sections live in `skein_core::config`,
//! and [`Config`] composes them, so one file and one environment configure every service.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
pub use skein_billing::BillingConfig;
pub use skein_chat::ChatConfig;
pub use skein_core::config::{
    AuthConfig, ConfigError, DatabaseConfig, LimitsConfig, LogConfig, LogFormat, RedisConfig,
    ServerConfig, TelemetryConfig, render_toml,
};
use skein_core::secret::{Secret, mask_url};
pub use skein_file::FileConfig;
pub use skein_knowledge::KnowledgeConfig;
pub use skein_plugin::PluginConfig;
pub use skein_relay::RelayConfig;
pub use skein_user::ldap::LdapConfig;
pub use skein_user::sms::SmsConfig;
pub use skein_user::{MailConfig, OAuthConfig, RegistrationConfig};

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
    /// Who may register (the User service).
    pub registration: RegistrationConfig,
    /// Outgoing mail (the User service).
    pub mail: MailConfig,
    /// Sign-in with other services: OIDC, GitHub, WeChat (the User service).
    pub oauth: OAuthConfig,
    /// Sign-in by SMS code: Aliyun, Tencent Cloud, Twilio, or the log (the User service).
    pub sms: SmsConfig,
    /// Sign-in with a company directory over LDAP (the User service).
    pub ldap: LdapConfig,
    /// Rate limits and login protection.
    pub limits: LimitsConfig,
    /// Quota, grants and reservations.
    pub billing: BillingConfig,
    /// The relay (API keys, channels).
    pub relay: RelayConfig,
    /// Chat (conversations).
    pub chat: ChatConfig,
    /// Files (storage, limits, signed URLs).
    pub file: FileConfig,
    /// Knowledge bases (chunking defaults, the ingestion worker, search).
    pub knowledge: KnowledgeConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where services this process does not run are, and the token between processes.
    pub services: ServicesConfig,
    /// Plugins: the local MCP servers admins may register.
    pub plugin: PluginConfig,
    /// Distributed traces over OTLP (off by default).
    pub telemetry: TelemetryConfig,
}

/// Where the services a process does not run are (their internal listeners), and the token
/// every `/internal/*` call carries. Unset URLs mean "runs here or nowhere".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServicesConfig {
    /// The token every process of a deployment shares for `/internal/*` (at least 32
    /// characters). Without it (and without `billing.internal_token`) no internal route is
    /// served and no remote service can be called.
    pub internal_token: Option<Secret>,
    /// The User service's internal listener (`http://user:3001`), when this process does not
    /// run it: sessions, who exists, the audit log.
    pub user_url: Option<String>,
    /// The Billing service's internal listener, when this process does not run it: holds and
    /// charges, and the account events that grant quota.
    pub billing_url: Option<String>,
    /// The Relay service's internal listener, when this process does not run it: account
    /// events (a disabled user's keys stop).
    pub relay_url: Option<String>,
    /// The Chat service's internal listener, when this process does not run it: the Agent
    /// service starts conversations with assistants there.
    pub chat_url: Option<String>,
    /// The File service's internal listener, when this process does not run it: uploads,
    /// reads and checks of file ids for Chat, Knowledge, Agent, User and Plugin. Signed file
    /// URLs are made here too, so `file.signing_key` must be the same in every process.
    pub file_url: Option<String>,
    /// The Knowledge service's internal listener, when this process does not run it: search
    /// for Chat's answers and checks of bound bases for the Agent service.
    pub knowledge_url: Option<String>,
    /// The Plugin service's internal listener, when this process does not run it: the tools
    /// Chat offers and runs, and checks of bound plugins for the Agent service.
    pub plugin_url: Option<String>,
    /// The Agent service's internal listener, when this process does not run it: the
    /// assistant version a conversation is pinned to.
    pub agent_url: Option<String>,
}

impl ServicesConfig {
    /// The URL configured for `service`, if any.
    pub fn url(&self, service: skein_core::service::ServiceName) -> Option<&str> {
        use skein_core::service::ServiceName;
        match service {
            ServiceName::User => self.user_url.as_deref(),
            ServiceName::Billing => self.billing_url.as_deref(),
            ServiceName::Relay => self.relay_url.as_deref(),
            ServiceName::Chat => self.chat_url.as_deref(),
            ServiceName::File => self.file_url.as_deref(),
            ServiceName::Knowledge => self.knowledge_url.as_deref(),
            ServiceName::Plugin => self.plugin_url.as_deref(),
            ServiceName::Agent => self.agent_url.as_deref(),
            ServiceName::Gateway => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(token) = &self.internal_token
            && token.expose().len() < 32
        {
            return Err("services.internal_token must be at least 32 characters".into());
        }
        for (key, url) in [
            ("user_url", &self.user_url),
            ("billing_url", &self.billing_url),
            ("relay_url", &self.relay_url),
            ("chat_url", &self.chat_url),
            ("file_url", &self.file_url),
            ("knowledge_url", &self.knowledge_url),
            ("plugin_url", &self.plugin_url),
            ("agent_url", &self.agent_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(format!(
                    "services.{key} must start with http:// or https://"
                ));
            }
        }
        Ok(())
    }
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
            mail: MailConfig::default(),
            oauth: OAuthConfig::default(),
            sms: SmsConfig::default(),
            ldap: LdapConfig::default(),
            limits: LimitsConfig::default(),
            billing: BillingConfig::default(),
            relay: RelayConfig::default(),
            chat: ChatConfig::default(),
            file: FileConfig::default(),
            knowledge: KnowledgeConfig::default(),
            log: LogConfig::default(),
            services: ServicesConfig::default(),
            plugin: PluginConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
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
    ("metrics_token", "server.metrics_token"),
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
    "mail",
    "oauth",
    "sms",
    "ldap",
    "limits",
    "billing",
    "relay",
    "chat",
    "file",
    "knowledge",
    "log",
    "services",
    "telemetry",
    "plugin",
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
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return bad("telemetry.otlp_endpoint must start with http:// or https://");
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return bad("telemetry.sample_ratio must be between 0 and 1");
        }
        if let Some(token) = &self.server.metrics_token
            && token.expose().len() < 16
        {
            return bad("server.metrics_token must be at least 16 characters");
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
        if (self.auth.verified_email_for_login || self.auth.verified_email_for_relay)
            && !self.mail.enabled()
        {
            return bad(
                "auth.verified_email_for_login/relay need mail.smtp_host: no mail could verify an address",
            );
        }
        if self.database.max_connections == Some(0) {
            return bad("database.max_connections must be at least 1");
        }
        let sections = [
            self.registration.validate(),
            self.mail.validate(),
            self.oauth.validate(),
            self.sms.validate(),
            self.ldap.validate(),
            self.billing.validate(),
            self.relay.validate(),
            self.chat.validate(),
            self.file.validate(),
            self.knowledge.validate(),
            self.services.validate(),
            self.plugin.validate(),
        ];
        if let Some(problem) = sections.into_iter().find_map(Result::err) {
            return Err(ConfigError::Invalid(problem));
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

    /// The token every `/internal/*` call carries: `services.internal_token`, or its older
    /// name `billing.internal_token`. `None`: no internal routes are served and no other
    /// process can be called.
    pub fn internal_token(&self) -> Option<&Secret> {
        self.services
            .internal_token
            .as_ref()
            .or(self.billing.internal_token.as_ref())
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
        render_toml(&serde_json::to_value(&shown).unwrap_or_default())
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
    fn the_metrics_token_comes_from_its_short_variable_and_must_be_long() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SKEIN_METRICS_TOKEN", "a-scrape-token-long-enough");
            jail.set_env("SKEIN_BILLING__VERIFY_EVERY_SECS", "3600");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.server.metrics_token.as_ref().map(|t| t.expose()),
                Some("a-scrape-token-long-enough")
            );
            assert_eq!(c.billing.verify_every_secs, 3600);
            assert!(!c.to_masked_toml().contains("a-scrape-token"), "masked");
            jail.set_env("SKEIN_METRICS_TOKEN", "short");
            let err = Config::load(None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("metrics_token"), "{err}");
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
