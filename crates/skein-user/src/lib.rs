//! Skein's User service: registration, sign-in, rotating refresh tokens, profiles, invite
//! codes, and admin user management, under `/api/v1`.
//!
//! **Architecture Invariant:** this crate alone reads and writes the `users`, `sessions`,
//! `refresh_tokens`, `invite_codes`, `invitations`, `system_settings` and `user_preferences` tables. Others ask through
//! [`SessionDirectory`] (the gateway) or the methods of [`UserService`] (the CLI).

pub mod audit;
pub mod avatars;
pub mod config;
pub(crate) mod errors;
mod http;
pub mod ldap;
pub mod mail;
pub mod model;
pub mod oauth;
pub mod passkey;
pub mod password;
pub mod remote;
pub mod secrets;
mod service;
pub mod settings;
mod setup;
pub mod signin;
pub mod sms;
pub mod store;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use config::{MailConfig, RegistrationConfig};
use moka::sync::Cache;
pub use oauth::OAuthConfig;
use skein_core::api::{AccountEvents, SessionDirectory, SessionInfo, UserDirectory};
use skein_core::auth::{JwtKeys, Role};
use skein_core::config::{AuthConfig, LimitsConfig};
use skein_core::ids::{new_id, now_ms};
use skein_core::limit::RateLimiter;
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_core::{ApiError, ApiResult};
use skein_db::{Db, ServiceMigrations};
use utoipa_axum::router::OpenApiRouter;

use crate::model::UserStatus;

pub use http::TokenResponse;
use model::UserRow;
use store::SessionRow;

/// The User service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::User,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// How often each instance reads the settings again without being told (bus notes are at
/// most once).
const SETTINGS_RELOAD: Duration = Duration::from_secs(30);

/// What the User service is configured with.
#[derive(Clone)]
pub struct UserSettings {
    /// Tokens and hashing.
    pub auth: AuthConfig,
    /// Who may register.
    pub registration: RegistrationConfig,
    /// Login protection.
    pub limits: LimitsConfig,
    /// Outgoing mail.
    pub mail: MailConfig,
    /// Sign-in with other services.
    pub oauth: OAuthConfig,
    /// The system settings' values while none is stored (from the configuration file).
    pub system: settings::SettingsDefaults,

    /// Sign-in by SMS code.
    pub sms: sms::SmsConfig,
    /// Sign-in with a company directory.
    pub ldap: ldap::LdapConfig,
}

/// The User service.
pub struct UserService {
    db: Db,
    jwt: JwtKeys,
    passwords: password::Passwords,
    settings: UserSettings,
    limiter: Arc<dyn RateLimiter>,
    /// Sessions the gateway asked about recently; entries live `auth.session_cache_secs` and
    /// are dropped at once when this process revokes a session or changes a user.
    sessions: Cache<String, SessionRow>,
    /// Told about new accounts after they commit (Billing's grants).
    observers: std::sync::RwLock<Vec<Arc<dyn AccountEvents>>>,
    /// The first-run gate (setup token).
    setup: setup::SetupGate,
    /// The SMTP sender, when `[mail]` names a server.
    mailer: Option<mail::Mailer>,
    /// The mail queue's task.
    background: BackgroundTasks,
    /// Where uploaded avatars are stored (the File service, when it runs in this process).
    files: Option<Arc<dyn skein_core::api::FileApi>>,
    /// Calls to sign-in providers (OIDC discovery and keys cached).
    oauth: oauth::OAuthClient,
    /// The other instances, told when a session or user changes (set once at start-up).
    bus: std::sync::OnceLock<Arc<dyn skein_core::bus::Bus>>,
    /// The system settings in effect (the file's, overlaid by the stored ones).
    system: Arc<settings::LiveSettings>,

    /// Seals the secrets this service stores (providers' client secrets, TOTP secrets).
    sealer: skein_core::seal::Sealer,
    /// The sign-in methods in effect and the SMS vendor (the file's, overlaid by what an
    /// admin stored); swapped whole when the settings are read again.
    sign_in: std::sync::RwLock<Arc<signin::SignInEffective>>,
    /// Messages on their way to the SMS vendor.
    sms_queue: sms::SmsQueue,
    /// Uploaded avatars resized to the sizes pages ask for (bounded by bytes).
    avatar_cache: avatars::AvatarCache,
}

impl UserService {
    /// Builds the service over a migrated database; `sealer` seals the secrets it stores
    /// (derive it with [`secrets::SEAL_LABEL`]).
    pub fn new(
        db: Db,
        jwt: JwtKeys,
        settings: UserSettings,
        limiter: Arc<dyn RateLimiter>,
        sealer: skein_core::seal::Sealer,
    ) -> ApiResult<Self> {
        let passwords = password::Passwords::new(
            settings.auth.argon2_memory_kib,
            settings.auth.argon2_iterations,
        )?;
        let mailer = mail::Mailer::from_config(&settings.mail)
            .map_err(|e| ApiError::internal(format!("cannot configure mail: {e}")))?;
        let oauth = oauth::OAuthClient::new(Duration::from_secs(settings.oauth.http_timeout_secs))
            .map_err(|e| ApiError::internal(format!("cannot configure OAuth: {e}")))?;
        let sms = settings
            .sms
            .build()
            .map_err(|e| ApiError::internal(format!("cannot configure SMS: {e}")))?;
        warn_if_log(sms.as_deref());
        let sign_in = Arc::new(signin::SignInEffective {
            methods: default_methods(&settings),
            overridden: Vec::new(),
            sms: settings.sms.clone(),
            sms_source: signin::SmsSource::Config,
            sms_provider: sms,
            ldap: Arc::new(settings.ldap.clone()),
            ldap_source: signin::SmsSource::Config,
        });
        let sessions = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(settings.auth.session_cache_secs.max(1)))
            .support_invalidation_closures()
            .build();
        let system = Arc::new(settings::LiveSettings::new(settings.system.clone()));
        let background = BackgroundTasks::new();
        let sms_queue = sms::SmsQueue::new(&settings.sms, db.clone(), background.clone());
        Ok(UserService {
            db,
            jwt,
            passwords,
            settings,
            limiter,
            sessions,
            observers: Default::default(),
            setup: Default::default(),
            mailer,
            background,
            files: None,
            oauth,
            bus: std::sync::OnceLock::new(),
            system,

            sealer,
            sign_in: std::sync::RwLock::new(sign_in),
            sms_queue,
            avatar_cache: avatars::AvatarCache::default(),
        })
    }

    /// Stores uploaded avatars through `files` (composition time; without it, avatar upload
    /// answers 503 and generated avatars are still served).
    pub fn with_files(mut self, files: Option<Arc<dyn skein_core::api::FileApi>>) -> Self {
        self.files = files;
        self
    }

    /// Starts the mail queue's sender (when mail is configured). Call once, after the service
    /// is in its `Arc`.
    pub fn start(self: &Arc<Self>) {
        // The bus tells of every settings change at once; this reload is the safety net for
        // a note that was lost.
        self.background.every(
            "settings.reload",
            SETTINGS_RELOAD,
            FirstRun::AfterPeriod,
            self,
            |svc| async move {
                if let Err(error) = svc.load_settings().await {
                    tracing::warn!(%error, "could not reload the system settings");
                }
            },
        );
        if self.mailer.is_none() {
            return;
        }
        let period = Duration::from_millis(self.settings.mail.poll_interval_ms);
        self.background.every(
            "mail_outbox",
            period,
            FirstRun::Now,
            self,
            |svc| async move {
                if let Some(mailer) = &svc.mailer
                    && let Err(error) = mailer.tick(&svc.db).await
                {
                    tracing::error!(%error, "mail queue tick failed");
                }
            },
        );
    }

    /// The sign-in methods and SMS vendor in effect.
    pub(crate) fn sign_in(&self) -> Arc<signin::SignInEffective> {
        match self.sign_in.read() {
            Ok(s) => s.clone(),
            // A writer panicked mid-swap, which cannot leave half a value (one assignment).
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The sign-in methods as the configuration file sets them.
    pub(crate) fn sign_in_defaults(&self) -> signin::SignInMethods {
        default_methods(&self.settings)
    }

    /// The SMS vendor in effect, if any.
    pub(crate) fn sms_provider(&self) -> Option<Arc<dyn sms::SmsProvider>> {
        self.sign_in().sms_provider.clone()
    }

    /// Puts the stored sign-in settings (`sign_in.*` rows) in effect over the file's. A row
    /// that no longer parses or opens is skipped and logged: the file's value stands for it.
    fn install_sign_in(&self, rows: &[(String, String)]) {
        let mut methods = self.sign_in_defaults();
        let mut overridden = Vec::new();
        let mut sms = self.settings.sms.clone();
        let mut sms_source = signin::SmsSource::Config;
        let mut ldap = Arc::new(self.settings.ldap.clone());
        let mut ldap_source = signin::SmsSource::Config;
        for (name, json) in rows {
            let applied = (|| -> Result<(), String> {
                let value: serde_json::Value =
                    serde_json::from_str(json).map_err(|e| e.to_string())?;
                let flag = || value.as_bool().ok_or_else(|| "not a boolean".to_string());
                match name.as_str() {
                    signin::PASSWORD => methods.password = flag()?,
                    signin::VERIFIED_EMAIL_FOR_LOGIN => methods.verified_email_for_login = flag()?,
                    signin::VERIFIED_EMAIL_FOR_RELAY => methods.verified_email_for_relay = flag()?,
                    signin::PASSKEYS => methods.passkeys = flag()?,
                    signin::SMS => {
                        let mut stored: signin::StoredSms =
                            serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
                        self.open_sms_secret(&mut stored)?;
                        sms = signin::overlay_sms(&self.settings.sms, &stored)?;
                        sms_source = signin::SmsSource::Admin;
                    }
                    signin::LDAP => {
                        let config = signin::ldap_from_row(value.clone(), |sealed| {
                            self.open_ldap_password(sealed)
                        })?;
                        ldap = Arc::new(config);
                        ldap_source = signin::SmsSource::Admin;
                    }
                    other => return Err(format!("unknown setting {other}")),
                }
                Ok(())
            })();
            match applied {
                Ok(()) => overridden.push(name.clone()),
                Err(error) => {
                    tracing::warn!(setting = %name, %error, "ignoring a stored sign-in setting")
                }
            }
        }
        let sms_provider = match sms.build() {
            Ok(provider) => provider,
            Err(error) => {
                tracing::error!(%error, "the stored SMS settings do not work; phone sign-in is off");
                None
            }
        };
        let previous = self.sms_provider();
        if sms_provider.as_ref().map(|p| p.name()) != previous.as_ref().map(|p| p.name()) {
            warn_if_log(sms_provider.as_deref());
        }
        let next = Arc::new(signin::SignInEffective {
            methods,
            overridden,
            sms,
            sms_source,
            sms_provider,
            ldap,
            ldap_source,
        });
        match self.sign_in.write() {
            Ok(mut s) => *s = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// Whether mail can be sent.
    pub(crate) fn mail_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// The background tasks, for the binary's shutdown.
    pub(crate) fn background_tasks(&self) -> &BackgroundTasks {
        &self.background
    }

    /// Registers an observer of account events (composition time).
    pub fn observe(&self, observer: Arc<dyn AccountEvents>) {
        if let Ok(mut observers) = self.observers.write() {
            observers.push(observer);
        }
    }

    /// Joins the deployment's bus: what other instances change about users and sessions is
    /// dropped from this one's session cache at once, and what this one changes is told to
    /// them. After a lost connection the whole cache is dropped (notes may have been missed).
    pub fn join_bus(self: &Arc<Self>, bus: Arc<dyn skein_core::bus::Bus>) {
        use skein_core::bus::{Note, USER_TOPIC, UserChange};
        self.background
            .on_notes("user.bus", &bus, USER_TOPIC, self, |svc, note| async move {
                match note {
                    Note::Message(text) => match serde_json::from_str(&text) {
                        Ok(UserChange::User(user_id)) => svc.forget_user_sessions_here(&user_id),
                        Ok(UserChange::Session(session_id)) => svc.sessions.invalidate(&session_id),
                        Err(error) => tracing::warn!(%error, "unreadable user note"),
                    },
                    Note::Resync => svc.sessions.invalidate_all(),
                }
            });
        // Any settings note, or a resync, means: read the settings again.
        self.background.on_notes(
            "user.settings_bus",
            &bus,
            skein_core::bus::SETTINGS_TOPIC,
            self,
            |svc, _note| async move {
                if let Err(error) = svc.load_settings().await {
                    tracing::warn!(%error, "could not reload the system settings");
                }
            },
        );
        let _ = self.bus.set(bus);
    }

    /// Reads the stored settings and puts them in effect (at start-up, on a note from
    /// another instance, and periodically).
    pub async fn load_settings(&self) -> ApiResult<()> {
        let rows = store::settings::settings(self.db.pool()).await?;
        let (sign_in, system): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(name, _)| name.starts_with("sign_in."));
        self.system.install(&system);
        self.install_sign_in(&sign_in);
        Ok(())
    }

    /// The settings in effect, for the services built in this process.
    pub fn settings_source(&self) -> Arc<dyn skein_core::api::SettingsSource> {
        self.system.clone()
    }

    /// Tells the other instances that the settings changed.
    pub(crate) fn tell_settings_changed(&self) {
        skein_core::bus::tell(
            self.bus.get(),
            &self.background,
            skein_core::bus::SETTINGS_TOPIC,
            &"changed",
        );
    }

    /// Tells the other instances about `change`.
    fn tell(&self, change: skein_core::bus::UserChange) {
        skein_core::bus::tell(
            self.bus.get(),
            &self.background,
            skein_core::bus::USER_TOPIC,
            &change,
        );
    }

    /// Drops a revoked session from this instance's cache and from the others'.
    pub(crate) fn forget_session(&self, session_id: &str) {
        self.sessions.invalidate(session_id);
        self.tell(skein_core::bus::UserChange::Session(session_id.to_string()));
    }

    /// Tells every observer that a user was disabled or enabled.
    pub(crate) async fn announce_status_change(&self, user_id: &str) {
        self.tell(skein_core::bus::UserChange::User(user_id.to_string()));
        let observers = self.observers.read().map(|o| o.clone()).unwrap_or_default();
        for observer in observers {
            if let Err(error) = observer.user_status_changed(user_id).await {
                tracing::error!(%user_id, %error, "account observer failed");
            }
        }
    }

    /// Tells every observer that an account was created. Failures are logged: the account
    /// stands either way, and observers make their own effects idempotent.
    pub(crate) async fn announce_registration(&self, user_id: &str, inviter_id: Option<&str>) {
        let observers = self.observers.read().map(|o| o.clone()).unwrap_or_default();
        for observer in observers {
            if let Err(error) = observer.user_registered(user_id, inviter_id).await {
                tracing::error!(%user_id, %error, "account observer failed");
            }
        }
    }

    /// The service's routes, relative to `/api/v1`.
    pub fn routes(self: Arc<Self>) -> OpenApiRouter {
        http::routes(self)
    }

    /// Creates an account directly (CLI, first admin); the role is as given.
    pub async fn create_user(
        &self,
        username: Option<&str>,
        email: Option<&str>,
        password: &str,
        role: Role,
    ) -> ApiResult<model::Profile> {
        let username = username.map(validate::username).transpose()?;
        let email = email.map(validate::email).transpose()?;
        if username.is_none() && email.is_none() {
            return Err(ApiError::invalid_field(
                "username",
                "Give a username or an email.",
                "请提供用户名或邮箱。",
            ));
        }
        validate::password(password, "password")?;
        let hash = self.passwords.hash(password.to_string()).await?;
        let now = now_ms();
        let id = new_id();
        let display = username
            .clone()
            .or_else(|| email.as_ref().map(|e| email_name(e)))
            .unwrap_or_default();
        let mut tx = self.db.begin_write().await?;
        let (email_taken, username_taken) =
            store::taken(&mut *tx, email.as_deref(), username.as_deref()).await?;
        if email_taken || username_taken {
            return Err(taken_error(email_taken));
        }
        // Any account made by the operator means set-up is done: from now on registration
        // never hands out root (nor skips the registration policy as a first account would).
        store::claim_flag(&mut *tx, "root_claimed", &id, now).await?;
        let new = store::NewUser {
            id: &id,
            username: username.as_deref(),
            email: email.as_deref(),
            password_hash: &hash,
            display_name: &display,
            language: "en",
            role,
            invited_by: None,
            now,
        };
        store::insert_user(&mut *tx, &new)
            .await
            .map_err(conflict_or_internal)?;
        tx.commit().await.map_err(skein_db::DbError::from)?;
        self.setup.finish();
        self.announce_registration(&id, None).await;
        self.profile_of(&id).await
    }

    /// Sets the role of the account with this username or email (CLI).
    pub async fn set_role(&self, login: &str, role: Role) -> ApiResult<model::Profile> {
        let user = self.user_by_login(login).await?;
        store::claim_flag(self.db.pool(), "root_claimed", &user.id, now_ms()).await?;
        store::set_role_status(self.db.pool(), &user.id, Some(role), None, None, now_ms()).await?;
        self.forget_user_sessions(&user.id);
        self.profile_of(&user.id).await
    }

    /// Replaces the password of the account with this username or email and ends all of its
    /// sessions (CLI).
    pub async fn reset_password(&self, login: &str, password: &str) -> ApiResult<u64> {
        let user = self.user_by_login(login).await?;
        self.replace_password(&user.id, password, None, "password_reset")
            .await
    }

    async fn user_by_login(&self, login: &str) -> ApiResult<UserRow> {
        store::user_by_login(self.db.pool(), login)
            .await?
            .ok_or_else(|| ApiError::not_found("User", "用户"))
    }

    async fn profile_of(&self, id: &str) -> ApiResult<model::Profile> {
        store::user_by_id(self.db.pool(), id)
            .await?
            .map(model::Profile::from)
            .ok_or_else(|| ApiError::not_found("User", "用户"))
    }

    /// Sets a new password and revokes every session but `keep`; answers how many ended.
    async fn replace_password(
        &self,
        user_id: &str,
        password: &str,
        keep: Option<&str>,
        reason: &str,
    ) -> ApiResult<u64> {
        validate::password(password, "new_password")?;
        let hash = self.passwords.hash(password.to_string()).await?;
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        store::set_password(&mut *tx, user_id, &hash, now).await?;
        store::accounts::void_reset_links(&mut *tx, user_id, None, now).await?;
        let revoked = store::revoke_user_sessions(&mut *tx, user_id, keep, reason, now).await?;
        tx.commit().await.map_err(skein_db::DbError::from)?;
        self.forget_user_sessions(user_id);
        Ok(revoked)
    }

    /// Counts one request of kind `what` (`oauth_start`, `password_forgot`, ...) from the
    /// address bucket of `ip` (an IPv6 /64) against `per_hour`; 429 with `Retry-After` when
    /// the address used its hour's budget. For unauthenticated routes that cost a row, a mail,
    /// an SMS or a call to another service, on top of the gateway's per-minute auth limit.
    pub(crate) async fn limit_ip(
        &self,
        what: &str,
        ip: std::net::IpAddr,
        per_hour: u32,
    ) -> ApiResult<()> {
        let key = format!("{what}:ip:{}", skein_core::request::ip_bucket(ip));
        throttle::charge(self.limiter.as_ref(), &key, throttle::per_hour(per_hour))
            .await
            .map_err(|wait| {
                tracing::warn!(client_ip = %ip, what, "per-address limit reached");
                ApiError::too_many_requests(wait.as_secs_f64().ceil().max(1.0) as u64)
            })
    }

    /// Drops what this instance and the others cached of `user_id`'s sessions (their role,
    /// status and second factor changed, or they were revoked).
    pub(crate) fn forget_user_sessions(&self, user_id: &str) {
        self.forget_user_sessions_here(user_id);
        self.tell(skein_core::bus::UserChange::User(user_id.to_string()));
    }

    fn forget_user_sessions_here(&self, user_id: &str) {
        let user_id = user_id.to_string();
        if self
            .sessions
            .invalidate_entries_if(move |_, row| row.user_id == user_id)
            .is_err()
        {
            // Closures are enabled at build time, so this cannot happen; dropping everything
            // is the safe answer if it ever does.
            self.sessions.invalidate_all();
        }
    }
}

#[async_trait]
impl SessionDirectory for UserService {
    async fn session(&self, session_id: &str) -> Result<Option<SessionInfo>, ApiError> {
        let row = match self.sessions.get(session_id) {
            Some(row) => row,
            None => {
                let Some(row) = store::session_row(self.db.pool(), session_id).await? else {
                    return Ok(None);
                };
                self.sessions.insert(session_id.to_string(), row.clone());
                row
            }
        };
        let mut role = row.role;
        // `auth.two_factor_required_for_admins`: an admin without a second factor acts as a
        // plain user (enough to turn it on) until they set it up.
        if self.settings.auth.two_factor_required_for_admins
            && role != Role::User
            && row.totp_enabled == 0
        {
            role = Role::User;
        }
        let active = row.revoked_at.is_none()
            && row.expires_at > now_ms()
            && row.status == UserStatus::Active;
        Ok(Some(SessionInfo {
            user_id: row.user_id,
            role,
            active,
        }))
    }
}

#[async_trait]
impl UserDirectory for UserService {
    async fn user_exists(&self, user_id: &str) -> Result<bool, ApiError> {
        if !skein_core::ids::looks_like_id(user_id) {
            return Ok(false);
        }
        Ok(store::user_by_id(self.db.pool(), user_id).await?.is_some())
    }

    async fn user_active(&self, user_id: &str) -> Result<bool, ApiError> {
        if !skein_core::ids::looks_like_id(user_id) {
            return Ok(false);
        }
        // With `auth.verified_email_for_relay`, a plain user's keys work only once their
        // address is proved (the relay asks here, and again when told of a status change).
        let needs_verified = self.sign_in().methods.verified_email_for_relay;
        Ok(store::user_by_id(self.db.pool(), user_id)
            .await?
            .is_some_and(|u| {
                u.status == UserStatus::Active
                    && !(needs_verified && u.role == Role::User && u.email_verified_at.is_none())
            }))
    }

    async fn mail_user(
        &self,
        user_id: &str,
        mail: &skein_core::api::UserMail,
    ) -> Result<bool, ApiError> {
        if !self.mail_enabled() || !skein_core::ids::looks_like_id(user_id) {
            return Ok(false);
        }
        let Some(user) = store::user_by_id(self.db.pool(), user_id).await? else {
            return Ok(false);
        };
        // Only a proved address: a typo'd one would send the user's figures to a stranger.
        let Some(email) = user
            .email
            .as_deref()
            .filter(|_| user.email_verified_at.is_some() && user.status == UserStatus::Active)
        else {
            return Ok(false);
        };
        let template = mail::Template::Notice {
            name: user.display_name.clone(),
            mail: Box::new(mail.clone()),
            base_url: self.settings.mail.public_url.clone(),
        };
        let mut tx = self.db.begin_write().await?;
        mail::enqueue(
            &mut tx,
            email,
            &template,
            mail::Lang::from_profile(&user.language),
        )
        .await?;
        tx.commit().await.map_err(skein_db::DbError::from)?;
        tracing::info!(user_id, kind = %mail.kind, "mail queued for a service");
        Ok(true)
    }
}

/// The sign-in methods the configuration file sets.
fn default_methods(settings: &UserSettings) -> signin::SignInMethods {
    signin::SignInMethods {
        password: true,
        verified_email_for_login: settings.auth.verified_email_for_login,
        verified_email_for_relay: settings.auth.verified_email_for_relay,
        passkeys: true,
    }
}

/// Start-up and every change to the log provider say it loudly: anyone who reads the log
/// signs in as anyone.
fn warn_if_log(provider: Option<&dyn sms::SmsProvider>) {
    if provider.is_some_and(|p| p.name() == "log") {
        tracing::warn!(
            "sms.provider = \"log\": SMS codes are written to the log, not sent; never use this in production"
        );
    }
}

fn email_name(email: &str) -> String {
    email
        .split('@')
        .next()
        .unwrap_or(email)
        .chars()
        .take(64)
        .collect()
}

fn taken_error(email: bool) -> ApiError {
    if email {
        ApiError::conflict(
            "email_taken",
            "An account with this email already exists.",
            "该邮箱已被注册。",
        )
    } else {
        ApiError::conflict(
            "username_taken",
            "This username is taken.",
            "该用户名已被占用。",
        )
    }
}

/// A unique violation that a pre-check missed (a race) is still a 409, never a 500.
fn conflict_or_internal(e: skein_db::DbError) -> ApiError {
    if store::is_conflict(&e) {
        ApiError::conflict(
            "account_exists",
            "An account with this email or username already exists.",
            "该邮箱或用户名已被注册。",
        )
    } else {
        e.into()
    }
}
/// Sizes for the runtime report: the session cache (at most 100,000 entries, each
/// `auth.session_cache_secs`). Login failures live in the rate limiter, reported there.
impl skein_core::runtime::Gauges for UserService {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        self.sessions.run_pending_tasks();
        vec![
            ("user.session_cache", self.sessions.entry_count()),
            ("user.sms_queue", self.sms_queue.len() as u64),
        ]
    }
}
