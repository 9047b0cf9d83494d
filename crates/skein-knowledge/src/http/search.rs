//! Hit testing: `POST /knowledge/bases/{id}/search`, with each stage's ranks.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};
use utoipa::ToSchema;

use super::documents::{ChunkView, chunk_view};
use crate::KnowledgeService;
use crate::search::{Filter, Hit, MAX_TOP_K, Mode, Source};

/// A search.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What to look for (1–2,000 characters).
    pub query: String,
    /// The most hits (1–50, default 5).
    pub top_k: Option<usize>,
    /// Only chunks of these documents of the base (1–100 ids).
    pub document_ids: Option<Vec<String>>,
    /// Only documents of these formats: `text`, `markdown`, `html`, `csv`, `json`, `docx`,
    /// `pptx`, `epub`, `pdf`, `xlsx`, `image`.
    pub file_types: Option<Vec<String>>,
}

/// The format names a search may filter by (as `extract::Format::as_str` names them).
const FILE_TYPES: [&str; 11] = [
    "text", "markdown", "html", "csv", "json", "docx", "pptx", "epub", "pdf", "xlsx", "image",
];

/// One hit with what each stage said of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitView {
    /// The chunk.
    pub chunk: ChunkView,
    /// Its document's name.
    pub document_name: String,
    /// Its document's file.
    pub file_id: String,
    /// The score it is ordered by (rerank score when reranked, else the fused RRF score).
    pub score: f64,
    /// 1-based rank by BM25, `null` when BM25 did not find it.
    pub bm25_rank: Option<usize>,
    /// 1-based rank by vector similarity, `null` when not found that way.
    pub vector_rank: Option<usize>,
    /// 1-based rank after fusion (0 for hits below the threshold).
    pub fused_rank: usize,
    /// 1-based rank after reranking, `null` when not reranked.
    pub reranked_rank: Option<usize>,
    /// Share of the query's information the chunk contains (0–1).
    pub coverage: Option<f64>,
    /// Cosine similarity to the query.
    pub similarity: Option<f32>,
    /// The rerank model's score.
    pub rerank_score: Option<f64>,
    /// The section around the chunk, handed to chat as the passage's context, when the base
    /// uses parent-child chunks (`parent_chunk_tokens`).
    pub parent: Option<ParentView>,
}

/// A parent section (parent-child chunks).
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentView {
    /// Id.
    pub id: String,
    /// 0-based position among its document's parents.
    pub position: i64,
    /// The text (the heading path on its first line when it has one).
    pub text: String,
    /// Headings above it, outermost first.
    pub headings: Vec<String>,
    /// First page.
    pub page_start: Option<i64>,
    /// Last page.
    pub page_end: Option<i64>,
    /// Tokens.
    pub tokens: i64,
}

fn hit_view(hit: &Hit) -> HitView {
    HitView {
        chunk: chunk_view(&hit.chunk),
        document_name: hit.chunk.document_name.clone(),
        file_id: hit.chunk.file_id.clone(),
        score: hit.score,
        bm25_rank: hit.bm25_rank,
        vector_rank: hit.vector_rank,
        fused_rank: hit.fused_rank,
        reranked_rank: hit.rerank_rank,
        coverage: hit.coverage,
        similarity: hit.similarity,
        rerank_score: hit.rerank_score,
        parent: hit.parent.as_ref().map(|p| ParentView {
            id: p.id.clone(),
            position: p.position,
            text: p.text.clone(),
            headings: serde_json::from_str(&p.headings).unwrap_or_default(),
            page_start: p.page_start,
            page_end: p.page_end,
            tokens: p.tokens,
        }),
    }
}

/// What a search found.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Hits that passed the relevance threshold, best first.
    pub hits: Vec<HitView>,
    /// The best few that did not pass (for hit testing).
    pub below_threshold: Vec<HitView>,
    /// Nothing passed: there is no relevant knowledge for this query.
    pub no_answer: bool,
    /// `lexical` (the base has no embedding model) or `hybrid`.
    pub mode: Mode,
    /// Why vectors were not used for this query (the embedding call failed), if so.
    pub vector_error: Option<String>,
    /// Whether the rerank model ordered the hits.
    pub reranked: bool,
    /// The base has a rerank model, but it failed or timed out: the fused order stands.
    pub unranked: bool,
    /// Time taken, ms.
    pub took_ms: u64,
    /// Where each stage's candidates came from.
    pub sources: SearchSources,
}

/// Where each stage's candidates came from: `memory` (the base's copy in memory),
/// `memory_stale` (the previous copy, while the current one is read in the background),
/// `database` (the database's index or stored vectors) or `pgvector` (PostgreSQL's HNSW index).
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchSources {
    /// BM25.
    pub lexical: Source,
    /// Vectors; `null` when no vector stage ran.
    pub vector: Option<Source>,
}

/// Search a base (hit testing): BM25, vectors, fusion and rerank, with each stage's ranks.
/// The query's embedding and rerank are billed to the caller.
#[utoipa::path(post, path = "/knowledge/bases/{id}/search", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")), request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn search_base(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    request_id: RequestId,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> ApiResult<ApiJson<SearchResponse>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    let query = body.query.trim();
    if query.is_empty() || query.chars().count() > 2000 {
        return Err(ApiError::invalid_field(
            "query",
            "The query is 1 to 2,000 characters.",
            "查询须为 1 到 2000 个字符。",
        ));
    }
    let top_k = body.top_k.unwrap_or(5);
    if !(1..=MAX_TOP_K).contains(&top_k) {
        return Err(ApiError::invalid_field(
            "top_k",
            "top_k is 1 to 50.",
            "top_k 须在 1 到 50 之间。",
        ));
    }
    if let Some(ids) = &body.document_ids
        && !(1..=100).contains(&ids.len())
    {
        return Err(ApiError::invalid_field(
            "document_ids",
            "document_ids lists 1 to 100 documents.",
            "document_ids 须列出 1 到 100 个文档。",
        ));
    }
    if let Some(types) = &body.file_types
        && (types.is_empty() || types.iter().any(|t| !FILE_TYPES.contains(&t.as_str())))
    {
        return Err(ApiError::invalid_field(
            "file_types",
            "file_types lists formats among text, markdown, html, csv, json, docx, pptx, epub, pdf, xlsx and image.",
            "file_types 须为以下格式之一或多个：text、markdown、html、csv、json、docx、pptx、epub、pdf、xlsx、image。",
        ));
    }
    let filter = Filter {
        document_ids: body.document_ids,
        formats: body.file_types,
    };
    let caller = KnowledgeService::caller(&user.user_id, &request_id.into_string(), None);
    let outcome = svc
        .search_base_filtered(&base, caller, query, top_k, &filter)
        .await?;
    Ok(ApiJson(SearchResponse {
        hits: outcome.hits.iter().map(hit_view).collect(),
        below_threshold: outcome.below_threshold.iter().map(hit_view).collect(),
        no_answer: outcome.no_answer,
        mode: outcome.mode,
        vector_error: outcome.vector_error,
        reranked: outcome.reranked,
        unranked: outcome.unranked,
        took_ms: outcome.took_ms,
        sources: SearchSources {
            lexical: outcome.lexical_source,
            vector: outcome.vector_source,
        },
    }))
}
