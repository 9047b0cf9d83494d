//! `/internal/user/*`: the User service's APIs over HTTP (`SessionDirectory`, `UserDirectory`,
//! `AuditLog`), for Skein processes that run other services apart from it. The binary serves
//! these only on the internal listener, behind the internal token.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use skein_core::ApiResult;
use skein_core::api::{
    AuditEntry, AuditLog, SessionDirectory, SessionInfo, SystemSettings, UserDirectory,
};
use skein_core::extract::ApiJson;

use crate::UserService;

/// Which session.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// The `sid` of an access token.
    pub session_id: String,
}

/// Which user.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// The user's id.
    pub user_id: String,
}

/// Whether a user exists and may act.
#[derive(Debug, Serialize, Deserialize)]
pub struct UserStatus {
    /// A user with this id exists.
    pub exists: bool,
    /// It exists and is not disabled.
    pub active: bool,
}

/// A service's mail to one user.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailBody {
    /// The user.
    pub user_id: String,
    /// What to send.
    pub mail: skein_core::api::UserMail,
}

pub(crate) fn routes(service: Arc<UserService>) -> Router {
    Router::new()
        .route("/internal/user/session", post(session))
        .route("/internal/user/status", post(status))
        .route("/internal/user/audit", post(audit))
        .route("/internal/user/settings", post(settings))
        .route("/internal/user/mail", post(mail_user))
        .with_state(service)
}

async fn session(
    State(svc): State<Arc<UserService>>,
    ApiJson(query): ApiJson<SessionQuery>,
) -> ApiResult<ApiJson<Option<SessionInfo>>> {
    Ok(ApiJson(svc.session(&query.session_id).await?))
}

async fn status(
    State(svc): State<Arc<UserService>>,
    ApiJson(query): ApiJson<UserQuery>,
) -> ApiResult<ApiJson<UserStatus>> {
    let active = svc.user_active(&query.user_id).await?;
    let exists = active || svc.user_exists(&query.user_id).await?;
    Ok(ApiJson(UserStatus { exists, active }))
}

async fn audit(
    State(svc): State<Arc<UserService>>,
    ApiJson(entry): ApiJson<AuditEntry>,
) -> StatusCode {
    svc.record(entry).await;
    StatusCode::NO_CONTENT
}

/// The system settings in effect, for services in processes without the User service.
async fn settings(State(svc): State<Arc<UserService>>) -> ApiJson<SystemSettings> {
    ApiJson((*svc.settings_source().current()).clone())
}

async fn mail_user(
    State(svc): State<Arc<UserService>>,
    ApiJson(body): ApiJson<MailBody>,
) -> ApiResult<ApiJson<bool>> {
    Ok(ApiJson(svc.mail_user(&body.user_id, &body.mail).await?))
}
