//! One base's search, stage by stage: BM25 over the lexical index, cosine over the base's
//! vectors (when it has an embedding model), reciprocal rank fusion with the "no answer"
//! threshold, then an optional rerank that falls back to the fused order when the rerank
//! model fails or is slow. Each hit keeps its rank at every stage for hit testing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_core::api::{KnowledgePassage, RelayCaller, RerankRequest};
use skein_core::i18n::Lang;
use skein_core::{ApiError, ApiResult};
use skein_text::segment::Analyzer;

use crate::fusion::{self, FusedHit, FusionConfig, VectorHit};
use crate::rebuild::Built;
use crate::store::{self, BaseRow, ChunkRow};
use crate::vector_cache::{Stamp, VectorCache, VectorSet};
use crate::{KnowledgeService, vector};

/// Candidates each retriever contributes to fusion.
pub const CANDIDATES: usize = 50;
/// The most hits a search answers.
pub const MAX_TOP_K: usize = 50;
/// The most below-threshold hits shown to hit testing.
const BELOW_SHOWN: usize = 5;

/// One hit, with what each stage said of it.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The chunk (with its document's name and file).
    pub chunk: ChunkRow,
    /// The score it is ordered by: the rerank score when reranked, else the RRF score.
    pub score: f64,
    /// 1-based rank in the BM25 results.
    pub bm25_rank: Option<usize>,
    /// 1-based rank in the vector results.
    pub vector_rank: Option<usize>,
    /// 1-based rank after fusion.
    pub fused_rank: usize,
    /// 1-based rank after reranking.
    pub rerank_rank: Option<usize>,
    /// The share of the query's information the chunk holds (lexical evidence).
    pub coverage: Option<f64>,
    /// Cosine similarity to the query (vector evidence).
    pub similarity: Option<f32>,
    /// The rerank model's score.
    pub rerank_score: Option<f64>,
    /// The section around the chunk, when the base uses parent-child chunks.
    pub parent: Option<store::ParentRow>,
}

impl Hit {
    /// The hit as other services see it: with parent-child chunks, the parent section's text
    /// and pages (the context), under the matched chunk's id.
    pub fn passage(&self) -> KnowledgePassage {
        let c = &self.chunk;
        let (text, headings, page_start, page_end) = match &self.parent {
            Some(p) => (&p.text, &p.headings, p.page_start, p.page_end),
            None => (&c.text, &c.headings, c.page_start, c.page_end),
        };
        let pages = match (page_start, page_end) {
            (Some(a), Some(b)) => {
                Some((u32::try_from(a).unwrap_or(0), u32::try_from(b).unwrap_or(0)))
            }
            _ => None,
        };
        KnowledgePassage {
            base_id: c.base_id.clone(),
            document_id: c.document_id.clone(),
            document_name: c.document_name.clone(),
            file_id: c.file_id.clone(),
            chunk_id: c.id.clone(),
            text: text.clone(),
            headings: serde_json::from_str(headings).unwrap_or_default(),
            pages,
            score: self.score,
        }
    }
}

/// Which documents a search looks in (metadata filters); the default: all of the base's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only these documents.
    pub document_ids: Option<Vec<String>>,
    /// Only documents of these formats (`pdf`, `docx`, ... as [`crate::extract::Format`]
    /// names them).
    pub formats: Option<Vec<String>>,
}

impl Filter {
    /// Whether it filters anything.
    pub fn is_empty(&self) -> bool {
        self.document_ids.is_none() && self.formats.is_none()
    }
}

/// How a search was run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 only: the base has no embedding model.
    Lexical,
    /// BM25 and vectors, fused.
    Hybrid,
}

/// Where a stage's candidates came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The base's current copy in memory.
    Memory,
    /// The base's previous copy in memory, while the current one is read in the background
    /// (vectors only; hits are still checked against the base's ready chunks).
    MemoryStale,
    /// The database: its full-text index, or every stored vector scanned (no current copy in
    /// memory yet, the base is over the memory budget, or the cache is off).
    Database,
    /// PostgreSQL's pgvector HNSW index.
    Pgvector,
}

/// What a search found, and how.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Hits that passed the threshold, best first.
    pub hits: Vec<Hit>,
    /// The best few that did not.
    pub below_threshold: Vec<Hit>,
    /// Nothing passed: say "no relevant knowledge".
    pub no_answer: bool,
    /// Lexical only, or hybrid.
    pub mode: Mode,
    /// Why the vector stage was skipped for this query (the embedding call failed).
    pub vector_error: Option<String>,
    /// Whether the rerank model ordered the hits.
    pub reranked: bool,
    /// The base has a rerank model but it failed or timed out: the fused order stands.
    pub unranked: bool,
    /// Time taken, ms.
    pub took_ms: u64,
    /// Where the BM25 candidates came from.
    pub lexical_source: Source,
    /// Where the vector candidates came from (`None`: no vector stage ran).
    pub vector_source: Option<Source>,
}

impl KnowledgeService {
    /// Searches one base (the caller checked access) for `query`; the query's embedding and
    /// the rerank are billed to `caller`.
    pub async fn search_base(
        &self,
        base: &BaseRow,
        caller: RelayCaller,
        query: &str,
        top_k: usize,
    ) -> ApiResult<Outcome> {
        self.search_base_filtered(base, caller, query, top_k, &Filter::default())
            .await
    }

    /// [`search_base`](Self::search_base) within the documents `filter` keeps.
    pub async fn search_base_filtered(
        &self,
        base: &BaseRow,
        caller: RelayCaller,
        query: &str,
        top_k: usize,
        filter: &Filter,
    ) -> ApiResult<Outcome> {
        let started = Instant::now();
        let allowed = self.allowed_chunks(&base.id, filter).await?;
        let text = query.to_string();
        let terms = tokio::task::spawn_blocking(move || Analyzer::default().terms(&text))
            .await
            .unwrap_or_default();
        let (lexical, lexical_source) = self
            .lexical
            .search_traced(&base.id, &terms, CANDIDATES, allowed.clone())
            .await?;
        let mut vector_error = None;
        let mut vector_source = None;
        let mut vectors: Vec<VectorHit> = Vec::new();
        let mode = if base.embedding_model.is_some() {
            Mode::Hybrid
        } else {
            Mode::Lexical
        };
        if let Some(model) = &base.embedding_model {
            match self
                .embed(caller.clone(), model, vec![query.to_string()])
                .await
            {
                Ok(embedded) => match embedded.into_iter().next() {
                    Some(q) => {
                        let (found, source) = self.nearest(&base.id, q, allowed.clone()).await?;
                        vectors = found;
                        vector_source = Some(source);
                    }
                    None => {
                        vector_error = Some("the embedding model answered no vector".to_string())
                    }
                },
                Err(e) => {
                    tracing::info!(base_id = %base.id, code = e.code(), "query embedding failed; searching lexically");
                    vector_error = Some(e.message(Lang::En).to_string());
                }
            }
        }
        let fused = fusion::fuse(&lexical, &vectors, &FusionConfig::default());
        let no_answer = fused.no_answer();
        let wanted: Vec<&FusedHit> = fused.hits.iter().take(top_k).collect();
        let below: Vec<&FusedHit> = fused.below_threshold.iter().take(BELOW_SHOWN).collect();
        let ids: Vec<String> = wanted
            .iter()
            .chain(&below)
            .map(|h| h.chunk_id.clone())
            .collect();
        let rows: HashMap<String, ChunkRow> = store::ready_chunks(&self.db, &base.id, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let to_hits = |list: &[&FusedHit], rows: &HashMap<String, ChunkRow>| -> Vec<Hit> {
            list.iter()
                .filter_map(|h| {
                    Some(Hit {
                        chunk: rows.get(&h.chunk_id)?.clone(),
                        score: h.score,
                        bm25_rank: h.lexical_rank,
                        vector_rank: h.vector_rank,
                        fused_rank: 0,
                        rerank_rank: None,
                        coverage: h.coverage,
                        similarity: h.similarity,
                        rerank_score: None,
                        parent: None,
                    })
                })
                .collect()
        };
        let mut hits = to_hits(&wanted, &rows);
        for (i, hit) in hits.iter_mut().enumerate() {
            hit.fused_rank = i + 1;
        }
        let mut below_threshold = to_hits(&below, &rows);
        self.attach_parents(&base.id, hits.iter_mut().chain(below_threshold.iter_mut()))
            .await?;
        let (mut reranked, mut unranked) = (false, false);
        if let (Some(model), false) = (&base.rerank_model, hits.is_empty()) {
            match self.rerank(model, caller, query, &hits).await {
                Some(scores) => {
                    for (rank, (index, score)) in scores.iter().enumerate() {
                        if let Some(hit) = hits.get_mut(*index) {
                            hit.rerank_rank = Some(rank + 1);
                            hit.rerank_score = Some(*score);
                            hit.score = *score;
                        }
                    }
                    hits.sort_by_key(|h| h.rerank_rank.unwrap_or(usize::MAX));
                    reranked = true;
                }
                None => unranked = true,
            }
        }
        Ok(Outcome {
            no_answer: no_answer || hits.is_empty(),
            hits,
            below_threshold,
            mode,
            vector_error,
            reranked,
            unranked,
            took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            lexical_source,
            vector_source,
        })
    }

    /// Gives each hit whose chunk has a parent section that section (parent-child chunks).
    async fn attach_parents<'a>(
        &self,
        base_id: &str,
        hits: impl Iterator<Item = &'a mut Hit>,
    ) -> ApiResult<()> {
        let mut hits: Vec<&mut Hit> = hits.filter(|h| h.chunk.parent_id.is_some()).collect();
        if hits.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = hits
            .iter()
            .filter_map(|h| h.chunk.parent_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        let parents: HashMap<String, store::ParentRow> = store::parents(&self.db, base_id, &ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        for hit in hits.iter_mut() {
            hit.parent = hit
                .chunk
                .parent_id
                .as_ref()
                .and_then(|id| parents.get(id))
                .cloned();
        }
        Ok(())
    }

    /// The chunks a filtered search may answer (`None`: every chunk of the base).
    async fn allowed_chunks(
        &self,
        base_id: &str,
        filter: &Filter,
    ) -> ApiResult<Option<Arc<HashSet<String>>>> {
        if filter.is_empty() {
            return Ok(None);
        }
        let documents = store::document_rows(&self.db, base_id).await?;
        let formats: Option<HashSet<&str>> = filter
            .formats
            .as_ref()
            .map(|f| f.iter().map(String::as_str).collect());
        let wanted: Option<HashSet<&str>> = filter
            .document_ids
            .as_ref()
            .map(|d| d.iter().map(String::as_str).collect());
        let kept: Vec<String> = documents
            .into_iter()
            .filter(|d| wanted.as_ref().is_none_or(|w| w.contains(d.id.as_str())))
            .filter(|d| {
                formats.as_ref().is_none_or(|f| {
                    // As the worker reads it: by name first, then by type.
                    crate::extract::Format::from_file_name(&d.name)
                        .or_else(|| crate::extract::Format::from_mime(&d.content_type))
                        .is_some_and(|format| f.contains(format.as_str()))
                })
            })
            .map(|d| d.id)
            .collect();
        let ids = store::chunk_ids_of(&self.db, base_id, &kept).await?;
        Ok(Some(Arc::new(ids.into_iter().collect())))
    }

    /// The base's [`CANDIDATES`] vectors nearest to `query` (among `allowed` when given), and
    /// where they came from: the vector cache when it is current (one indexed query checks);
    /// else the previous copy, or the database with none, while the current copy is read in
    /// the background — a search never waits for a base to be read into memory.
    async fn nearest(
        &self,
        base_id: &str,
        query: Vec<f32>,
        allowed: Option<Arc<HashSet<String>>>,
    ) -> ApiResult<(Vec<VectorHit>, Source)> {
        // The stamp is read before the vectors: a change between the two leaves a set newer
        // than its stamp, which is rebuilt again; never one older than its stamp.
        let cached = if self.config.vector_cache_mb == 0 {
            None
        } else {
            let stamp = store::vector_stamp(&self.db, base_id).await?;
            Some((stamp, self.vectors.lookup(base_id, stamp)))
        };
        // pgvector answers unfiltered searches (a filter is a set of chunk ids the index
        // cannot take) unless the current copy in memory is small enough that scanning it is
        // sooner; a failure there falls back to the scan.
        let small = matches!(&cached, Some((_, Some((set, true))))
            if set.floats() as u64 <= self.config.pgvector_min_floats);
        if allowed.is_none() && !small {
            match self.pgvector.nearest(base_id, &query, CANDIDATES).await {
                Ok(Some(hits)) => return Ok((hits, Source::Pgvector)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(base_id = %base_id, error = %e, "pgvector search failed; scanning vectors instead");
                }
            }
        }
        let Some((stamp, cached)) = cached else {
            return Ok((
                self.scan_database(base_id, query, allowed).await?,
                Source::Database,
            ));
        };
        if !matches!(cached, Some((_, true))) && !self.vector_rebuilds.refused(base_id, &stamp) {
            let (db, cache, id) = (self.db.clone(), self.vectors.clone(), base_id.to_string());
            self.vector_rebuilds
                .start(base_id, move || build_vectors(db, cache, id));
        }
        let (set, source) = match cached {
            Some((set, true)) => (set, Source::Memory),
            Some((set, false)) => (set, Source::MemoryStale),
            None => {
                return Ok((
                    self.scan_database(base_id, query, allowed).await?,
                    Source::Database,
                ));
            }
        };
        let hits = tokio::task::spawn_blocking(move || {
            set.nearest_among(&query, CANDIDATES, allowed.as_deref())
        })
        .await
        .map_err(ApiError::internal)?;
        Ok((hits, source))
    }

    /// Reads the base's vectors into the cache now, on the caller's task (a benchmark before
    /// it measures; searches never wait for this). Answers whether they are held.
    pub async fn warm_vectors(&self, base_id: &str) -> ApiResult<bool> {
        if self.config.vector_cache_mb == 0 {
            return Ok(false);
        }
        let built = self
            .vector_rebuilds
            .run_now(
                base_id,
                build_vectors(self.db.clone(), self.vectors.clone(), base_id.to_string()),
            )
            .await
            .map_err(ApiError::internal)?;
        Ok(built == Built::Kept)
    }

    /// Reads a base into both in-memory copies now (see [`Self::warm_vectors`]).
    pub async fn warm(&self, base_id: &str) -> ApiResult<()> {
        self.lexical.warm(base_id).await?;
        self.warm_vectors(base_id).await?;
        Ok(())
    }

    /// Every stored vector of the base compared with `query` (no copy in memory).
    async fn scan_database(
        &self,
        base_id: &str,
        query: Vec<f32>,
        allowed: Option<Arc<HashSet<String>>>,
    ) -> ApiResult<Vec<VectorHit>> {
        let mut stored = store::base_vectors(&self.db, base_id).await?;
        if let Some(allowed) = &allowed {
            stored.retain(|(id, _)| allowed.contains(id));
        }
        tokio::task::spawn_blocking(move || vector::nearest(&query, &stored, CANDIDATES))
            .await
            .map_err(ApiError::internal)
    }

    /// `(index into hits, score)` best first, or `None` when the rerank model failed or took
    /// longer than `rerank_timeout_ms`.
    async fn rerank(
        &self,
        model: &str,
        caller: RelayCaller,
        query: &str,
        hits: &[Hit],
    ) -> Option<Vec<(usize, f64)>> {
        let request = RerankRequest {
            model: model.to_string(),
            query: query.to_string(),
            documents: hits.iter().map(|h| h.chunk.text.clone()).collect(),
            top_n: None,
        };
        let timeout = Duration::from_millis(self.config.rerank_timeout_ms);
        match tokio::time::timeout(timeout, self.relay.rerank(caller, request)).await {
            Ok(Ok(reranking)) => {
                let mut seen = vec![false; hits.len()];
                let mut order: Vec<(usize, f64)> = Vec::with_capacity(hits.len());
                for r in reranking.results {
                    if r.index < hits.len() && !seen[r.index] {
                        seen[r.index] = true;
                        order.push((r.index, r.score));
                    }
                }
                // Documents the model left out keep their fused order, after the rest.
                let floor = order.iter().map(|o| o.1).fold(f64::INFINITY, f64::min);
                let floor = if floor.is_finite() { floor } else { 0.0 };
                for (i, was) in seen.iter().enumerate() {
                    if !was {
                        order.push((i, floor - 1.0));
                    }
                }
                Some(order)
            }
            Ok(Err(e)) => {
                tracing::info!(code = e.code(), "rerank failed; answering unranked");
                None
            }
            Err(_) => {
                tracing::info!(
                    timeout_ms = self.config.rerank_timeout_ms,
                    "rerank timed out; answering unranked"
                );
                None
            }
        }
    }
}

/// Reads a base's vectors into `cache` at its current stamp.
async fn build_vectors(
    db: skein_db::Db,
    cache: Arc<VectorCache>,
    base_id: String,
) -> Result<Built<Stamp>, String> {
    let stamp = store::vector_stamp(&db, &base_id)
        .await
        .map_err(|e| e.to_string())?;
    if matches!(cache.lookup(&base_id, stamp), Some((_, true))) {
        return Ok(Built::Kept);
    }
    let stored = store::base_vectors(&db, &base_id)
        .await
        .map_err(|e| e.to_string())?;
    let set = tokio::task::spawn_blocking(move || Arc::new(VectorSet::build(stored)))
        .await
        .map_err(|e| e.to_string())?;
    if !cache.fits(set.floats()) {
        cache.forget(&base_id);
        return Ok(Built::TooLarge(stamp));
    }
    cache.put(&base_id, stamp, set);
    Ok(Built::Kept)
}
