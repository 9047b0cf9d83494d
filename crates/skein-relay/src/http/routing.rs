//! Routing strategies per group (admin): how a group's requests choose among a model's
//! channels — by priority and weight, lowest latency, fewest errors, lowest upstream cost,
//! most upstream balance or all of them balanced — how often they explore, and whether a
//! conversation or key keeps its channel. Every change reloads the routing
//! table here and on the other instances.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::api::AuditBefore;
use skein_core::auth::AdminUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::{ms_to_rfc3339, now_ms};
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use crate::RelayService;
use crate::routing::{self, Policy, Strategy};

/// The most a group may explore: beyond half, the strategy would no longer decide.
const MAX_EXPLORE_PERCENT: i64 = 50;

/// A group's routing, as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRouting {
    /// The group, as named in `relay.groups`.
    pub group: String,
    /// How its requests choose among a model's channels.
    pub strategy: Strategy,
    /// The percentage of a route's requests that try another channel first (measured
    /// strategies only), so a channel that recovered is measured again.
    pub explore_percent: i64,
    /// The same conversation (Chat) or API key goes to the same channel among those the
    /// strategy finds equal, while it is healthy, so the vendor's prompt cache keeps hitting.
    pub sticky: bool,
    /// RFC 3339; `None` for a group never set (it routes by priority).
    pub updated_at: Option<String>,
}

/// A group's new routing.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRouting {
    /// `priority` (highest priority, weighted round-robin inside it), `latency` (lowest
    /// measured latency to the first byte), `errors` (lowest measured error rate), `cost`
    /// (lowest `cost_ratio_permille`), `balance` (most remaining upstream balance) or
    /// `balanced` (latency, errors and cost in one score, the better of two random picks).
    pub strategy: Strategy,
    /// 0–50 (default 5): the percentage of requests that explore another channel.
    pub explore_percent: Option<i64>,
    /// Keep each conversation or key on one channel (default false).
    pub sticky: Option<bool>,
}

fn view(group: &str, stored: Option<&(Policy, i64)>) -> GroupRouting {
    let (policy, at) = match stored {
        Some((policy, at)) => (*policy, Some(ms_to_rfc3339(*at))),
        None => (Policy::default(), None),
    };
    GroupRouting {
        group: group.to_string(),
        strategy: policy.strategy,
        explore_percent: policy.explore_percent,
        sticky: policy.sticky,
        updated_at: at,
    }
}

/// Every configured group's routing strategy (admin).
#[utoipa::path(get, path = "/admin/routing", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = Vec<GroupRouting>), (status = 403, body = ErrorEnvelope)))]
pub async fn list_routing(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<Vec<GroupRouting>>> {
    let stored = routing::all(&svc.db).await?;
    Ok(ApiJson(
        svc.groups()
            .iter()
            .map(|group| view(group, stored.get(group)))
            .collect(),
    ))
}

/// Set how a group's requests choose among a model's channels (admin). Strategies other
/// than `priority` order every channel of a model by their score; channels that tie keep
/// the priority and weight order; open circuit breakers still keep a channel out.
#[utoipa::path(put, path = "/admin/routing/{group}", tag = "channels", security(("bearer" = [])),
    params(("group" = String, Path, description = "A group from relay.groups")), request_body = SetRouting,
    responses((status = 200, body = GroupRouting), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_routing(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<SetRouting>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<GroupRouting>)> {
    if !svc.groups().contains(&group) {
        return Err(ApiError::not_found("Group", "分组"));
    }
    let explore_percent = body
        .explore_percent
        .unwrap_or(routing::DEFAULT_EXPLORE_PERCENT);
    if !(0..=MAX_EXPLORE_PERCENT).contains(&explore_percent) {
        return Err(ApiError::invalid_field(
            "explore_percent",
            format!("explore_percent must be 0 to {MAX_EXPLORE_PERCENT}."),
            format!("explore_percent 必须在 0 到 {MAX_EXPLORE_PERCENT} 之间。"),
        ));
    }
    let stored = routing::all(&svc.db).await?;
    let before = AuditBefore::of(&view(&group, stored.get(&group)));
    let policy = Policy {
        strategy: body.strategy,
        explore_percent,
        sticky: body.sticky.unwrap_or(false),
    };
    let now = now_ms();
    routing::set(&svc.db, &group, policy, now).await?;
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, %group, strategy = policy.strategy.as_str(), explore_percent, sticky = policy.sticky, "routing strategy set");
    Ok((
        Extension(before),
        ApiJson(view(&group, Some(&(policy, now)))),
    ))
}

/// The relay's channels, prices, model routes and routing strategies as a TOML document
/// (admin). Keys and header values are never in it: each channel names the environment
/// variables (`keys_env`, `headers_env`) that hold them where the file is applied.
#[utoipa::path(get, path = "/admin/channels/export", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = String, content_type = "application/toml"), (status = 403, body = ErrorEnvelope)))]
pub async fn export_channels(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    let text = crate::declared::to_toml(&crate::declared::export(&svc).await?)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/toml")],
        text,
    ))
}

/// A channels document to apply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyChannels {
    /// The TOML document (as `GET /admin/channels/export` writes it). Environment variables
    /// it names are read from the server's environment.
    pub document: String,
    /// Only answer the plan; write nothing (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// Remove channels, prices and routes the document leaves out (default false: kept).
    #[serde(default)]
    pub prune: bool,
}

/// Apply a channels document (admin): channels matched by name are created or updated
/// field by field, prices, routes and routing strategies set; what already matches is left
/// alone, so applying twice changes nothing the second time. Answers the plan.
#[utoipa::path(post, path = "/admin/channels/apply", tag = "channels", security(("bearer" = [])),
    request_body = ApplyChannels,
    responses((status = 200, body = crate::declared::Plan), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn apply_channels(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    ApiJson(body): ApiJson<ApplyChannels>,
) -> ApiResult<ApiJson<crate::declared::Plan>> {
    let declared = crate::declared::from_toml(&body.document)?;
    declared.only_variables_named(&svc.tuning.channels_env_prefix)?;
    let env = |name: &str| std::env::var(name).ok();
    let plan = crate::declared::apply(&svc, &declared, &env, body.dry_run, body.prune).await?;
    tracing::info!(actor = %admin.user_id, dry_run = body.dry_run, changes = plan.changes.len(), "channels document applied");
    Ok(ApiJson(plan))
}

/// The channels file kept applied (`relay.channels_file`), as this instance last saw it:
/// when it was read and applied, what that changed, and why its current content was refused
/// (admin). `path` is `null` when no file is set.
#[utoipa::path(get, path = "/admin/channels/file", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = crate::channels_file::FileStatus), (status = 403, body = ErrorEnvelope)))]
pub async fn channels_file(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiJson<crate::channels_file::FileStatus> {
    ApiJson(crate::channels_file::status(
        &svc,
        svc.tuning.channels_file.as_ref(),
    ))
}

/// A group's response-cache settings, as admins see them.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCache {
    /// The group, as named in `relay.groups`.
    pub group: String,
    /// Its settings (caching off when never set).
    #[serde(flatten)]
    pub policy: crate::cache::CachePolicy,
    /// RFC 3339; `None` for a group never set.
    pub updated_at: Option<String>,
}

/// The response cache: each group's settings and how many answers are kept (admin).
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheView {
    /// Answers kept now, all groups together, on this instance.
    pub entries: u64,
    /// Each configured group's settings.
    pub groups: Vec<GroupCache>,
}

/// Every group's response-cache settings (admin).
#[utoipa::path(get, path = "/admin/cache", tag = "channels", security(("bearer" = [])),
    responses((status = 200, body = CacheView), (status = 403, body = ErrorEnvelope)))]
pub async fn list_cache(
    State(svc): State<Arc<RelayService>>,
    _admin: AdminUser,
) -> ApiResult<ApiJson<CacheView>> {
    let stored = crate::cache::all(&svc.db).await?;
    Ok(ApiJson(CacheView {
        entries: svc.response_cache.len(),
        groups: svc
            .groups()
            .iter()
            .map(|group| GroupCache {
                group: group.clone(),
                policy: stored.get(group).map(|(p, _)| *p).unwrap_or_default(),
                updated_at: stored.get(group).map(|(_, at)| ms_to_rfc3339(*at)),
            })
            .collect(),
    }))
}

/// Set a group's response cache (admin): whole chat completions with `temperature: 0` or a
/// `seed` are answered from the cache for `ttl_secs`, per user unless `share_across_users`,
/// billed at `price_percent` of their price (0: free). Turning it off or changing it drops
/// every kept answer, on every instance (they hear of the change over the bus).
#[utoipa::path(put, path = "/admin/cache/{group}", tag = "channels", security(("bearer" = [])),
    params(("group" = String, Path, description = "A group from relay.groups")), request_body = crate::cache::CachePolicy,
    responses((status = 200, body = GroupCache), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_cache(
    State(svc): State<Arc<RelayService>>,
    AdminUser(admin): AdminUser,
    Path(group): Path<String>,
    ApiJson(policy): ApiJson<crate::cache::CachePolicy>,
) -> ApiResult<(Extension<AuditBefore>, ApiJson<GroupCache>)> {
    if !svc.groups().contains(&group) {
        return Err(ApiError::not_found("Group", "分组"));
    }
    if !(1..=crate::cache::MAX_TTL_SECS).contains(&policy.ttl_secs) {
        return Err(ApiError::invalid_field(
            "ttl_secs",
            format!("ttl_secs must be 1 to {}.", crate::cache::MAX_TTL_SECS),
            format!("ttl_secs 必须在 1 到 {} 之间。", crate::cache::MAX_TTL_SECS),
        ));
    }
    if !(0..=100).contains(&policy.price_percent) {
        return Err(ApiError::invalid_field(
            "price_percent",
            "price_percent must be 0 (free) to 100 (full price).",
            "price_percent 必须在 0（免费）到 100（全价）之间。",
        ));
    }
    let stored = crate::cache::all(&svc.db).await?;
    let before = AuditBefore::of(&stored.get(&group).map(|(p, _)| *p));
    let now = now_ms();
    crate::cache::set(&svc.db, &group, &policy, now).await?;
    // A group that stops sharing must not serve what another user's request stored.
    svc.response_cache.clear();
    svc.routing_changed().await?;
    tracing::info!(actor = %admin.user_id, %group, ?policy, "response cache set");
    Ok((
        Extension(before),
        ApiJson(GroupCache {
            group,
            policy,
            updated_at: Some(ms_to_rfc3339(now)),
        }),
    ))
}
