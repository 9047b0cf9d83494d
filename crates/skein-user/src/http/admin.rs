//! Admin user management: list, inspect, disable or enable, change role, reset password.
//!
//! An admin acts only on accounts ranked below them; only root changes roles. Nobody changes
//! their own role or status here, so the last root cannot lock themselves out.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::api::AuditBefore;
use skein_core::auth::{AdminUser, AuthUser, Role};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::errors;
use crate::model::{Profile, UserRow, UserStatus};
use crate::{UserService, store};

/// Filters of the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Part of a username, email or display name.
    pub q: Option<String>,
    /// `user`, `admin` or `root`.
    pub role: Option<String>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size, 1–100.
    pub per_page: Option<u32>,
}

/// Changes to an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// `active` or `disabled`. Disabling signs the user out everywhere.
    pub status: Option<String>,
    /// `user`, `admin` or `root` (root only).
    pub role: Option<String>,
}

/// A new password set by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// 8–128 characters.
    pub new_password: String,
}

/// What a reset did.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordResetDone {
    /// Sessions that were signed out.
    pub revoked_sessions: u64,
}

/// List users with search and pagination (admin).
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])), params(UserListQuery),
    responses((status = 200, body = Page<Profile>), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn list_users(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> ApiResult<ApiJson<Page<Profile>>> {
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    };
    let q = query.q.as_deref().unwrap_or("").trim();
    if q.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "q",
            "The search text is too long.",
            "搜索内容过长。",
        ));
    }
    let role = match query.role.as_deref().filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => Some(
            r.parse::<Role>()
                .map_err(|()| ApiError::invalid_field("role", "Unknown role.", "未知角色。"))?,
        ),
    };
    let status =
        match query.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(UserStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_field("status", "Unknown status.", "未知状态。")
            })?),
        };
    let filter = store::UserFilter { q, role, status };
    let (rows, total) =
        store::list_users(svc.db.pool(), &filter, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(Profile::from).collect(),
        total,
        page,
    )))
}

/// One user (admin).
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = Profile), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_user(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Profile>> {
    Ok(ApiJson(load(&svc, &id).await?.into()))
}

/// Disable, enable, or change the role of a user (admin; roles: root).
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = UserUpdate,
    responses(
        (status = 200, body = Profile),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn update_user(
    State(svc): State<Arc<UserService>>,
    AdminUser(actor): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UserUpdate>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<Profile>)> {
    let target = load(&svc, &id).await?;
    may_manage(&actor, &target)?;
    let before = AuditBefore::of(&svc.profile_of(&target.id).await?);
    let status = match req.status.as_deref() {
        None => None,
        Some(s) => Some(UserStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_field(
                "status",
                "status must be active or disabled.",
                "状态必须是 active 或 disabled。",
            )
        })?),
    };
    let role = match req.role.as_deref() {
        None => None,
        Some(r) => {
            let role = r.parse::<Role>().map_err(|()| {
                ApiError::invalid_field(
                    "role",
                    "role must be user, admin or root.",
                    "角色必须是 user、admin 或 root。",
                )
            })?;
            if actor.role != Role::Root {
                return Err(ApiError::forbidden());
            }
            Some(role)
        }
    };
    let now = now_ms();
    let mut tx = svc.db.begin_write().await?;
    if !store::set_role_status(&mut *tx, &target.id, role, status, Some(target.role), now).await? {
        return Err(ApiError::conflict(
            "user_changed",
            "This user's role changed meanwhile. Reload and try again.",
            "该用户的角色已被他人修改，请刷新后重试。",
        ));
    }
    if status == Some(UserStatus::Disabled) {
        store::revoke_user_sessions(&mut *tx, &target.id, None, "disabled", now).await?;
    }
    tx.commit().await.map_err(skein_db::DbError::from)?;
    svc.forget_user_sessions(&target.id);
    if status.is_some() {
        svc.announce_status_change(&target.id).await;
    }
    tracing::info!(actor = %actor.user_id, target = %target.id, ?role, ?status, "user updated by admin");
    Ok((
        Extension(before),
        ApiJson(svc.profile_of(&target.id).await?),
    ))
}

/// Set a new password for a user and sign them out everywhere (admin).
#[utoipa::path(post, path = "/admin/users/{id}/reset-password", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")), request_body = PasswordReset,
    responses(
        (status = 200, body = PasswordResetDone),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn reset_user_password(
    State(svc): State<Arc<UserService>>,
    AdminUser(actor): AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PasswordReset>,
) -> ApiResult<ApiJson<PasswordResetDone>> {
    let target = load(&svc, &id).await?;
    may_manage(&actor, &target)?;
    let revoked = svc
        .replace_password(&target.id, &req.new_password, None, "password_reset")
        .await?;
    tracing::info!(actor = %actor.user_id, target = %target.id, "password reset by admin");
    Ok(ApiJson(PasswordResetDone {
        revoked_sessions: revoked,
    }))
}

async fn load(svc: &UserService, id: &str) -> ApiResult<UserRow> {
    let not_found = || ApiError::not_found("User", "用户");
    if !looks_like_id(id) {
        return Err(not_found());
    }
    store::user_by_id(svc.db.pool(), id)
        .await?
        .ok_or_else(not_found)
}

fn may_manage(actor: &AuthUser, target: &UserRow) -> ApiResult<()> {
    if actor.user_id == target.id {
        return Err(errors::cannot_manage_self());
    }
    let target_role = target.role;
    if actor.role == Role::Root || actor.role > target_role {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}
