//! Invite codes: users make their own within a limit; admins make batches.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{future_expiry, looks_like_id, ms_to_rfc3339, new_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::model::{InviteCode, InviteRow};
use crate::tokens::new_invite_code;
use crate::{UserService, store};

/// Someone the caller invited (no contact details).
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitee {
    /// Their id.
    pub id: String,
    /// Their shown name.
    pub display_name: String,
    /// RFC 3339.
    pub joined_at: String,
}

/// A batch of codes to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCodes {
    /// How many codes, 1–500 (default 1).
    pub count: Option<u32>,
    /// Uses of each code; 0 = unlimited (default 1).
    pub max_uses: Option<i64>,
    /// RFC 3339 expiry; omitted = never.
    pub expires_at: Option<String>,
    /// Free text for the admin list (≤ 200 characters).
    pub note: Option<String>,
}

/// A code's new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCode {
    /// Disabled codes cannot be used.
    pub disabled: bool,
}

/// The caller's own invite codes.
#[utoipa::path(get, path = "/user/invite-codes", tag = "invites", security(("bearer" = [])),
    responses((status = 200, body = Vec<InviteCode>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_own_codes(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<InviteCode>>> {
    let rows = store::invites_of(svc.db.pool(), &user.user_id).await?;
    Ok(ApiJson(rows.into_iter().map(InviteCode::from).collect()))
}

/// Make an invite code of one's own (up to the server's per-user limit).
#[utoipa::path(post, path = "/user/invite-codes", tag = "invites", security(("bearer" = [])),
    responses(
        (status = 201, body = InviteCode),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "Limit reached", body = ErrorEnvelope),
    ))]
pub async fn create_own_code(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<(StatusCode, ApiJson<InviteCode>)> {
    let registration = &svc.settings.registration;
    let limit = i64::from(registration.user_invite_code_limit);
    let mut tx = svc.db.begin_write().await?;
    if store::count_own_invites(&mut *tx, &user.user_id).await? >= limit {
        return Err(ApiError::conflict(
            "invite_code_limit",
            format!("You can create at most {limit} invite codes."),
            format!("每位用户最多可创建 {limit} 个邀请码。"),
        )
        .with_details(serde_json::json!({ "limit": limit })));
    }
    let row = InviteRow {
        id: new_id(),
        code: new_invite_code(),
        owner_id: user.user_id.clone(),
        by_admin: 0,
        max_uses: i64::from(registration.user_invite_code_max_uses),
        used_count: 0,
        expires_at: None,
        disabled: 0,
        note: None,
        created_at: now_ms(),
    };
    store::insert_invite(&mut *tx, &row).await?;
    tx.commit().await.map_err(skein_db::DbError::from)?;
    Ok((StatusCode::CREATED, ApiJson(row.into())))
}

/// The people the caller invited.
#[utoipa::path(get, path = "/user/invitees", tag = "invites", security(("bearer" = [])),
    responses((status = 200, body = Vec<Invitee>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_invitees(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<Invitee>>> {
    let rows = store::invitees_of(svc.db.pool(), &user.user_id).await?;
    Ok(ApiJson(
        rows.into_iter()
            .map(|r| Invitee {
                id: r.id,
                display_name: r.display_name,
                joined_at: ms_to_rfc3339(r.created_at),
            })
            .collect(),
    ))
}

/// Every invite code (admin).
#[utoipa::path(get, path = "/admin/invite-codes", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<InviteCode>), (status = 403, body = ErrorEnvelope)))]
pub async fn admin_list_codes(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<InviteCode>>> {
    let (rows, total) = store::list_invites(svc.db.pool(), page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(InviteCode::from).collect(),
        total,
        page,
    )))
}

/// Create a batch of invite codes (admin). They count as the admin's invitations.
#[utoipa::path(post, path = "/admin/invite-codes", tag = "admin", security(("bearer" = [])), request_body = CreateCodes,
    responses(
        (status = 201, body = Vec<InviteCode>),
        (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn admin_create_codes(
    State(svc): State<Arc<UserService>>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateCodes>,
) -> ApiResult<(StatusCode, ApiJson<Vec<InviteCode>>)> {
    let count = req.count.unwrap_or(1);
    if !(1..=500).contains(&count) {
        return Err(ApiError::invalid_field(
            "count",
            "count must be 1 to 500.",
            "数量必须为 1 到 500。",
        ));
    }
    let max_uses = req.max_uses.unwrap_or(1);
    if !(0..=1_000_000).contains(&max_uses) {
        return Err(ApiError::invalid_field(
            "max_uses",
            "max_uses must be 0 (unlimited) to 1000000.",
            "使用次数必须为 0（不限）到 1000000。",
        ));
    }
    let now = now_ms();
    let expires_at = future_expiry(req.expires_at.as_deref(), now)?;
    let note = req
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    if note.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "note",
            "The note is longer than 200 characters.",
            "备注超过 200 个字符。",
        ));
    }
    let mut created = Vec::with_capacity(count as usize);
    let mut tx = svc.db.begin_write().await?;
    for _ in 0..count {
        let row = InviteRow {
            id: new_id(),
            code: new_invite_code(),
            owner_id: admin.user_id.clone(),
            by_admin: 1,
            max_uses,
            used_count: 0,
            expires_at,
            disabled: 0,
            note: note.clone(),
            created_at: now,
        };
        store::insert_invite(&mut *tx, &row).await?;
        created.push(InviteCode::from(row));
    }
    tx.commit().await.map_err(skein_db::DbError::from)?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Enable or disable an invite code (admin).
#[utoipa::path(patch, path = "/admin/invite-codes/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "Invite code id")), request_body = UpdateCode,
    responses(
        (status = 200, body = InviteCode),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    ))]
pub async fn admin_update_code(
    State(svc): State<Arc<UserService>>,
    _admin: AdminUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateCode>,
) -> ApiResult<ApiJson<InviteCode>> {
    let not_found = || ApiError::not_found("Invite code", "邀请码");
    if !looks_like_id(&id) {
        return Err(not_found());
    }
    let row = store::set_invite_disabled(svc.db.pool(), &id, req.disabled)
        .await?
        .ok_or_else(not_found)?;
    Ok(ApiJson(row.into()))
}
