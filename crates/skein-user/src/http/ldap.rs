//! Sign-in with a company directory (`[ldap]`, or as Admin → Sign-in stored it): the directory checks the password, its groups
//! give the role, and the first sign-in creates the account (the directory is the gate, so the
//! registration mode does not apply). The account is linked by the person's DN as an identity
//! of provider `ldap`; its role follows the groups at every sign-in (root is never changed).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use skein_core::auth::Role;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{new_id, now_ms};
use skein_core::limit::Quota;
use skein_core::request::ClientIp;
use skein_core::{ApiError, ApiResult};
use skein_db::DbError;
use utoipa::ToSchema;

use crate::errors;
use crate::ldap::{self, DirectoryPerson, LdapError};
use crate::model::UserStatus;
use crate::store::oauth::{self as oauth_store, IdentityRow};
use crate::{UserService, conflict_or_internal, store};

/// The provider name LDAP identities are stored under.
const PROVIDER: &str = "ldap";

/// A directory login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapLoginRequest {
    /// What the person types at work: their uid or address (per `ldap.user_filter`).
    pub login: String,
    /// Their directory password.
    pub password: String,
}

/// Whether directory sign-in is on (public: the sign-in page asks).
#[derive(Debug, Serialize, ToSchema)]
pub struct LdapState {
    /// True when `[ldap]` names a server.
    pub enabled: bool,
}

/// Whether sign-in with the company directory is available.
#[utoipa::path(get, path = "/auth/ldap", tag = "auth", responses((status = 200, body = LdapState)))]
pub async fn ldap_state(State(svc): State<Arc<UserService>>) -> ApiJson<LdapState> {
    ApiJson(LdapState {
        enabled: svc.sign_in().ldap.enabled(),
    })
}

/// Sign in with the company directory. The first sign-in creates the account; members of
/// `ldap.admin_groups` are admins. With two-factor sign-in on, the answer is the challenge.
#[utoipa::path(post, path = "/auth/ldap/login", tag = "auth", request_body = LdapLoginRequest,
    responses(
        (status = 200, description = "Signed in (tokens), or the two-factor challenge", body = super::auth::LoginAnswer),
        (status = 401, description = "Wrong login or password (`invalid_credentials`)", body = ErrorEnvelope),
        (status = 403, description = "Not in an allowed group (`ldap_not_allowed`), or the account is disabled", body = ErrorEnvelope),
        (status = 429, description = "Too many failed sign-ins from this address", body = ErrorEnvelope),
        (status = 502, description = "The directory could not be reached (`ldap_unreachable`), or its TLS certificate is not trusted (`ldap_tls`)", body = ErrorEnvelope),
        (status = 503, description = "Directory sign-in is not configured (`[ldap]`)", body = ErrorEnvelope),
    ))]
pub async fn ldap_login(
    State(svc): State<Arc<UserService>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LdapLoginRequest>,
) -> ApiResult<Response> {
    let config = svc.sign_in().ldap.clone();
    if !config.enabled() {
        return Err(errors::ldap_unavailable());
    }
    // Failures count against the address like password sign-ins (the same budget), so the
    // directory is not a way around the lockout.
    let limits = &svc.settings.limits;
    let key = format!("login:ip:{}", skein_core::request::ip_bucket(ip));
    let quota = Quota {
        limit: limits.login_failures_per_ip,
        period: std::time::Duration::from_secs(limits.login_lockout_secs),
    };
    if let Ok(probe) = svc.limiter.check(&key, quota, 0).await
        && !probe.allowed
    {
        let wait = probe
            .retry_after
            .unwrap_or(std::time::Duration::from_secs(1));
        return Err(ApiError::too_many_requests(
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ));
    }
    let person = match ldap::authenticate(&config, &req.login, &req.password).await {
        Ok(person) => person,
        Err(LdapError::InvalidCredentials) => {
            let _ = svc.limiter.check(&key, quota, 1).await;
            tracing::warn!(client_ip = %ip, "LDAP sign-in refused: invalid credentials");
            return Err(errors::invalid_credentials());
        }
        Err(LdapError::NotAllowed) => {
            tracing::warn!(client_ip = %ip, "LDAP sign-in refused: not in an allowed group");
            return Err(errors::ldap_not_allowed());
        }
        Err(LdapError::Tls(error)) => {
            tracing::error!(%error, "TLS with the LDAP directory failed");
            return Err(errors::ldap_tls());
        }
        Err(LdapError::Unavailable(error)) => {
            tracing::error!(%error, "the LDAP directory is unavailable");
            return Err(errors::ldap_unreachable());
        }
    };
    let user = svc.directory_account(&person).await?;
    if user.status != UserStatus::Active {
        return Err(errors::account_disabled());
    }
    tracing::info!(user_id = %user.id, role = %user.role, "signed in with the company directory");
    if user.has_second_factor() {
        return svc.open_challenge(&user.id).await;
    }
    svc.finish_login(user, &headers, ip).await
}

impl UserService {
    /// The account of `person`: found by their linked DN (role brought in line with their
    /// groups), or created.
    async fn directory_account(
        &self,
        person: &DirectoryPerson,
    ) -> ApiResult<crate::model::UserRow> {
        let now = now_ms();
        if let Some(identity) = oauth_store::identity(self.db.pool(), PROVIDER, &person.dn).await? {
            oauth_store::touch_identity(self.db.pool(), &identity.id, now).await?;
            let row = self.user_row(&identity.user_id).await?;
            let wanted = person.role;
            // Root is the operator's; the directory never demotes it.
            if row.role != Role::Root && row.role != wanted {
                store::set_role_status(
                    self.db.pool(),
                    &row.id,
                    Some(wanted),
                    None,
                    Some(row.role),
                    now,
                )
                .await?;
                self.forget_user_sessions(&row.id);
                tracing::info!(user_id = %row.id, from = %row.role, to = %wanted, "role follows the directory's groups");
                return self.user_row(&row.id).await;
            }
            return Ok(row);
        }
        let id = new_id();
        // A password nobody knows: the directory checks passwords for this account.
        let hash = self.passwords.hash(crate::oauth::random_token()).await?;
        let email = person
            .email
            .as_deref()
            .and_then(|e| crate::validate::email(e).ok());
        let mut tx = self.db.begin_write().await?;
        // Keep the directory's username and address when nobody here has them; else leave
        // them out rather than fail (the person can still sign in).
        let username = person
            .username
            .as_deref()
            .and_then(|u| crate::validate::username(u).ok());
        let (email_taken, username_taken) =
            store::taken(&mut *tx, email.as_deref(), username.as_deref()).await?;
        let email = email.filter(|_| !email_taken);
        let username = username.filter(|_| !username_taken);
        let display_name = person
            .display_name
            .clone()
            .or_else(|| username.clone())
            .unwrap_or_else(|| "User".into());
        let display_name: String = display_name.chars().take(64).collect();
        let role = match person.role {
            Role::Admin => Role::Admin,
            _ => Role::User,
        };
        store::insert_user(
            &mut *tx,
            &store::NewUser {
                id: &id,
                username: username.as_deref(),
                email: email.as_deref(),
                password_hash: &hash,
                display_name: &display_name,
                language: "en",
                role,
                invited_by: None,
                now,
            },
        )
        .await
        .map_err(conflict_or_internal)?;
        oauth_store::mark_provider_account(&mut *tx, &id, email.as_ref().map(|_| now)).await?;
        oauth_store::insert_identity(
            &mut *tx,
            &IdentityRow {
                id: new_id(),
                user_id: id.clone(),
                provider: PROVIDER.into(),
                subject: person.dn.clone(),
                email: email.clone(),
                display_name: person.display_name.clone(),
                created_at: now,
                last_used_at: Some(now),
            },
        )
        .await
        .map_err(conflict_or_internal)?;
        tx.commit().await.map_err(DbError::from)?;
        tracing::info!(user_id = %id, role = role.as_str(), "account created by a directory sign-in");
        self.announce_registration(&id, None).await;
        self.user_row(&id).await
    }
}
