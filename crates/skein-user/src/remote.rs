//! The User service as a process that does not run it reaches it: HTTP clients of
//! `/internal/user/*` implementing the same traits the service implements in process.

use std::time::Duration;

use async_trait::async_trait;
use moka::sync::Cache;
use skein_core::ApiError;
use skein_core::api::{
    AuditEntry, AuditLog, SessionDirectory, SessionInfo, SettingsSource, SystemSettings,
    UserDirectory,
};
use skein_core::internal::InternalClient;

use crate::http::internal::{SessionQuery, UserQuery, UserStatus};

/// `SessionDirectory`, `UserDirectory` and `AuditLog` of a User service in another process.
///
/// Session answers are cached for `auth.session_cache_secs`, as every instance other than the
/// one that made a change already trusts them for that long, so the gateway does not make an
/// internal call per request.
pub struct RemoteUsers {
    client: InternalClient,
    sessions: Cache<String, Option<SessionInfo>>,
    /// The listener of the deployment's bus, once joined.
    background: skein_core::service::BackgroundTasks,
}

impl RemoteUsers {
    /// A client of the User service behind `client`, caching sessions for `session_cache`.
    pub fn new(client: InternalClient, session_cache: Duration) -> Self {
        RemoteUsers {
            client,
            sessions: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(session_cache.max(Duration::from_secs(1)))
                .support_invalidation_closures()
                .build(),
            background: skein_core::service::BackgroundTasks::new(),
        }
    }

    /// Joins the deployment's bus: a session revoked or a user changed on any instance is
    /// dropped from this cache at once (all of it after a lost connection).
    pub fn join_bus(self: &std::sync::Arc<Self>, bus: std::sync::Arc<dyn skein_core::bus::Bus>) {
        use skein_core::bus::{Note, USER_TOPIC, UserChange};
        self.background.on_notes(
            "user.remote.bus",
            &bus,
            USER_TOPIC,
            self,
            |users, note| async move {
                match note {
                    Note::Message(text) => match serde_json::from_str(&text) {
                        Ok(UserChange::Session(session_id)) => {
                            users.sessions.invalidate(&session_id)
                        }
                        Ok(UserChange::User(user_id)) => {
                            let dropped = users.sessions.invalidate_entries_if(move |_, info| {
                                info.as_ref().is_some_and(|i| i.user_id == user_id)
                            });
                            if dropped.is_err() {
                                users.sessions.invalidate_all();
                            }
                        }
                        Err(error) => tracing::warn!(%error, "unreadable user note"),
                    },
                    Note::Resync => users.sessions.invalidate_all(),
                }
            },
        );
    }

    async fn status(&self, user_id: &str) -> Result<UserStatus, ApiError> {
        let query = UserQuery {
            user_id: user_id.to_string(),
        };
        self.client.call("/internal/user/status", &query).await
    }
}

#[async_trait]
impl SessionDirectory for RemoteUsers {
    async fn session(&self, session_id: &str) -> Result<Option<SessionInfo>, ApiError> {
        if let Some(known) = self.sessions.get(session_id) {
            return Ok(known);
        }
        let query = SessionQuery {
            session_id: session_id.to_string(),
        };
        let info: Option<SessionInfo> = self.client.call("/internal/user/session", &query).await?;
        self.sessions.insert(session_id.to_string(), info.clone());
        Ok(info)
    }
}

#[async_trait]
impl UserDirectory for RemoteUsers {
    async fn user_exists(&self, user_id: &str) -> Result<bool, ApiError> {
        Ok(self.status(user_id).await?.exists)
    }

    async fn user_active(&self, user_id: &str) -> Result<bool, ApiError> {
        Ok(self.status(user_id).await?.active)
    }

    async fn mail_user(
        &self,
        user_id: &str,
        mail: &skein_core::api::UserMail,
    ) -> Result<bool, ApiError> {
        let body = crate::http::internal::MailBody {
            user_id: user_id.to_string(),
            mail: mail.clone(),
        };
        self.client.call("/internal/user/mail", &body).await
    }
}

#[async_trait]
impl AuditLog for RemoteUsers {
    async fn record(&self, entry: AuditEntry) {
        if let Err(error) = self.client.notify("/internal/user/audit", &entry).await {
            // As in process: the action happened; a lost record is the operator's alarm.
            tracing::error!(%error, action = %entry.action, target = %entry.target, "could not write the audit log");
        }
    }
}

impl skein_core::runtime::Gauges for RemoteUsers {
    fn gauges(&self) -> Vec<(&'static str, u64)> {
        self.sessions.run_pending_tasks();
        vec![("user.remote_session_cache", self.sessions.entry_count())]
    }
}

/// How often a process without the User service reads the settings again, besides at once on
/// a settings note from the bus.
const SETTINGS_REFRESH: Duration = Duration::from_secs(30);

/// The system settings as a process without the User service sees them: the configuration
/// file's values until the User service first answers, then its values, read again every
/// 30 s and at once when any instance says they changed. Reading is a lock and a clone of an
/// `Arc`, as in the User service's own process.
pub struct RemoteSettings {
    client: InternalClient,
    current: std::sync::RwLock<std::sync::Arc<SystemSettings>>,
    background: skein_core::service::BackgroundTasks,
}

impl RemoteSettings {
    /// Settings read from the User service behind `client`, `defaults` until it answers.
    pub fn new(client: InternalClient, defaults: SystemSettings) -> Self {
        RemoteSettings {
            client,
            current: std::sync::RwLock::new(std::sync::Arc::new(defaults)),
            background: skein_core::service::BackgroundTasks::new(),
        }
    }

    /// Reads the settings in effect from the User service.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let settings: SystemSettings = self
            .client
            .call("/internal/user/settings", &serde_json::json!({}))
            .await?;
        let settings = std::sync::Arc::new(settings);
        match self.current.write() {
            Ok(mut current) => *current = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
        Ok(())
    }

    /// Reads the settings now and every 30 s after.
    pub fn start(self: &std::sync::Arc<Self>) {
        self.background.every(
            "user.remote.settings",
            SETTINGS_REFRESH,
            skein_core::service::FirstRun::Now,
            self,
            |settings| async move {
                if let Err(error) = settings.refresh().await {
                    tracing::warn!(error = %error.message(skein_core::i18n::Lang::En), "could not read the system settings from the User service");
                }
            },
        );
    }

    /// Joins the deployment's bus: a settings change on any instance is read at once.
    pub fn join_bus(self: &std::sync::Arc<Self>, bus: std::sync::Arc<dyn skein_core::bus::Bus>) {
        self.background.on_notes(
            "user.remote.settings_bus",
            &bus,
            skein_core::bus::SETTINGS_TOPIC,
            self,
            |settings, _note| async move {
                if let Err(error) = settings.refresh().await {
                    tracing::warn!(error = %error.message(skein_core::i18n::Lang::En), "could not read the system settings from the User service");
                }
            },
        );
    }
}

impl SettingsSource for RemoteSettings {
    fn current(&self) -> std::sync::Arc<SystemSettings> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
