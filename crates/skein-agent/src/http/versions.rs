//! Versions: publishing the draft makes an immutable version; a rollback publishes an old
//! version again under a new number; two versions compare field by field, with a line diff
//! of the prompt.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::{IntoParams, ToSchema};

use crate::diff::{self, DiffLine, FieldChange};
use crate::spec::{AgentSpec, check_changelog};
use crate::store::{self, Publish, VersionRow};
use crate::{AgentService, parse_spec};

/// A published version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// The assistant.
    pub agent_id: String,
    /// Its number, from 1.
    pub version: i64,
    /// What changed.
    pub changelog: String,
    /// Who published it.
    pub author_id: String,
    /// The version it republished, for a rollback.
    pub source_version: Option<i64>,
    /// Published, RFC 3339.
    pub created_at: String,
    /// Its content.
    pub spec: AgentSpec,
}

fn version_view(row: VersionRow) -> ApiResult<VersionView> {
    Ok(VersionView {
        spec: parse_spec(&row.spec)?,
        agent_id: row.agent_id,
        version: row.version,
        changelog: row.changelog,
        author_id: row.author_id,
        source_version: row.source_version,
        created_at: ids::ms_to_rfc3339(row.created_at),
    })
}

/// What a publish says about itself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishInput {
    /// What changed (up to 2,000 characters).
    #[serde(default)]
    pub changelog: String,
}

/// Publishes `spec` (checked by the caller: [`crate::Peers::check_publish`]) as the next version of `owner`'s assistant; its number.
pub(crate) async fn publish_spec(
    svc: &AgentService,
    agent_id: &str,
    owner: &str,
    spec: &AgentSpec,
    changelog: &str,
    source_version: Option<i64>,
    reset_draft: bool,
) -> ApiResult<i64> {
    spec.validate()?;
    check_changelog(changelog)?;
    let json = serde_json::to_string(spec).map_err(ApiError::internal)?;
    let tags = spec.tags.join("\n");
    let search = spec.search_text();
    let number = store::publish(
        &svc.db,
        &Publish {
            agent_id,
            owner_id: owner,
            spec: &json,
            name: &spec.name,
            avatar: &spec.avatar,
            description: &spec.description,
            tags: &tags,
            category: spec.category.as_deref(),
            search_text: &search,
            changelog,
            source_version,
            reset_draft,
            now: ids::now_ms(),
        },
    )
    .await?;
    let number = number.ok_or_else(crate::not_found)?;
    svc.market_changed(agent_id).await;
    Ok(number)
}

/// Publish the draft as a new immutable version; new conversations use it, existing ones
/// keep theirs.
#[utoipa::path(post, path = "/agents/{id}/publish", tag = "agents", security(("bearer" = [])), request_body = PublishInput,
    responses((status = 201, body = VersionView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn publish(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PublishInput>,
) -> ApiResult<(StatusCode, ApiJson<VersionView>)> {
    let row = svc.owned(&id, &user.user_id).await?;
    let spec = parse_spec(&row.draft)?;
    svc.peers.check_publish(&user.user_id, &spec, true).await?;
    let n = publish_spec(
        &svc,
        &id,
        &user.user_id,
        &spec,
        &input.changelog,
        None,
        false,
    )
    .await?;
    let row = store::version(&svc.db, &id, n)
        .await?
        .ok_or_else(crate::version_not_found)?;
    Ok((StatusCode::CREATED, ApiJson(version_view(row)?)))
}

/// The versions of an assistant of mine, newest first.
#[utoipa::path(get, path = "/agents/{id}/versions", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_versions(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Vec<VersionView>>> {
    svc.owned(&id, &user.user_id).await?;
    let rows = store::versions(&svc.db, &id).await?;
    Ok(ApiJson(
        rows.into_iter()
            .map(version_view)
            .collect::<ApiResult<_>>()?,
    ))
}

/// One version of an assistant of mine.
#[utoipa::path(get, path = "/agents/{id}/versions/{version}", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = VersionView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_version(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path((id, version)): Path<(String, i64)>,
) -> ApiResult<ApiJson<VersionView>> {
    svc.owned(&id, &user.user_id).await?;
    let row = store::version(&svc.db, &id, version)
        .await?
        .ok_or_else(crate::version_not_found)?;
    Ok(ApiJson(version_view(row)?))
}

/// Roll back: publish an old version again under a new number (and make it the draft).
#[utoipa::path(post, path = "/agents/{id}/versions/{version}/rollback", tag = "agents", security(("bearer" = [])), request_body = PublishInput,
    responses((status = 201, body = VersionView), (status = 404, body = ErrorEnvelope)))]
pub async fn rollback(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path((id, version)): Path<(String, i64)>,
    ApiJson(input): ApiJson<PublishInput>,
) -> ApiResult<(StatusCode, ApiJson<VersionView>)> {
    svc.owned(&id, &user.user_id).await?;
    let spec = svc.version_spec(&id, version).await?;
    svc.peers.check_publish(&user.user_id, &spec, true).await?;
    let changelog = if input.changelog.trim().is_empty() {
        format!("Rollback to v{version}")
    } else {
        input.changelog
    };
    let n = publish_spec(
        &svc,
        &id,
        &user.user_id,
        &spec,
        &changelog,
        Some(version),
        true,
    )
    .await?;
    let row = store::version(&svc.db, &id, n)
        .await?
        .ok_or_else(crate::version_not_found)?;
    Ok((StatusCode::CREATED, ApiJson(version_view(row)?)))
}

/// The two versions to compare.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CompareQuery {
    /// The older version.
    pub from: i64,
    /// The newer version (or `0` for the draft).
    pub to: i64,
}

/// How two versions differ.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// The older version.
    pub from: i64,
    /// The newer version (0: the draft).
    pub to: i64,
    /// Every field whose value differs.
    pub fields: Vec<FieldChange>,
    /// The system prompt, line by line.
    pub prompt: Vec<DiffLine>,
}

/// Compare two versions of an assistant of mine (`to=0` compares with the draft).
#[utoipa::path(get, path = "/agents/{id}/compare", tag = "agents", security(("bearer" = [])), params(CompareQuery),
    responses((status = 200, body = Comparison), (status = 404, body = ErrorEnvelope)))]
pub async fn compare(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> ApiResult<ApiJson<Comparison>> {
    let row = svc.owned(&id, &user.user_id).await?;
    let from = svc.version_spec(&id, q.from).await?;
    let to = if q.to == 0 {
        parse_spec(&row.draft)?
    } else {
        svc.version_spec(&id, q.to).await?
    };
    Ok(ApiJson(Comparison {
        from: q.from,
        to: q.to,
        fields: diff::fields(&from, &to),
        prompt: diff::lines(&from.system_prompt, &to.system_prompt),
    }))
}
