//! Knowledge bases: create, list, read, change, delete, statistics, shares, re-index.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use crate::KnowledgeService;
use crate::access::Access;
use crate::search::Mode;
use crate::store::{self, BaseCounts, BaseRow, ShareRow};

/// A knowledge base as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaseView {
    /// Id.
    pub id: String,
    /// Owner's user id.
    pub owner_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Embedding model; `null`: no vectors, lexical (BM25) search only.
    pub embedding_model: Option<String>,
    /// Rerank model; `null`: no reranking.
    pub rerank_model: Option<String>,
    /// How it searches: `hybrid` (BM25 + vectors) or `lexical` (no embedding model).
    pub retrieval: Mode,
    /// Largest chunk, in tokens.
    pub chunk_max_tokens: i64,
    /// Overlap of neighbouring chunks, in tokens.
    pub chunk_overlap_tokens: i64,
    /// Parent-child chunks: the size in tokens of the parent sections a search hands back
    /// around the small chunks it matched; `null`: off.
    pub parent_chunk_tokens: Option<i64>,
    /// `private` (owner and shares) or `public` (every user may read).
    pub visibility: String,
    /// What the caller may do: `owner`, `write` or `read`.
    pub permission: String,
    /// Counts.
    pub stats: BaseStats,
    /// Created, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}

/// A base's statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaseStats {
    /// Documents.
    pub documents: i64,
    /// Documents ready to search.
    pub ready_documents: i64,
    /// Documents that failed.
    pub failed_documents: i64,
    /// Searchable chunks.
    pub chunks: i64,
    /// Of those, with an embedding.
    pub embedded_chunks: i64,
    /// Tokens in the searchable chunks.
    pub tokens: i64,
    /// Bytes of the documents' files.
    pub bytes: i64,
}

impl From<BaseCounts> for BaseStats {
    fn from(c: BaseCounts) -> Self {
        BaseStats {
            documents: c.documents,
            ready_documents: c.ready,
            failed_documents: c.failed,
            chunks: c.chunks,
            embedded_chunks: c.embedded,
            tokens: c.tokens,
            bytes: c.bytes,
        }
    }
}

pub(crate) async fn view(
    svc: &KnowledgeService,
    base: BaseRow,
    access: Access,
) -> ApiResult<BaseView> {
    let stats = store::counts(&svc.db, &base.id).await?.into();
    Ok(BaseView {
        retrieval: if base.embedding_model.is_some() {
            Mode::Hybrid
        } else {
            Mode::Lexical
        },
        id: base.id,
        owner_id: base.owner_id,
        name: base.name,
        description: base.description,
        embedding_model: base.embedding_model,
        rerank_model: base.rerank_model,
        chunk_max_tokens: base.chunk_max_tokens,
        chunk_overlap_tokens: base.chunk_overlap_tokens,
        parent_chunk_tokens: base.parent_chunk_tokens,
        visibility: base.visibility,
        permission: access.as_str().to_string(),
        stats,
        created_at: ids::ms_to_rfc3339(base.created_at),
        updated_at: ids::ms_to_rfc3339(base.updated_at),
    })
}

/// A new knowledge base.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBase {
    /// Name, 1–100 characters.
    pub name: String,
    /// Description, up to 2,000 characters.
    #[serde(default)]
    pub description: String,
    /// Embedding model the relay serves; omitted: the server's default
    /// (`knowledge.default_embedding_model`); `""`: none (lexical search only).
    pub embedding_model: Option<String>,
    /// Rerank model the relay serves; omitted or `""`: none.
    pub rerank_model: Option<String>,
    /// Largest chunk in tokens, 16–8192 (default from the server).
    pub chunk_max_tokens: Option<i64>,
    /// Overlap in tokens, at most half of `chunk_max_tokens`.
    pub chunk_overlap_tokens: Option<i64>,
    /// Parent-child chunks: match small chunks (`chunk_max_tokens`) and hand back the larger
    /// section around each, of up to this many tokens (more than `chunk_max_tokens`, at most
    /// 8192); omitted or 0: off.
    pub parent_chunk_tokens: Option<i64>,
    /// `private` (default) or `public`.
    pub visibility: Option<String>,
}

/// Changes to a knowledge base (owner only). Changing the embedding model, the chunk sizes or
/// the parent size re-indexes every document.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBase {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Embedding model; `""`: none.
    pub embedding_model: Option<String>,
    /// Rerank model; `""`: none.
    pub rerank_model: Option<String>,
    /// Largest chunk in tokens.
    pub chunk_max_tokens: Option<i64>,
    /// Overlap in tokens.
    pub chunk_overlap_tokens: Option<i64>,
    /// Parent sections' size in tokens; 0: off (parent-child chunks).
    pub parent_chunk_tokens: Option<i64>,
    /// `private` or `public`.
    pub visibility: Option<String>,
}

fn name(text: &str) -> ApiResult<String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > 100 {
        return Err(ApiError::invalid_field(
            "name",
            "The name is 1 to 100 characters.",
            "名称须为 1 到 100 个字符。",
        ));
    }
    Ok(text.to_string())
}

fn description(text: &str) -> ApiResult<String> {
    if text.chars().count() > 2000 {
        return Err(ApiError::invalid_field(
            "description",
            "The description is at most 2,000 characters.",
            "描述最多 2000 个字符。",
        ));
    }
    Ok(text.trim().to_string())
}

fn model(field: &str, text: &str) -> ApiResult<Option<String>> {
    let text = text.trim();
    if text.len() > 200 || text.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            "A model name is at most 200 characters.",
            "模型名称最多 200 个字符。",
        ));
    }
    Ok(Some(text.to_string()).filter(|t| !t.is_empty()))
}

/// A base's embedding model as asked for: the built-in model only when this server has it,
/// so a base is never created to fail every document.
fn embedding_model(svc: &KnowledgeService, text: &str) -> ApiResult<Option<String>> {
    let chosen = model("embedding_model", text)?;
    if chosen.as_deref() == Some(skein_embed::MODEL_NAME) && svc.local_model().is_none() {
        return Err(ApiError::invalid_field(
            "embedding_model",
            "The built-in embedding model skein-local-embed is not installed on this server \
             (knowledge.local_embed_dir). Choose an embedding model the relay serves, or none \
             for keyword (BM25) search only.",
            "此服务器未安装内置向量模型 skein-local-embed（knowledge.local_embed_dir）。\
             请选择中转服务提供的向量模型，或不选（仅关键词 BM25 检索）。",
        ));
    }
    Ok(chosen)
}

fn visibility(text: &str) -> ApiResult<String> {
    match text {
        "private" | "public" => Ok(text.to_string()),
        _ => Err(ApiError::invalid_field(
            "visibility",
            "visibility is private or public.",
            "visibility 须为 private 或 public。",
        )),
    }
}

/// The parent size asked for: 0 or `None` is off; else larger than the chunks, at most 8192.
fn parent_size(parent: Option<i64>, max: i64) -> ApiResult<Option<i64>> {
    match parent {
        None | Some(0) => Ok(None),
        Some(p) if p > max && p <= 8192 => Ok(Some(p)),
        Some(_) => Err(ApiError::invalid_field(
            "parent_chunk_tokens",
            "parent_chunk_tokens is 0 (off) or more than chunk_max_tokens, at most 8192.",
            "parent_chunk_tokens 须为 0（关闭），或大于 chunk_max_tokens 且不超过 8192。",
        )),
    }
}

fn chunk_sizes(max: i64, overlap: i64) -> ApiResult<()> {
    if !(16..=8192).contains(&max) {
        return Err(ApiError::invalid_field(
            "chunk_max_tokens",
            "chunk_max_tokens is 16 to 8192.",
            "chunk_max_tokens 须在 16 到 8192 之间。",
        ));
    }
    if overlap < 0 || overlap > max / 2 {
        return Err(ApiError::invalid_field(
            "chunk_overlap_tokens",
            "chunk_overlap_tokens is 0 to half of chunk_max_tokens.",
            "chunk_overlap_tokens 须在 0 到 chunk_max_tokens 的一半之间。",
        ));
    }
    Ok(())
}

/// The knowledge bases the caller may read (own, shared, public), newest first.
#[utoipa::path(get, path = "/knowledge/bases", tag = "knowledge", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<BaseView>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_bases(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<BaseView>>> {
    let (rows, total) =
        store::readable_bases(&svc.db, &user.user_id, page.limit(), page.offset()).await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let access = if row.owner_id == user.user_id {
            Access::Own
        } else {
            svc.access(&user.user_id, &row.id).await?.1
        };
        items.push(view(&svc, row, access).await?);
    }
    Ok(ApiJson(Page::new(items, total, page)))
}

/// Create a knowledge base.
#[utoipa::path(post, path = "/knowledge/bases", tag = "knowledge", security(("bearer" = [])),
    request_body = CreateBase,
    responses((status = 201, body = BaseView), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateBase>,
) -> ApiResult<(StatusCode, ApiJson<BaseView>)> {
    let max = body
        .chunk_max_tokens
        .unwrap_or(i64::from(svc.config.chunk_max_tokens));
    let overlap = body
        .chunk_overlap_tokens
        .unwrap_or(i64::from(svc.config.chunk_overlap_tokens).min(max / 2));
    chunk_sizes(max, overlap)?;
    let parent_chunk_tokens = parent_size(body.parent_chunk_tokens, max)?;
    let embedding_model = match &body.embedding_model {
        Some(text) => embedding_model(&svc, text)?,
        // The configured default, else the built-in model when it is installed, else none
        // (BM25 only).
        None => svc
            .config
            .default_embedding_model
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| {
                svc.local_model()
                    .map(|_| skein_embed::MODEL_NAME.to_string())
            }),
    };
    let now = ids::now_ms();
    let base = BaseRow {
        id: ids::new_id(),
        owner_id: user.user_id.clone(),
        name: name(&body.name)?,
        description: description(&body.description)?,
        embedding_model,
        rerank_model: body
            .rerank_model
            .as_deref()
            .map(|m| model("rerank_model", m))
            .transpose()?
            .flatten(),
        chunk_max_tokens: max,
        chunk_overlap_tokens: overlap,
        parent_chunk_tokens,
        visibility: visibility(body.visibility.as_deref().unwrap_or("private"))?,
        created_at: now,
        updated_at: now,
    };
    store::insert_base(&svc.db, &base).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(view(&svc, base, Access::Own).await?),
    ))
}

/// A knowledge base the caller may read.
#[utoipa::path(get, path = "/knowledge/bases/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 200, body = BaseView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<BaseView>> {
    let (base, access) = svc.access(&user.user_id, &id).await?;
    Ok(ApiJson(view(&svc, base, access).await?))
}

/// A knowledge base's statistics.
#[utoipa::path(get, path = "/knowledge/bases/{id}/stats", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 200, body = BaseStats), (status = 404, body = ErrorEnvelope)))]
pub async fn base_stats(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<BaseStats>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    Ok(ApiJson(store::counts(&svc.db, &base.id).await?.into()))
}

/// Change a knowledge base (owner only). A new embedding model or new chunk sizes re-index
/// every document (each unsearchable until it is ready again).
#[utoipa::path(patch, path = "/knowledge/bases/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")), request_body = UpdateBase,
    responses((status = 200, body = BaseView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBase>,
) -> ApiResult<ApiJson<BaseView>> {
    let (mut base, access) = svc.require(&user.user_id, &id, Access::Own).await?;
    let before = (
        base.embedding_model.clone(),
        base.chunk_max_tokens,
        base.chunk_overlap_tokens,
        base.parent_chunk_tokens,
    );
    if let Some(text) = &body.name {
        base.name = name(text)?;
    }
    if let Some(text) = &body.description {
        base.description = description(text)?;
    }
    if let Some(text) = &body.embedding_model {
        base.embedding_model = embedding_model(&svc, text)?;
    }
    if let Some(text) = &body.rerank_model {
        base.rerank_model = model("rerank_model", text)?;
    }
    if let Some(max) = body.chunk_max_tokens {
        base.chunk_max_tokens = max;
    }
    if let Some(overlap) = body.chunk_overlap_tokens {
        base.chunk_overlap_tokens = overlap;
    }
    chunk_sizes(base.chunk_max_tokens, base.chunk_overlap_tokens)?;
    base.parent_chunk_tokens = parent_size(
        body.parent_chunk_tokens.or(base.parent_chunk_tokens),
        base.chunk_max_tokens,
    )?;
    if let Some(text) = &body.visibility {
        base.visibility = visibility(text)?;
    }
    base.updated_at = ids::now_ms();
    store::update_base(&svc.db, &base).await?;
    if before
        != (
            base.embedding_model.clone(),
            base.chunk_max_tokens,
            base.chunk_overlap_tokens,
            base.parent_chunk_tokens,
        )
    {
        reindex_all(&svc, &base.id).await?;
    }
    Ok(ApiJson(view(&svc, base, access).await?))
}

async fn reindex_all(svc: &KnowledgeService, base_id: &str) -> ApiResult<u64> {
    let docs = store::document_rows(&svc.db, base_id).await?;
    let now = ids::now_ms();
    for doc in &docs {
        store::reset_document(&svc.db, doc, now).await?;
    }
    Ok(docs.len() as u64)
}

/// How many documents were queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// Documents queued to be indexed again.
    pub queued: u64,
}

/// Re-index every document of a base (writers): each is unsearchable until it is ready again.
#[utoipa::path(post, path = "/knowledge/bases/{id}/reindex", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 202, body = Queued), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn reindex_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<Queued>)> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let queued = reindex_all(&svc, &base.id).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(Queued { queued })))
}

/// Delete a knowledge base with its documents, chunks and vectors (owner only). The files
/// stay in the caller's files.
#[utoipa::path(delete, path = "/knowledge/bases/{id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Own).await?;
    store::delete_base(&svc.db, &base.id).await?;
    svc.vectors.forget(&base.id);
    svc.vector_rebuilds.forget(&base.id);
    svc.lexical.forget(&base.id);
    Ok(StatusCode::NO_CONTENT)
}

/// A share of a base with a user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// The user's id.
    pub user_id: String,
    /// `read` or `write`.
    pub permission: String,
}

/// A base's shares.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shares {
    /// Who else may use the base, and how.
    pub shares: Vec<Share>,
}

/// Who a base is shared with (owner only).
#[utoipa::path(get, path = "/knowledge/bases/{id}/shares", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    responses((status = 200, body = Shares), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn get_shares(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Shares>> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Own).await?;
    let shares = store::shares(&svc.db, &base.id)
        .await?
        .into_iter()
        .map(|s| Share {
            user_id: s.user_id,
            permission: s.permission,
        })
        .collect();
    Ok(ApiJson(Shares { shares }))
}

/// Replace who a base is shared with (owner only; at most 100 users).
#[utoipa::path(put, path = "/knowledge/bases/{id}/shares", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")), request_body = Shares,
    responses((status = 200, body = Shares), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_shares(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Shares>,
) -> ApiResult<ApiJson<Shares>> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Own).await?;
    if body.shares.len() > 100 {
        return Err(ApiError::invalid_field(
            "shares",
            "A base is shared with at most 100 users.",
            "一个知识库最多共享给 100 个用户。",
        ));
    }
    let mut rows: Vec<ShareRow> = Vec::with_capacity(body.shares.len());
    for share in &body.shares {
        if !ids::looks_like_id(&share.user_id) || share.user_id == base.owner_id {
            return Err(ApiError::invalid_field(
                "shares",
                "Each share names another user by id.",
                "每个共享须以 id 指定另一位用户。",
            ));
        }
        if !matches!(share.permission.as_str(), "read" | "write") {
            return Err(ApiError::invalid_field(
                "shares",
                "permission is read or write.",
                "permission 须为 read 或 write。",
            ));
        }
        if rows.iter().any(|r| r.user_id == share.user_id) {
            continue;
        }
        rows.push(ShareRow {
            user_id: share.user_id.clone(),
            permission: share.permission.clone(),
        });
    }
    store::set_shares(&svc.db, &base.id, &rows, ids::now_ms()).await?;
    let shares = rows
        .into_iter()
        .map(|s| Share {
            user_id: s.user_id,
            permission: s.permission,
        })
        .collect();
    Ok(ApiJson(Shares { shares }))
}
