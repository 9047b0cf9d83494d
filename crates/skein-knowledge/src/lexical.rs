//! The lexical (BM25) index of knowledge chunks, in the database beside everything else.
//!
//! **Decision: the database's own full-text index, fed with terms Skein segments.** Neither
//! FTS5's tokenizers nor PostgreSQL's parser cut Chinese into words, so the caller segments
//! (`skein_text::segment::Analyzer`) and the index stores space-separated terms:
//! - SQLite: an FTS5 table over external content, ranked by FTS5's own `bm25()` (k1 = 1.2,
//!   b = 0.75), filtered by base inside the FTS index. Compact and fast, in C.
//! - PostgreSQL: a `tsvector` built by Skein from the terms (never by PostgreSQL's parser) with
//!   a GIN index to find candidates; BM25 with FTS5's formula is computed here from each
//!   candidate's term frequencies (the `tsvector` positions) and the base's statistics, because
//!   PostgreSQL's `ts_rank` has no inverse document frequency and ranks noticeably worse.
//!
//! Why not a BM25 of our own over a postings table: it would store a row per (chunk, term) —
//! tens of millions at 100,000 chunks — where FTS5 and GIN store compressed lists. What differs
//! between the backends: FTS5's statistics cover all bases in the table, PostgreSQL's the
//! searched base, so scores (not the evaluation's rankings, in practice) differ slightly.
//!
//! **Searches are answered from memory** ([`crate::lexical_cache`]) when the base fits the
//! cache's budget: the rows above are the durable copy, read once per change of the base
//! (`knowledge_lexical_bases.generation`) into compact postings scored like the PostgreSQL
//! path — in a background task ([`crate::rebuild`]), never inside a search: until the copy is
//! in place, searches of the changed base ask the database's own index, which also answers
//! bases over the budget (remembered per generation), or every search when the budget is 0.
//!
//! Every hit also carries its **coverage**: the share of the query's information (inverse
//! document frequency, within the base) whose terms the chunk contains. Unlike a BM25 score,
//! it is comparable between queries, which is what a "no answer" threshold needs.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use skein_db::sqlx::{self, Row};
use skein_db::{Backend, Db, DbError, DbResult};

use skein_core::service::BackgroundTasks;

use crate::lexical_cache::{LexicalCache, LexicalSet};
use crate::rebuild::{Built, Rebuilds};
use crate::search::Source;

/// FTS5's default BM25 parameters, used on both backends.
pub(crate) const K1: f64 = 1.2;
/// See [`K1`].
pub(crate) const B: f64 = 0.75;
/// The fewest chunks a base counts as when weighing coverage (see [`coverage`]).
const MIN_COVERAGE_CHUNKS: i64 = 16;
/// The in-memory budget of [`LexicalIndex::new`] (the service sets its own from the config).
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
/// Bytes a base's in-memory index takes per chunk and per term occurrence, roughly (ids and
/// norms; a posting): bases whose estimate is over budget are not read into memory at all.
const EST_BYTES_PER_CHUNK: u64 = 70;
/// See [`EST_BYTES_PER_CHUNK`].
const EST_BYTES_PER_TERM: u64 = 4;
/// The most distinct query terms a search uses (a pasted page as a query stays cheap).
const MAX_QUERY_TERMS: usize = 64;
/// PostgreSQL keeps at most 256 positions per lexeme; term frequency saturates long before.
const MAX_POSITIONS: usize = 255;

/// One chunk to index: its id, the document it belongs to, and its segmented terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedChunk {
    /// The chunk's id (unique across bases).
    pub chunk_id: String,
    /// The document's id, for removing a document's chunks together.
    pub document_id: String,
    /// The chunk's terms in order, as the analyzer made them.
    pub terms: Vec<String>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    /// The chunk.
    pub chunk_id: String,
    /// Its BM25 score (higher is better; comparable only within one query).
    pub score: f64,
    /// The share (0..=1) of the query's inverse document frequency the chunk's terms cover.
    pub coverage: f64,
}

/// The lexical index over a database.
#[derive(Clone)]
pub struct LexicalIndex {
    db: Db,
    /// Bases' indexes in memory.
    cache: Arc<LexicalCache>,
    /// Bases being read into memory, in the background (never on a search), and those found
    /// too large at their generation.
    rebuilds: Rebuilds<i64>,
}

impl std::fmt::Debug for LexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LexicalIndex")
            .field("cache_bytes", &self.cache.max_bytes())
            .finish_non_exhaustive()
    }
}

impl LexicalIndex {
    /// The index in `db` (migrated with [`crate::MIGRATIONS`]), with 256 MiB for bases'
    /// indexes in memory.
    pub fn new(db: Db) -> LexicalIndex {
        LexicalIndex::with_cache(db, DEFAULT_CACHE_BYTES)
    }

    /// The index in `db` with at most `cache_bytes` of bases' indexes in memory (0: every
    /// search asks the database's full-text index).
    pub fn with_cache(db: Db, cache_bytes: u64) -> LexicalIndex {
        LexicalIndex::with_tasks(db, cache_bytes, BackgroundTasks::new())
    }

    /// [`with_cache`](Self::with_cache), its rebuilds run as `tasks` (the service's, so
    /// shutdown waits for them).
    pub fn with_tasks(db: Db, cache_bytes: u64, tasks: BackgroundTasks) -> LexicalIndex {
        LexicalIndex {
            db,
            cache: Arc::new(LexicalCache::new(cache_bytes)),
            rebuilds: Rebuilds::new(tasks),
        }
    }

    /// Rebuilds of bases' in-memory indexes so far (started, kept, refused, failed).
    pub fn rebuilds(&self) -> &crate::rebuild::Counts {
        self.rebuilds.counts()
    }

    /// Bases held in memory, and their bytes.
    pub fn cached(&self) -> (usize, usize) {
        self.cache.usage()
    }

    /// Reads the base into memory now, on the caller's task (a benchmark or an evaluation
    /// before it measures; searches never wait for this). Answers whether it is held.
    pub async fn warm(&self, base_id: &str) -> DbResult<bool> {
        if self.cache.max_bytes() == 0 {
            return Ok(false);
        }
        let built = self
            .rebuilds
            .run_now(
                base_id,
                build(self.db.clone(), self.cache.clone(), base_id.to_string()),
            )
            .await?;
        Ok(built == Built::Kept)
    }

    /// Adds chunks of one base in one transaction. A chunk already indexed is left as it is,
    /// so an ingestion job that resumes after a crash never duplicates a chunk.
    pub async fn insert(&self, base_id: &str, chunks: &[IndexedChunk]) -> DbResult<()> {
        let mut tx = self.db.begin_write().await?;
        insert_in(self.db.backend(), &mut tx, base_id, chunks).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a document's chunks; answers how many.
    pub async fn remove_document(&self, document_id: &str) -> DbResult<u64> {
        let mut tx = self.db.begin_write().await?;
        let removed = remove_document_in(&mut tx, document_id).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Removes every chunk of a base; answers how many.
    pub async fn remove_base(&self, base_id: &str) -> DbResult<u64> {
        let mut tx = self.db.begin_write().await?;
        let removed = remove_base_in(&mut tx, base_id).await?;
        tx.commit().await?;
        self.cache.forget(base_id);
        Ok(removed)
    }

    /// Drops a base's in-memory index (the base was deleted).
    pub fn forget(&self, base_id: &str) {
        self.cache.forget(base_id);
        self.rebuilds.forget(base_id);
    }

    /// The best `limit` chunks of `base_id` for the query's terms, best first.
    pub async fn search(
        &self,
        base_id: &str,
        query_terms: &[String],
        limit: usize,
    ) -> DbResult<Vec<LexicalHit>> {
        self.search_filtered(base_id, query_terms, limit, None)
            .await
    }

    /// [`search`](Self::search) among the chunks in `allowed` only, when given. A base
    /// searched in the database (over the memory budget) is filtered after ranking, so it may
    /// answer fewer than `limit`.
    pub async fn search_filtered(
        &self,
        base_id: &str,
        query_terms: &[String],
        limit: usize,
        allowed: Option<Arc<HashSet<String>>>,
    ) -> DbResult<Vec<LexicalHit>> {
        Ok(self
            .search_traced(base_id, query_terms, limit, allowed)
            .await?
            .0)
    }

    /// [`search_filtered`](Self::search_filtered), with where the answer came from: the
    /// base's current copy in memory, or the database's index while that copy is being read
    /// in the background (or when the base is over the memory budget).
    pub async fn search_traced(
        &self,
        base_id: &str,
        query_terms: &[String],
        limit: usize,
        allowed: Option<Arc<HashSet<String>>>,
    ) -> DbResult<(Vec<LexicalHit>, Source)> {
        let mut seen = HashSet::new();
        let terms: Vec<&str> = query_terms
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty() && seen.insert(*t))
            .take(MAX_QUERY_TERMS)
            .collect();
        if terms.is_empty() || limit == 0 {
            return Ok((Vec::new(), Source::Database));
        }
        let stats: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT generation, chunks, total_terms FROM knowledge_lexical_bases \
             WHERE base_id = $1",
        )
        .bind(base_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some((generation, chunks, total_terms)) = stats else {
            return Ok((Vec::new(), Source::Database));
        };
        if chunks <= 0 {
            return Ok((Vec::new(), Source::Database));
        }
        let estimate = u64::try_from(chunks)
            .unwrap_or(u64::MAX)
            .saturating_mul(EST_BYTES_PER_CHUNK)
            .saturating_add(
                u64::try_from(total_terms)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(EST_BYTES_PER_TERM),
            );
        if estimate <= self.cache.max_bytes() as u64 && !self.rebuilds.refused(base_id, &generation)
        {
            if let Some(set) = self.cache.get(base_id, generation) {
                let terms: Vec<String> = terms.iter().map(|t| (*t).to_string()).collect();
                let hits = tokio::task::spawn_blocking(move || {
                    let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
                    set.search(&terms, limit, allowed.as_deref())
                })
                .await
                .map_err(join_error)?;
                return Ok((hits, Source::Memory));
            }
            // Stale or absent: read it in the background; this search asks the database.
            let (db, cache) = (self.db.clone(), self.cache.clone());
            let id = base_id.to_string();
            self.rebuilds.start(base_id, move || build(db, cache, id));
        }
        let avg_len = total_terms as f64 / chunks as f64;
        let mut hits = match self.db.backend() {
            Backend::Sqlite => self.search_sqlite(base_id, &terms, chunks, limit).await?,
            Backend::Postgres => {
                self.search_postgres(base_id, &terms, (chunks, avg_len), limit)
                    .await?
            }
        };
        if let Some(allowed) = allowed {
            hits.retain(|h| allowed.contains(&h.chunk_id));
        }
        Ok((hits, Source::Database))
    }

    async fn search_sqlite(
        &self,
        base_id: &str,
        terms: &[&str],
        chunks: i64,
        limit: usize,
    ) -> DbResult<Vec<LexicalHit>> {
        // FTS5 sees only letters and digits as token characters; a term without any is no
        // phrase it could match (and an empty phrase is a syntax error).
        let terms: Vec<&str> = terms
            .iter()
            .copied()
            .filter(|t| t.chars().any(char::is_alphanumeric))
            .collect();
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let terms = terms.as_slice();
        let base = format!("base_id : {}", phrase(base_id));
        let any = terms
            .iter()
            .map(|t| format!("terms : {}", phrase(t)))
            .collect::<Vec<_>>()
            .join(" OR ");
        let rows = sqlx::query(
            "SELECT c.chunk_id, c.terms, bm25(knowledge_lexical_fts, 1.0, 0.0) AS score \
             FROM knowledge_lexical_fts JOIN knowledge_lexical_chunks c \
             ON c.id = knowledge_lexical_fts.rowid \
             WHERE knowledge_lexical_fts MATCH $1 ORDER BY score LIMIT $2",
        )
        .bind(format!("{base} AND ({any})"))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.db.pool())
        .await?;
        // Document frequency of each term within the base, for coverage.
        let mut df = HashMap::new();
        for term in terms {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM knowledge_lexical_fts WHERE knowledge_lexical_fts MATCH $1",
            )
            .bind(format!("{base} AND terms : {}", phrase(term)))
            .fetch_one(self.db.pool())
            .await?;
            df.insert(*term, n);
        }
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let chunk_id: String = row.try_get(0)?;
            let chunk_terms: String = row.try_get(1)?;
            let score: f64 = row.try_get(2)?;
            let present: HashSet<&str> = chunk_terms.split(' ').collect();
            hits.push(LexicalHit {
                chunk_id,
                // FTS5 ranks lower-is-better; hits speak higher-is-better.
                score: -score,
                coverage: coverage(terms, &df, chunks, |t| present.contains(t)),
            });
        }
        Ok(hits)
    }

    async fn search_postgres(
        &self,
        base_id: &str,
        terms: &[&str],
        (chunks, avg_len): (i64, f64),
        limit: usize,
    ) -> DbResult<Vec<LexicalHit>> {
        let query = terms
            .iter()
            .map(|t| quote_lexeme(t))
            .collect::<Vec<_>>()
            .join(" | ");
        // One row per (candidate chunk, query term it contains): the term frequency is the
        // number of positions the tsvector holds for the lexeme.
        let rows = sqlx::query(
            "SELECT c.chunk_id, CAST(c.term_count AS BIGINT), u.lexeme, \
             CAST(COALESCE(array_length(u.positions, 1), 1) AS BIGINT) \
             FROM knowledge_lexical_chunks c, unnest(c.tsv) AS u(lexeme, positions, weights) \
             WHERE c.base_id = $1 AND c.tsv @@ CAST($2 AS tsquery) \
             AND u.lexeme = ANY(string_to_array($3, ' '))",
        )
        .bind(base_id)
        .bind(&query)
        .bind(terms.join(" "))
        .fetch_all(self.db.pool())
        .await?;
        let mut per_chunk: HashMap<String, (i64, Vec<(String, i64)>)> = HashMap::new();
        let mut df: HashMap<&str, i64> = HashMap::new();
        for row in rows {
            let chunk_id: String = row.try_get(0)?;
            let len: i64 = row.try_get(1)?;
            let lexeme: String = row.try_get(2)?;
            let tf: i64 = row.try_get(3)?;
            if let Some(term) = terms.iter().find(|t| **t == lexeme) {
                *df.entry(term).or_default() += 1;
            }
            per_chunk
                .entry(chunk_id)
                .or_insert_with(|| (len, Vec::new()))
                .1
                .push((lexeme, tf));
        }
        let avg_len = if avg_len > 0.0 { avg_len } else { 1.0 };
        let mut hits: Vec<LexicalHit> = per_chunk
            .into_iter()
            .map(|(chunk_id, (len, found))| {
                let score = found
                    .iter()
                    .map(|(term, tf)| {
                        let n = df.get(term.as_str()).copied().unwrap_or(1);
                        let tf = *tf as f64;
                        fts5_idf(chunks, n) * tf * (K1 + 1.0)
                            / (tf + K1 * (1.0 - B + B * len as f64 / avg_len))
                    })
                    .sum();
                let present: HashSet<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
                LexicalHit {
                    chunk_id,
                    score,
                    coverage: coverage(terms, &df, chunks, |t| present.contains(t)),
                }
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.chunk_id.cmp(&b.chunk_id))
        });
        hits.truncate(limit);
        Ok(hits)
    }
}

/// Reads a base's index into `cache` at its current generation.
async fn build(db: Db, cache: Arc<LexicalCache>, base_id: String) -> DbResult<Built<i64>> {
    // The generation is read before the rows: a change between the two leaves a set newer
    // than its stamp, which the next search reads again; never one older.
    let Some(generation) = generation(&db, &base_id).await? else {
        // No chunk indexed (or the base is gone): nothing to hold.
        return Ok(Built::Kept);
    };
    if cache.get(&base_id, generation).is_some() {
        return Ok(Built::Kept);
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT chunk_id, terms, CAST(term_count AS BIGINT) \
         FROM knowledge_lexical_chunks WHERE base_id = $1",
    )
    .bind(&base_id)
    .fetch_all(db.pool())
    .await?;
    let set = tokio::task::spawn_blocking(move || Arc::new(LexicalSet::build(rows)))
        .await
        .map_err(join_error)?;
    if set.bytes() > cache.max_bytes() {
        return Ok(Built::TooLarge(generation));
    }
    cache.put(&base_id, generation, set);
    Ok(Built::Kept)
}

/// A base's generation, `None` when it has no indexed chunk.
async fn generation(db: &Db, base_id: &str) -> DbResult<Option<i64>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT generation FROM knowledge_lexical_bases WHERE base_id = $1")
            .bind(base_id)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(g,)| g))
}

/// Adds chunks of one base within the caller's transaction (see [`LexicalIndex::insert`]), so
/// a document's chunks become searchable in the same commit that marks it ready.
pub async fn insert_in(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    base_id: &str,
    chunks: &[IndexedChunk],
) -> DbResult<()> {
    let (mut added, mut added_terms) = (0i64, 0i64);
    for chunk in chunks {
        let terms = chunk.terms.join(" ");
        let count = i64::try_from(chunk.terms.len()).unwrap_or(i64::MAX);
        let done = match backend {
            Backend::Sqlite => {
                sqlx::query(
                    "INSERT INTO knowledge_lexical_chunks \
                     (chunk_id, base_id, document_id, terms, term_count) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (chunk_id) DO NOTHING",
                )
                .bind(&chunk.chunk_id)
                .bind(base_id)
                .bind(&chunk.document_id)
                .bind(&terms)
                .bind(count)
                .execute(&mut **tx)
                .await?
            }
            Backend::Postgres => {
                sqlx::query(
                    "INSERT INTO knowledge_lexical_chunks \
                     (chunk_id, base_id, document_id, terms, term_count, tsv) \
                     VALUES ($1, $2, $3, $4, $5, CAST($6 AS tsvector)) \
                     ON CONFLICT (chunk_id) DO NOTHING",
                )
                .bind(&chunk.chunk_id)
                .bind(base_id)
                .bind(&chunk.document_id)
                .bind(&terms)
                .bind(count)
                .bind(tsvector_literal(&chunk.terms))
                .execute(&mut **tx)
                .await?
            }
        };
        // A chunk already indexed (a resumed job) changes nothing, statistics included.
        if done.rows_affected() == 1 {
            added += 1;
            added_terms = added_terms.saturating_add(count);
        }
    }
    if added > 0 {
        change_stats(tx, base_id, added, added_terms).await?;
    }
    Ok(())
}

/// Removes a document's chunks from the index within the caller's transaction, keeping the
/// base's statistics; answers how many.
pub async fn remove_document_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    document_id: &str,
) -> DbResult<u64> {
    let per_base: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT base_id, COUNT(*), CAST(COALESCE(SUM(term_count), 0) AS BIGINT) \
         FROM knowledge_lexical_chunks WHERE document_id = $1 GROUP BY base_id",
    )
    .bind(document_id)
    .fetch_all(&mut **tx)
    .await?;
    let done = sqlx::query("DELETE FROM knowledge_lexical_chunks WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut **tx)
        .await?;
    for (base_id, chunks, terms) in per_base {
        change_stats(tx, &base_id, -chunks, -terms).await?;
    }
    Ok(done.rows_affected())
}

/// Removes a base's chunks and statistics from the index within the caller's transaction;
/// answers how many chunks.
pub async fn remove_base_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    base_id: &str,
) -> DbResult<u64> {
    let done = sqlx::query("DELETE FROM knowledge_lexical_chunks WHERE base_id = $1")
        .bind(base_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM knowledge_lexical_bases WHERE base_id = $1")
        .bind(base_id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

/// Adds `chunks` and `terms` (negative: removes) to a base's statistics and moves its
/// generation, so every instance's in-memory copy of the base is stale from this commit on.
async fn change_stats(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    base_id: &str,
    chunks: i64,
    terms: i64,
) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO knowledge_lexical_bases (base_id, generation, chunks, total_terms) \
         VALUES ($1, 1, $2, $3) ON CONFLICT (base_id) DO UPDATE SET \
         generation = knowledge_lexical_bases.generation + 1, \
         chunks = knowledge_lexical_bases.chunks + excluded.chunks, \
         total_terms = knowledge_lexical_bases.total_terms + excluded.total_terms",
    )
    .bind(base_id)
    .bind(chunks)
    .bind(terms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A blocking task that died (it panicked) as a storage error, so the search fails cleanly.
fn join_error(e: tokio::task::JoinError) -> DbError {
    DbError::Sqlx(sqlx::Error::Protocol(format!(
        "lexical index task failed: {e}"
    )))
}

/// FTS5's inverse document frequency: ln((N − n + 0.5) / (n + 0.5)), floored just above 0 so a
/// term in most chunks still counts a little.
pub(crate) fn fts5_idf(chunks: i64, with_term: i64) -> f64 {
    let n = chunks as f64;
    let t = with_term as f64;
    ((n - t + 0.5) / (t + 0.5)).ln().max(1e-6)
}

/// The share of the query's information the chunk holds: the sum of the (always positive)
/// inverse document frequencies of the query terms it contains over that of all query terms.
/// A term no chunk of the base contains weighs the most, so a question about something the
/// base never mentions covers little however many common words match.
///
/// The base counts as at least [`MIN_COVERAGE_CHUNKS`] chunks here: in a base of one or two
/// chunks every word it holds is "in every chunk" and would weigh almost nothing against one
/// word of the question it never uses (in a one-chunk base, 0.29 against 1.39), so a plainly
/// answered question fell under the "no answer" gate. Larger bases are unchanged.
pub(crate) fn coverage(
    terms: &[&str],
    df: &HashMap<&str, i64>,
    chunks: i64,
    contains: impl Fn(&str) -> bool,
) -> f64 {
    let chunks = chunks.max(MIN_COVERAGE_CHUNKS);
    let idf = |t: &str| {
        let n = df.get(t).copied().unwrap_or(0) as f64;
        (1.0 + (chunks as f64 - n + 0.5) / (n + 0.5)).ln()
    };
    let total: f64 = terms.iter().map(|t| idf(t)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    terms
        .iter()
        .filter(|t| contains(t))
        .map(|t| idf(t))
        .sum::<f64>()
        / total
}

/// An FTS5 string (a phrase of one or more tokens), quotes doubled.
fn phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// A lexeme quoted for `tsvector`/`tsquery` input: single quotes and backslashes doubled.
fn quote_lexeme(term: &str) -> String {
    format!("'{}'", term.replace('\\', "\\\\").replace('\'', "''"))
}

/// The `tsvector` input for `terms`: each distinct term with its positions (1-based, at most
/// [`MAX_POSITIONS`] each, within PostgreSQL's 16,383).
fn tsvector_literal(terms: &[String]) -> String {
    let mut positions: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, term) in terms.iter().enumerate() {
        if term.is_empty() {
            continue;
        }
        let slot = *index.entry(term.as_str()).or_insert_with(|| {
            positions.push((term.as_str(), Vec::new()));
            positions.len() - 1
        });
        let list = &mut positions[slot].1;
        if list.len() < MAX_POSITIONS {
            list.push((i + 1).min(16_383));
        }
    }
    positions
        .iter()
        .map(|(term, at)| {
            let mut at = at.clone();
            at.dedup();
            let at = at
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",");
            format!("{}:{at}", quote_lexeme(term))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsvector_literals_quote_and_count() {
        let terms: Vec<String> = ["年假", "o'neil", "年假"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(tsvector_literal(&terms), "'年假':1,3 'o''neil':2");
    }

    #[test]
    fn coverage_weighs_rare_terms() {
        let df = HashMap::from([("leave", 3), ("annual", 40), ("unicorn", 0)]);
        let all = coverage(&["leave", "annual"], &df, 100, |_| true);
        assert!((all - 1.0).abs() < 1e-9);
        let common_only = coverage(&["leave", "annual", "unicorn"], &df, 100, |t| t == "annual");
        assert!(common_only < 0.2, "{common_only}");
    }

    #[test]
    fn a_one_chunk_base_still_covers_a_question_with_one_foreign_word() {
        // "How many days of annual leave do employees get" against a one-chunk base that
        // holds every term but "get": the gate (0.4) must let it through.
        let held = ["days", "annual", "leave", "employees"];
        let df: HashMap<&str, i64> = held.iter().map(|t| (*t, 1)).collect();
        let question = ["days", "annual", "leave", "employees", "get"];
        let c = coverage(&question, &df, 1, |t| held.contains(&t));
        assert!(c >= 0.6, "{c}");
        // A question it holds nothing of still covers nothing.
        assert_eq!(coverage(&["quantum", "gauge"], &df, 1, |_| false), 0.0);
        // One common word among foreign ones stays under the gate.
        let c = coverage(&["leave", "quantum", "gauge"], &df, 1, |t| t == "leave");
        assert!(c < 0.4, "{c}");
    }
}
