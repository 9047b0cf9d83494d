//! `/api/v1/keys`: a user's own API keys. Another user's key id answers 404.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::ids::{looks_like_id, new_id, now_ms};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::RelayService;
use crate::errors;
use crate::keys::{self, ApiKey, KeySettings, KeyStatus, MAX_LIST};

/// Most live keys one user may hold.
const MAX_KEYS: i64 = 100;

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Label, 1–64 characters.
    pub name: String,
    /// RFC 3339 expiry; omitted = never.
    pub expires_at: Option<String>,
    /// Quota the key may spend in all; omitted = unlimited.
    pub quota_limit: Option<i64>,
    /// Models the key may use; omitted = any.
    pub allowed_models: Option<Vec<String>>,
    /// Addresses or CIDR ranges the key works from; omitted = any.
    pub allowed_ips: Option<Vec<String>>,
    /// Price group, one of the caller's granted groups (`GET /relay/groups`); omitted = the
    /// first of them.
    pub group: Option<String>,
    /// Requests per minute; omitted = server default. Above the server's per-key maximum it
    /// is clamped to that maximum.
    pub rpm_limit: Option<i64>,
    /// Tokens per minute; omitted = none (or the server's ceiling, when one is set). Above
    /// the ceiling it is clamped to it.
    pub tpm_limit: Option<i64>,
}

/// Changes to a key; omitted fields stay, `null` clears a limit or list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Label.
    pub name: Option<String>,
    /// `active` or `disabled`.
    pub status: Option<String>,
    /// RFC 3339 expiry, or `null` for never.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<String>>,
    /// Quota limit, or `null` for unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub quota_limit: Option<Option<i64>>,
    /// Model allowlist, or `null` for any.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_models: Option<Option<Vec<String>>>,
    /// Address allowlist, or `null` for any.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_ips: Option<Option<Vec<String>>>,
    /// Price group, one of the caller's granted groups.
    pub group: Option<String>,
    /// Requests per minute (clamped to the server's maximum), or `null` for the default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub rpm_limit: Option<Option<i64>>,
    /// Tokens per minute (clamped to the server's ceiling), or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub tpm_limit: Option<Option<i64>>,
}

/// Tells a field set to `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The caller's API keys.
#[utoipa::path(get, path = "/keys", tag = "keys", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<ApiKey>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_keys(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<ApiKey>>> {
    let (rows, total) = keys::list(&svc.db, &user.user_id, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(|row| view(&svc, row)).collect(),
        total,
        page,
    )))
}

/// Create an API key. The answer's `key` is the only time the secret is shown. The group must
/// be one the caller was granted (403 `group_not_allowed`); rpm/tpm limits above the server's
/// maxima are clamped to them.
#[utoipa::path(post, path = "/keys", tag = "keys", security(("bearer" = [])), request_body = CreateKey,
    responses(
        (status = 201, body = ApiKey),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "The group was not granted to the caller", body = ErrorEnvelope),
        (status = 409, description = "Too many keys", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn create_key(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, ApiJson<ApiKey>)> {
    let now = now_ms();
    let group = match req.group.as_deref() {
        Some(raw) => group(&svc, &user.user_id, raw).await?,
        None => svc
            .allowed_groups(&user.user_id)
            .await?
            .first()
            .cloned()
            .ok_or_else(|| errors::group_not_allowed("", &[]))?,
    };
    let settings = KeySettings {
        name: name(&req.name)?,
        status: KeyStatus::Active,
        expires_at: expiry(req.expires_at.as_deref(), now)?,
        quota_limit: non_negative("quota_limit", req.quota_limit)?,
        allowed_models: models(req.allowed_models)?,
        allowed_ips: nets(req.allowed_ips)?,
        group,
        rpm_limit: rpm(&svc, req.rpm_limit)?,
        tpm_limit: tpm(&svc, req.tpm_limit)?,
    };
    if keys::count(&svc.db, &user.user_id).await? >= MAX_KEYS {
        return Err(ApiError::conflict(
            "key_limit",
            format!("You can hold at most {MAX_KEYS} API keys. Delete one first."),
            format!("每位用户最多持有 {MAX_KEYS} 个 API 密钥，请先删除一个。"),
        ));
    }
    let id = new_id();
    let secret = keys::new_secret();
    keys::insert(&svc.db, &id, &user.user_id, &secret, &settings, now).await?;
    let row = keys::by_id(&svc.db, &user.user_id, &id)
        .await?
        .ok_or_else(|| ApiError::internal("new key vanished"))?;
    let mut key = view(&svc, row);
    key.key = Some(secret);
    tracing::info!(user_id = %user.user_id, key_id = %id, "API key created");
    Ok((StatusCode::CREATED, ApiJson(key)))
}

/// One of the caller's API keys.
#[utoipa::path(get, path = "/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_key(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<ApiKey>> {
    Ok(ApiJson(view(&svc, load(&svc, &user, &id).await?)))
}

/// Change, disable or re-enable one of the caller's API keys. A `group` given must be one the
/// caller was granted (403 `group_not_allowed`); limits are clamped as on creation.
#[utoipa::path(patch, path = "/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")), request_body = UpdateKey,
    responses(
        (status = 200, body = ApiKey),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "The group was not granted to the caller", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
pub async fn update_key(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateKey>,
) -> ApiResult<ApiJson<ApiKey>> {
    let row = load(&svc, &user, &id).await?;
    let now = now_ms();
    let mut s = KeySettings::of(&row);
    if let Some(n) = &req.name {
        s.name = name(n)?;
    }
    if let Some(status) = &req.status {
        s.status = match KeyStatus::parse(status) {
            Some(status) => status,
            _ => {
                return Err(ApiError::invalid_field(
                    "status",
                    "status must be active or disabled.",
                    "状态必须是 active 或 disabled。",
                ));
            }
        };
    }
    if let Some(at) = &req.expires_at {
        s.expires_at = expiry(at.as_deref(), now)?;
    }
    if let Some(limit) = req.quota_limit {
        s.quota_limit = non_negative("quota_limit", limit)?;
    }
    if let Some(list) = req.allowed_models {
        s.allowed_models = models(list)?;
    }
    if let Some(list) = req.allowed_ips {
        s.allowed_ips = nets(list)?;
    }
    if let Some(g) = &req.group {
        s.group = group(&svc, &user.user_id, g).await?;
    }
    if let Some(v) = req.rpm_limit {
        s.rpm_limit = rpm(&svc, v)?;
    }
    if let Some(v) = req.tpm_limit {
        s.tpm_limit = tpm(&svc, v)?;
    }
    keys::update(&svc.db, &row.id, &user.user_id, &s, now).await?;
    forget(&svc, &row.id).await?;
    Ok(ApiJson(view(&svc, load(&svc, &user, &id).await?)))
}

/// Revoke one of the caller's API keys for good.
#[utoipa::path(delete, path = "/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_key(
    State(svc): State<Arc<RelayService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let row = load(&svc, &user, &id).await?;
    keys::delete(&svc.db, &row.id, &user.user_id, now_ms()).await?;
    forget(&svc, &row.id).await?;
    tracing::info!(user_id = %user.user_id, key_id = %row.id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A key as its owner sees it, with the limits that apply now: a key stored before a ceiling
/// was lowered shows the ceiling, as the gateway enforces it.
fn view(svc: &RelayService, row: keys::KeyRow) -> ApiKey {
    let mut key = ApiKey::from(row);
    key.rpm_limit = crate::groups::clamp(key.rpm_limit, Some(svc.policy.max_rpm));
    key.tpm_limit = crate::groups::clamp(key.tpm_limit, svc.policy.max_tpm);
    key
}

async fn forget(svc: &RelayService, id: &str) -> ApiResult<()> {
    if let Some(hash) = keys::hash_of(&svc.db, id).await? {
        svc.forget_key(&hash);
    }
    Ok(())
}

async fn load(svc: &RelayService, user: &AuthUser, id: &str) -> ApiResult<keys::KeyRow> {
    let not_found = || ApiError::not_found("API key", "API 密钥");
    if !looks_like_id(id) {
        return Err(not_found());
    }
    keys::by_id(&svc.db, &user.user_id, id)
        .await?
        .ok_or_else(not_found)
}

fn name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    let count = name.chars().count();
    if !(1..=64).contains(&count) || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            "name",
            "Name the key (1–64 characters).",
            "请为密钥命名（1–64 个字符）。",
        ));
    }
    Ok(name.to_string())
}

fn expiry(raw: Option<&str>, now: i64) -> ApiResult<Option<i64>> {
    skein_core::ids::future_expiry(raw, now)
}

fn non_negative(field: &str, value: Option<i64>) -> ApiResult<Option<i64>> {
    match value {
        Some(v) if v < 0 => Err(ApiError::invalid_field(
            field,
            format!("{field} cannot be negative."),
            format!("{field} 不能为负数。"),
        )),
        other => Ok(other),
    }
}

fn positive(field: &str, value: Option<i64>) -> ApiResult<Option<i64>> {
    match value {
        Some(v) if !(1..=i64::from(u32::MAX)).contains(&v) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be a positive number."),
            format!("{field} 必须为正数。"),
        )),
        other => Ok(other),
    }
}

fn models(list: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    let Some(list) = list else { return Ok(None) };
    if list.len() > MAX_LIST || list.iter().any(|m| m.trim().is_empty() || m.len() > 128) {
        return Err(ApiError::invalid_field(
            "allowed_models",
            format!("List at most {MAX_LIST} model names of 1–128 characters."),
            format!("最多列出 {MAX_LIST} 个模型名称，每个 1–128 个字符。"),
        ));
    }
    let mut list: Vec<String> = list.into_iter().map(|m| m.trim().to_string()).collect();
    list.dedup();
    Ok(Some(list))
}

fn nets(list: Option<Vec<String>>) -> ApiResult<Option<Vec<ipnet::IpNet>>> {
    let Some(list) = list else { return Ok(None) };
    if list.len() > MAX_LIST {
        return Err(ApiError::invalid_field(
            "allowed_ips",
            "Too many address ranges.",
            "地址范围过多。",
        ));
    }
    list.iter()
        .map(|text| {
            keys::parse_net(text).ok_or_else(|| {
                ApiError::invalid_field(
                    "allowed_ips",
                    format!("{text:?} is not an IP address or CIDR range."),
                    format!("{text:?} 不是 IP 地址或 CIDR 网段。"),
                )
            })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

/// A configured group the user was granted: an unknown name is 422, a known one not granted
/// is 403 (groups carry price multipliers, so they are given, not chosen).
async fn group(svc: &RelayService, user_id: &str, raw: &str) -> ApiResult<String> {
    if !svc.groups.iter().any(|g| g == raw) {
        let allowed = svc.allowed_groups(user_id).await?;
        return Err(ApiError::invalid_field(
            "group",
            format!("Unknown group. Yours: {}.", allowed.join(", ")),
            format!("未知分组。你可用的分组：{}。", allowed.join("、")),
        ));
    }
    svc.check_group(user_id, raw).await?;
    Ok(raw.to_string())
}

/// A key's requests per minute, at most the server's per-key maximum.
fn rpm(svc: &RelayService, value: Option<i64>) -> ApiResult<Option<i64>> {
    Ok(crate::groups::clamp(
        positive("rpm_limit", value)?,
        Some(svc.policy.max_rpm),
    ))
}

/// A key's tokens per minute, at most the server's ceiling when one is set.
fn tpm(svc: &RelayService, value: Option<i64>) -> ApiResult<Option<i64>> {
    Ok(crate::groups::clamp(
        positive("tpm_limit", value)?,
        svc.policy.max_tpm,
    ))
}
