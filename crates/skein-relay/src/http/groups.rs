//! Which price groups a user may put keys in: `GET /relay/groups` for the caller (the key
//! form's choices), and `GET`/`PUT /admin/relay/users/{user_id}/groups` for admins to grant.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::api::AuditBefore;
use skein_core::auth::{AdminUser, AuthUser};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{looks_like_id, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::{RelayService, groups};

/// A group the caller may put keys in, with what it costs.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedGroup {
    /// The group, as named in `relay.groups`.
    pub group: String,
    /// Price multiplier in per-mille: 1000 = ×1.0.
    pub multiplier_permille: i64,
}

/// A user's granted groups, as an admin sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserGroups {
    /// The user.
    pub user_id: String,
    /// Groups the user may put keys in now, in configuration order.
    pub groups: Vec<String>,
    /// Whether these are `relay.default_user_groups` (no list set for this user).
    pub is_default: bool,
    /// Every configured group, to choose from.
    pub available: Vec<String>,
}

/// A user's new groups.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetUserGroups {
    /// Groups from `relay.groups`; `[]` grants none; `null` returns the user to the default.
    pub groups: Option<Vec<String>>,
}

/// The price groups the caller may put API keys in, with their multipliers.
#[utoipa::path(get, path = "/relay/groups", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<AllowedGroup>), (status = 401, body = ErrorEnvelope)))]
pub async fn my_groups(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<AllowedGroup>>> {
    let allowed = svc.allowed_groups(&user.user_id).await?;
    Ok(ApiJson(
        allowed
            .iter()
            .map(|group| AllowedGroup {
                multiplier_permille: svc.multiplier(group),
                group: group.clone(),
            })
            .collect(),
    ))
}

/// The price groups a user may put API keys in (admin).
#[utoipa::path(get, path = "/admin/relay/users/{user_id}/groups", tag = "keys", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "User id")),
    responses((status = 200, body = UserGroups), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn user_groups(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(user_id): Path<String>,
) -> ApiResult<ApiJson<UserGroups>> {
    existing(&svc, &user_id).await?;
    Ok(ApiJson(view(&svc, user_id).await?))
}

/// Set the price groups a user may put API keys in (admin). Keys the user already has in a
/// group taken away stop working (403 `group_not_allowed`) until moved or the group is given
/// back; on other instances within 10 s.
#[utoipa::path(put, path = "/admin/relay/users/{user_id}/groups", tag = "keys", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "User id")), request_body = SetUserGroups,
    responses((status = 200, body = UserGroups), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_user_groups(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(user_id): Path<String>,
    ApiJson(body): ApiJson<SetUserGroups>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<UserGroups>)> {
    existing(&svc, &user_id).await?;
    let before = AuditBefore::of(&view(&svc, user_id.clone()).await?);
    let list = match body.groups {
        Some(list) => {
            if let Some(unknown) = list.iter().find(|g| !svc.groups().contains(g)) {
                return Err(ApiError::invalid_field(
                    "groups",
                    format!(
                        "Unknown group {unknown:?}. Configured: {}.",
                        svc.groups().join(", ")
                    ),
                    format!(
                        "未知分组 {unknown:?}。已配置的分组：{}。",
                        svc.groups().join("、")
                    ),
                ));
            }
            // Stored in configuration order, once each.
            Some(groups::effective(svc.groups(), Some(&list), &[]))
        }
        None => None,
    };
    groups::set(&svc.db, &user_id, list.as_deref(), now_ms()).await?;
    svc.forget_groups(&user_id);
    tracing::info!(actor = %admin.user_id, %user_id, groups = ?list, "user key groups set");
    Ok((Extension(before), ApiJson(view(&svc, user_id).await?)))
}

/// 404 unless the user exists (asked of the User service, whose table this is).
async fn existing(svc: &RelayService, user_id: &str) -> ApiResult<()> {
    if looks_like_id(user_id) && svc.users.user_exists(user_id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("User", "用户"))
    }
}

async fn view(svc: &RelayService, user_id: String) -> ApiResult<UserGroups> {
    let stored = groups::stored(&svc.db, &user_id).await?;
    Ok(UserGroups {
        groups: groups::effective(svc.groups(), stored.as_deref(), &svc.policy.default_groups),
        is_default: stored.is_none(),
        available: svc.groups().to_vec(),
        user_id,
    })
}
