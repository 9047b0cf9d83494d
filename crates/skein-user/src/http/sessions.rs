//! The signed-in user's sessions (devices): list, revoke one, revoke all others.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{ms_to_rfc3339, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::UserService;
use crate::store::{self, accounts};

/// One signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// The browser or program, as its user agent said at sign-in.
    pub user_agent: Option<String>,
    /// The address it signed in from.
    pub ip: Option<String>,
    /// RFC 3339: when it signed in.
    pub created_at: String,
    /// RFC 3339: when it last renewed its tokens.
    pub last_seen_at: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// Active sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Most recently seen first.
    pub items: Vec<SessionView>,
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsRevoked {
    /// Count.
    pub revoked_sessions: u64,
}

/// The signed-in user's active sessions.
#[utoipa::path(get, path = "/user/sessions", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorEnvelope)))]
pub async fn list_sessions(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<SessionList>> {
    let rows = accounts::active_sessions(svc.db.pool(), &user.user_id, now_ms()).await?;
    let items = rows
        .into_iter()
        .map(|row| SessionView {
            current: row.id == user.session_id,
            id: row.id,
            user_agent: row.user_agent,
            ip: row.ip,
            created_at: ms_to_rfc3339(row.created_at),
            last_seen_at: ms_to_rfc3339(row.last_used_at),
        })
        .collect();
    Ok(ApiJson(SessionList { items }))
}

/// Sign out one of the signed-in user's sessions (its tokens stop working). Another user's
/// session id is 404, exactly like an unknown one.
#[utoipa::path(delete, path = "/user/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_session(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !accounts::revoke_own_session(svc.db.pool(), &user.user_id, &id, now_ms()).await? {
        return Err(ApiError::not_found("Session", "会话"));
    }
    svc.forget_session(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out every other session of the signed-in user; this one stays.
#[utoipa::path(post, path = "/user/sessions/revoke-others", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = SessionsRevoked), (status = 401, body = ErrorEnvelope)))]
pub async fn revoke_other_sessions(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<SessionsRevoked>> {
    let revoked = store::revoke_user_sessions(
        svc.db.pool(),
        &user.user_id,
        Some(&user.session_id),
        "revoked_by_user",
        now_ms(),
    )
    .await?;
    svc.forget_user_sessions(&user.user_id);
    Ok(ApiJson(SessionsRevoked {
        revoked_sessions: revoked,
    }))
}
