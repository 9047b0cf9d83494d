//! An owner's assistants: create, edit the draft, list, detail, duplicate, delete; import
//! (LobeChat's JSON or Skein's) and export.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::MaybeUser;
use crate::lobe::{self, ExportedVersion, Imported, LobeAgent, SkeinExport};
use crate::spec::{AgentSpec, SpecPatch, Visibility};
use crate::store::{self, AgentRow};
use crate::{AgentService, parse_spec};

/// An assistant as a list shows it: the current version's card (the draft's for its owner
/// before the first publish).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentCard {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Emoji, URL or `file:<id>` (an uploaded image).
    pub avatar: String,
    /// Where a browser loads an uploaded avatar (a signed URL); none for an emoji or a URL.
    pub avatar_url: Option<String>,
    /// Description.
    pub description: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Category id.
    pub category: Option<String>,
    /// `private`, `link`, `public`.
    pub visibility: Visibility,
    /// The version new conversations use; none before the first publish.
    pub current_version: Option<i64>,
    /// Likes.
    pub likes: i64,
    /// Favourites.
    pub favourites: i64,
    /// Conversations started.
    pub conversations: i64,
    /// Featured by an admin.
    pub featured: bool,
    /// Published, RFC 3339.
    pub published_at: Option<String>,
    /// Changed, RFC 3339.
    pub updated_at: String,
}

/// Builds a card; an owner's unpublished assistant shows its draft.
pub(crate) fn card(svc: &AgentService, row: &AgentRow) -> AgentCard {
    let (name, avatar, description, tags, category) = if row.current_version.is_some() {
        (
            row.card_name.clone(),
            row.card_avatar.clone(),
            row.card_description.clone(),
            row.card_tags
                .split('\n')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            row.card_category.clone(),
        )
    } else {
        let draft = parse_spec(&row.draft).unwrap_or_default();
        (
            draft.name,
            draft.avatar,
            draft.description,
            draft.tags,
            draft.category,
        )
    };
    AgentCard {
        id: row.id.clone(),
        name,
        avatar_url: svc.peers.avatar_url(&avatar),
        avatar,
        description,
        tags,
        category,
        visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Private),
        current_version: row.current_version,
        likes: row.likes,
        favourites: row.favourites,
        conversations: row.conversations,
        featured: row.featured == 1,
        published_at: row.published_at.map(ids::ms_to_rfc3339),
        updated_at: ids::ms_to_rfc3339(row.updated_at),
    }
}

/// An assistant's page: its card, the current version's content, and for its owner the draft.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentDetail {
    /// The card.
    #[serde(flatten)]
    pub card: AgentCard,
    /// Whether the caller owns it.
    pub is_owner: bool,
    /// The current version's content; none before the first publish.
    pub published: Option<AgentSpec>,
    /// The draft (its owner only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draft: Option<AgentSpec>,
    /// Whether the caller liked it.
    pub liked: bool,
    /// Whether the caller favourited it.
    pub favourited: bool,
    /// Messages sent in its conversations.
    pub messages: i64,
    /// Unlisted by an admin.
    pub listed: bool,
}

/// A new assistant: its draft, and who may see it (private by default).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CreateAgent {
    /// The draft's fields.
    #[serde(flatten)]
    pub spec: SpecPatch,
}

async fn detail_of(
    svc: &AgentService,
    row: AgentRow,
    user_id: Option<&str>,
) -> ApiResult<AgentDetail> {
    let is_owner = user_id == Some(row.owner_id.as_str());
    let published = match row.current_version {
        Some(n) => Some(svc.version_spec(&row.id, n).await?),
        None => None,
    };
    let draft = if is_owner {
        Some(parse_spec(&row.draft)?)
    } else {
        None
    };
    let (liked, favourited) = match user_id {
        Some(u) => store::marks(&svc.db, &row.id, u).await?,
        None => (false, false),
    };
    Ok(AgentDetail {
        card: card(svc, &row),
        is_owner,
        published,
        draft,
        liked,
        favourited,
        messages: row.messages,
        listed: row.listed == 1,
    })
}

/// Creates an assistant from a validated draft; its detail.
async fn create_from(
    svc: &AgentService,
    owner: &str,
    mut spec: AgentSpec,
    visibility: Visibility,
) -> ApiResult<AgentRow> {
    spec.normalise();
    spec.validate()?;
    svc.peers.check_avatar(owner, &spec).await?;
    let id = ids::new_id();
    let draft = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    store::insert_agent(
        &svc.db,
        &id,
        owner,
        visibility.as_str(),
        &draft,
        ids::now_ms(),
    )
    .await?;
    svc.owned(&id, owner).await
}

/// Create an assistant (a draft; publish it to chat with it or list it).
#[utoipa::path(post, path = "/agents", tag = "agents", security(("bearer" = [])), request_body = CreateAgent,
    responses((status = 201, body = AgentDetail), (status = 422, body = ErrorEnvelope)))]
pub async fn create_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    ApiJson(input): ApiJson<CreateAgent>,
) -> ApiResult<(StatusCode, ApiJson<AgentDetail>)> {
    let visibility = match &input.spec.visibility {
        Some(v) => Visibility::parse(v)?,
        None => Visibility::Private,
    };
    let mut spec = AgentSpec::default();
    input.spec.apply(&mut spec);
    let row = create_from(&svc, &user.user_id, spec, visibility).await?;
    let detail = detail_of(&svc, row, Some(&user.user_id)).await?;
    Ok((StatusCode::CREATED, ApiJson(detail)))
}

/// My assistants, most recently changed first.
#[utoipa::path(get, path = "/agents/mine", tag = "agents", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<AgentCard>)))]
pub async fn list_mine(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<AgentCard>>> {
    let (rows, total) = store::owned(&svc.db, &user.user_id, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.iter().map(|r| card(&svc, r)).collect(),
        total,
        page,
    )))
}

/// An assistant's page: its owner sees it always; others when it is published and public
/// or shared by link. A private one of another user is 404.
#[utoipa::path(get, path = "/agents/{id}", tag = "agents", security((), ("bearer" = [])),
    responses((status = 200, body = AgentDetail), (status = 404, body = ErrorEnvelope)))]
pub async fn get_agent(
    State(svc): State<Arc<AgentService>>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<AgentDetail>> {
    let user_id = user.as_ref().map(|u| u.user_id.as_str());
    let row = svc.visible(&id, user_id).await?;
    Ok(ApiJson(detail_of(&svc, row, user_id).await?))
}

/// Edit the draft (and the visibility); published versions never change.
#[utoipa::path(patch, path = "/agents/{id}", tag = "agents", security(("bearer" = [])), request_body = SpecPatch,
    responses((status = 200, body = AgentDetail), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<SpecPatch>,
) -> ApiResult<ApiJson<AgentDetail>> {
    let row = svc.owned(&id, &user.user_id).await?;
    let visibility = match &patch.visibility {
        Some(v) => Visibility::parse(v)?,
        None => Visibility::parse(&row.visibility)?,
    };
    let mut spec = parse_spec(&row.draft)?;
    patch.apply(&mut spec);
    spec.normalise();
    spec.validate()?;
    svc.peers.check_avatar(&user.user_id, &spec).await?;
    let draft = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    if !store::update_draft(
        &svc.db,
        &id,
        &user.user_id,
        &draft,
        visibility.as_str(),
        ids::now_ms(),
    )
    .await?
    {
        return Err(crate::not_found());
    }
    // The visibility may have taken it into or out of the market.
    svc.market_changed(&id).await;
    let row = svc.owned(&id, &user.user_id).await?;
    Ok(ApiJson(detail_of(&svc, row, Some(&user.user_id)).await?))
}

/// Delete an assistant: it leaves lists and the market; conversations started with it go on
/// with their version.
#[utoipa::path(delete, path = "/agents/{id}", tag = "agents", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::delete_agent(&svc.db, &id, &user.user_id, ids::now_ms()).await? {
        svc.market_changed(&id).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(crate::not_found())
    }
}

/// Duplicate an assistant into a new private draft of the caller: an owner copies the draft,
/// anyone else the current version of one they may see.
#[utoipa::path(post, path = "/agents/{id}/duplicate", tag = "agents", security(("bearer" = [])),
    responses((status = 201, body = AgentDetail), (status = 404, body = ErrorEnvelope)))]
pub async fn duplicate_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<AgentDetail>)> {
    let row = svc.visible(&id, Some(&user.user_id)).await?;
    let mut spec = if row.owner_id == user.user_id {
        parse_spec(&row.draft)?
    } else {
        let n = row.current_version.ok_or_else(crate::not_found)?;
        let mut spec = svc.version_spec(&row.id, n).await?;
        // Bindings name the owner's knowledge and plugins, which the copier may not use.
        spec.knowledge_base_ids.clear();
        spec.plugin_ids.clear();
        // So does an uploaded avatar: the copy starts with none rather than a file of theirs.
        if spec.avatar.starts_with(crate::spec::AVATAR_FILE) {
            spec.avatar.clear();
        }
        spec
    };
    let suffix = " (copy)";
    let keep = crate::spec::MAX_NAME - suffix.len();
    spec.name = spec.name.chars().take(keep).collect::<String>() + suffix;
    let row = create_from(&svc, &user.user_id, spec, Visibility::Private).await?;
    let detail = detail_of(&svc, row, Some(&user.user_id)).await?;
    Ok((StatusCode::CREATED, ApiJson(detail)))
}

/// Import an assistant from LobeChat's agent JSON (published once as version 1) or from
/// Skein's export (every version published again, oldest first). It arrives private.
#[utoipa::path(post, path = "/agents/import", tag = "agents", security(("bearer" = [])), request_body = Value,
    responses((status = 201, body = AgentDetail), (status = 422, body = ErrorEnvelope)))]
pub async fn import_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, ApiJson<AgentDetail>)> {
    let owner = user.user_id.as_str();
    let row = match lobe::parse(&body)? {
        Imported::Lobe(spec) => {
            // A market entry names a model this deployment may not serve: the user picks
            // another in the draft; bindings and the avatar are checked as on any publish.
            svc.peers.check_publish(owner, &spec, false).await?;
            let row = create_from(&svc, owner, spec.clone(), Visibility::Private).await?;
            super::versions::publish_spec(
                &svc,
                &row.id,
                owner,
                &spec,
                "Imported from LobeChat",
                None,
                false,
            )
            .await?;
            row
        }
        Imported::Skein(export) => {
            if export.versions.len() > 1_000 {
                return Err(ApiError::invalid_field(
                    "versions",
                    "An import holds at most 1,000 versions.",
                    "导入文件最多包含 1,000 个版本。",
                ));
            }
            // Every version is checked before anything is written: a bad one refuses the
            // whole file.
            let mut versions = export.versions.clone();
            for v in &mut versions {
                v.spec.normalise();
                v.spec.validate()?;
                crate::spec::check_changelog(&v.changelog)?;
                svc.peers.check_publish(owner, &v.spec, false).await?;
            }
            let visibility = Visibility::parse(&export.visibility)?;
            let row = create_from(&svc, owner, export.draft, visibility).await?;
            for v in &versions {
                super::versions::publish_spec(
                    &svc,
                    &row.id,
                    owner,
                    &v.spec,
                    &v.changelog,
                    None,
                    false,
                )
                .await?;
            }
            row
        }
    };
    let row = svc.owned(&row.id, owner).await?;
    let detail = detail_of(&svc, row, Some(owner)).await?;
    Ok((StatusCode::CREATED, ApiJson(detail)))
}

/// Which format an export is in.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `skein` (default: the draft and every version) or `lobechat` (the current version, or
    /// the draft before the first publish).
    pub format: Option<String>,
}

/// Export an assistant of mine.
#[utoipa::path(get, path = "/agents/{id}/export", tag = "agents", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, body = Value), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn export_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<ApiJson<Value>> {
    let row = svc.owned(&id, &user.user_id).await?;
    let value = match q.format.as_deref().unwrap_or("skein") {
        "skein" => {
            let mut versions = Vec::new();
            for v in store::versions(&svc.db, &id).await?.into_iter().rev() {
                versions.push(ExportedVersion {
                    version: v.version,
                    changelog: v.changelog,
                    created_at: ids::ms_to_rfc3339(v.created_at),
                    spec: parse_spec(&v.spec)?,
                });
            }
            serde_json::to_value(SkeinExport {
                format: lobe::SKEIN_FORMAT.into(),
                visibility: row.visibility.clone(),
                draft: parse_spec(&row.draft)?,
                versions,
            })
        }
        "lobechat" => {
            let spec = match row.current_version {
                Some(n) => svc.version_spec(&id, n).await?,
                None => parse_spec(&row.draft)?,
            };
            serde_json::to_value(LobeAgent::from_spec(&id, &spec))
        }
        _ => {
            return Err(ApiError::invalid_field(
                "format",
                "format is skein or lobechat.",
                "format 须为 skein 或 lobechat。",
            ));
        }
    }
    .map_err(ApiError::internal)?;
    Ok(ApiJson(value))
}
