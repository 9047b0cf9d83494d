//! Model aliases and fallbacks (admin): list, set and remove a model's route. Every change
//! reloads the routing table here and on the other instances.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use skein_core::api::AuditBefore;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::model_routes::{self, MAX_FALLBACKS, ModelRoute, ModelRouteInput};

/// A model name as admins type it: trimmed, 1–128 characters.
fn model_name(field: &str, name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 128 || name.contains('\0') {
        return Err(ApiError::invalid_field(
            field,
            "Name the model (1–128 characters).",
            "请填写模型名称（1–128 个字符）。",
        ));
    }
    Ok(name.to_string())
}

/// A fallback list as admins wrote it, checked: at most [`MAX_FALLBACKS`] names, none twice,
/// neither the model nor its alias target.
fn fallback_list(
    field: &str,
    names: &[String],
    model: &str,
    alias_of: Option<&str>,
) -> ApiResult<Vec<String>> {
    if names.len() > MAX_FALLBACKS {
        return Err(ApiError::invalid_field(
            field,
            format!("List at most {MAX_FALLBACKS} fallback models."),
            format!("最多只能列出 {MAX_FALLBACKS} 个备用模型。"),
        ));
    }
    let mut list: Vec<String> = Vec::new();
    for name in names {
        let name = model_name(field, name)?;
        if name == model || Some(name.as_str()) == alias_of || list.contains(&name) {
            return Err(ApiError::invalid_field(
                field,
                format!("{name} is listed twice or is the model itself."),
                format!("{name} 重复出现，或就是该模型本身。"),
            ));
        }
        list.push(name);
    }
    Ok(list)
}

/// Every model's alias and fallbacks (admin).
#[utoipa::path(get, path = "/admin/model-routes", tag = "pricing", security(("bearer" = [])),
    responses((status = 200, body = Vec<ModelRoute>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_routes(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<ModelRoute>>> {
    Ok(ApiJson(model_routes::all(&svc.db).await?))
}

/// Set a model's alias (`alias_of`: serve it as that model, at that model's price) and its
/// fallbacks (models tried in order, each at its own price, when every channel of the model
/// failed), for every group or per group (`group_fallbacks`: a group's list replaces
/// `fallbacks` for its keys; an empty list turns fallbacks off for it) (admin).
#[utoipa::path(put, path = "/admin/model-routes/{model}", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path, description = "The public model name")), request_body = ModelRouteInput,
    responses((status = 200, body = ModelRoute), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_route(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(model): Path<String>,
    ApiJson(input): ApiJson<ModelRouteInput>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<ModelRoute>)> {
    let model = model_name("model", &model)?;
    let stored = model_routes::all(&svc.db).await?;
    let alias_of = match input.alias_of.as_deref() {
        None => None,
        Some(target) => {
            let target = model_name("alias_of", target)?;
            if target == model {
                return Err(ApiError::invalid_field(
                    "alias_of",
                    "A model cannot be an alias of itself.",
                    "模型不能是自身的别名。",
                ));
            }
            // One hop only: a chain could loop, and one hop is what routing resolves.
            if stored
                .iter()
                .any(|r| r.model == target && r.alias_of.is_some())
            {
                return Err(ApiError::invalid_field(
                    "alias_of",
                    format!("{target} is itself an alias; point to the model it serves as."),
                    format!("{target} 本身就是别名，请指向它实际对应的模型。"),
                ));
            }
            if let Some(other) = stored
                .iter()
                .find(|r| r.alias_of.as_deref() == Some(model.as_str()))
            {
                return Err(ApiError::invalid_field(
                    "alias_of",
                    format!(
                        "{} is an alias of {model}, so {model} cannot be an alias itself.",
                        other.model
                    ),
                    format!(
                        "{} 是 {model} 的别名，因此 {model} 本身不能再作为别名。",
                        other.model
                    ),
                ));
            }
            Some(target)
        }
    };
    let fallbacks = fallback_list("fallbacks", &input.fallbacks, &model, alias_of.as_deref())?;
    let mut group_fallbacks = BTreeMap::new();
    for (group, list) in &input.group_fallbacks {
        if !svc.groups().contains(group) {
            return Err(ApiError::invalid_field(
                "group_fallbacks",
                format!(
                    "{group} is not a group; groups are: {}.",
                    svc.groups().join(", ")
                ),
                format!("{group} 不是分组；可用分组：{}。", svc.groups().join("、")),
            ));
        }
        let list = fallback_list("group_fallbacks", list, &model, alias_of.as_deref())?;
        group_fallbacks.insert(group.clone(), list);
    }
    if alias_of.is_none()
        && fallbacks.is_empty()
        && group_fallbacks.is_empty()
        && input.strategy.is_none()
    {
        return Err(ApiError::invalid_field(
            "alias_of",
            "Set alias_of, fallbacks (for all or per group), a strategy, or several (to remove the route, delete it).",
            "请设置 alias_of、fallbacks（全部分组或按分组）、strategy 或其中几项（要移除路由请删除它）。",
        ));
    }
    let before = AuditBefore::of(&stored.iter().find(|r| r.model == model));
    let fields = model_routes::RouteFields {
        alias_of: alias_of.as_deref(),
        fallbacks: &fallbacks,
        group_fallbacks: &group_fallbacks,
        strategy: input.strategy,
    };
    model_routes::upsert(&svc.db, &model, fields, now_ms()).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, %model, ?alias_of, ?fallbacks, ?group_fallbacks, strategy = ?input.strategy, "model route set");
    let route = model_routes::all(&svc.db)
        .await?
        .into_iter()
        .find(|r| r.model == model)
        .ok_or_else(|| ApiError::internal("model route vanished"))?;
    Ok((Extension(before), ApiJson(route)))
}

/// Remove a model's alias and fallbacks (admin).
#[utoipa::path(delete, path = "/admin/model-routes/{model}", tag = "pricing", security(("bearer" = [])),
    params(("model" = String, Path, description = "The public model name")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_route(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
    Path(model): Path<String>,
) -> ApiResult<(Extension<AuditBefore>, StatusCode)> {
    let stored = model_routes::all(&svc.db).await?;
    let before = AuditBefore::of(&stored.iter().find(|r| r.model == model));
    if !model_routes::delete(&svc.db, &model).await? {
        return Err(ApiError::not_found("Model route", "模型路由"));
    }
    svc.routing_changed().await?;
    Ok((Extension(before), StatusCode::NO_CONTENT))
}
