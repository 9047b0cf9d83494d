//! The signed-in user's own profile and password.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::errors;
use crate::model::Profile;
use crate::{UserService, store, validate};

/// Profile fields to change; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// 1–64 characters.
    pub display_name: Option<String>,
    /// An http(s) URL, or `null` to remove the avatar.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// `en` or `zh-CN`.
    pub language: Option<String>,
    /// `system`, `light` or `dark`.
    pub theme: Option<String>,
}

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password in use now (empty for an account made by a provider sign-in, which has none).
    pub current_password: String,
    /// The new password, 8–128 characters.
    pub new_password: String,
}

/// What a password change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// How many other sessions were signed out.
    pub revoked_sessions: u64,
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/user/profile", tag = "user", security(("bearer" = [])),
    responses(
        (status = 200, body = Profile),
        (status = 401, body = ErrorEnvelope),
    ))]
pub async fn get_profile(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Profile>> {
    Ok(ApiJson(svc.profile_of(&user.user_id).await?))
}

/// Change the display name, avatar, language or theme.
#[utoipa::path(patch, path = "/user/profile", tag = "user", security(("bearer" = [])), request_body = ProfileUpdate,
    responses(
        (status = 200, body = Profile),
        (status = 401, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn update_profile(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<ProfileUpdate>,
) -> ApiResult<ApiJson<Profile>> {
    let change = store::ProfileChange {
        display_name: req
            .display_name
            .as_deref()
            .map(validate::display_name)
            .transpose()?,
        avatar_url: match req.avatar_url {
            Some(Some(url)) => Some(Some(validate::avatar_url(&url)?)),
            Some(None) => Some(None),
            None => None,
        },
        language: req
            .language
            .as_deref()
            .map(validate::language)
            .transpose()?,
        theme: req.theme.as_deref().map(validate::theme).transpose()?,
    };
    store::update_profile(svc.db.pool(), &user.user_id, &change, now_ms()).await?;
    Ok(ApiJson(svc.profile_of(&user.user_id).await?))
}

/// Change the password. Every other session is signed out; this one stays.
#[utoipa::path(put, path = "/user/password", tag = "user", security(("bearer" = [])), request_body = PasswordChange,
    responses(
        (status = 200, body = PasswordChanged),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Current password wrong", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, description = "Too many password changes", body = ErrorEnvelope),
    ))]
pub async fn change_password(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<PasswordChange>,
) -> ApiResult<ApiJson<PasswordChanged>> {
    validate::password(&req.new_password, "new_password")?;
    // Each attempt runs argon2 twice (verify, then hash); its own strict budget keeps one
    // signed-in client from turning this route into a memory and CPU sink, or into an
    // unthrottled oracle for the current password.
    let quota = skein_core::limit::Quota {
        limit: svc.settings.limits.password_changes_per_user_per_hour,
        period: std::time::Duration::from_secs(3600),
    };
    match svc
        .limiter
        .check(&format!("password:user:{}", user.user_id), quota, 1)
        .await
    {
        Ok(decision) if !decision.allowed => {
            let wait = decision
                .retry_after
                .map_or(1, |d| d.as_secs_f64().ceil() as u64)
                .max(1);
            return Err(errors::password_change_limited(wait));
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "password limiter unavailable"),
    }
    let row = store::user_by_id(svc.db.pool(), &user.user_id)
        .await?
        .ok_or_else(ApiError::invalid_token)?;
    // An account made by a provider sign-in has no password anyone knows: its first one is set
    // without it (the session proves who this is, as it does for linking a provider).
    let has_password = store::oauth::password_login(svc.db.pool(), &user.user_id).await?;
    if has_password
        && !svc
            .passwords
            .verify(req.current_password, Some(row.password_hash))
            .await?
    {
        return Err(errors::password_change_wrong_current());
    }
    let revoked = svc
        .replace_password(
            &user.user_id,
            &req.new_password,
            Some(&user.session_id),
            "password_changed",
        )
        .await?;
    Ok(ApiJson(PasswordChanged {
        revoked_sessions: revoked,
    }))
}
