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
//! Every hit also carries its **coverage**: the share of the query's information (inverse
//! document frequency, within the base) whose terms the chunk contains. Unlike a BM25 score,
//! it is comparable between queries, which is what a "no answer" threshold needs.

use std::collections::{HashMap, HashSet};

use skein_db::sqlx::{self, Row};
use skein_db::{Backend, Db, DbResult};

/// FTS5's default BM25 parameters, used on both backends.
const K1: f64 = 1.2;
/// See [`K1`].
const B: f64 = 0.75;
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
#[derive(Debug, Clone)]
pub struct LexicalIndex {
    db: Db,
}

impl LexicalIndex {
    /// The index in `db` (migrated with [`crate::MIGRATIONS`]).
    pub fn new(db: Db) -> LexicalIndex {
        LexicalIndex { db }
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
        let done = sqlx::query("DELETE FROM knowledge_lexical_chunks WHERE document_id = $1")
            .bind(document_id)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Removes every chunk of a base; answers how many.
    pub async fn remove_base(&self, base_id: &str) -> DbResult<u64> {
        let done = sqlx::query("DELETE FROM knowledge_lexical_chunks WHERE base_id = $1")
            .bind(base_id)
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// The best `limit` chunks of `base_id` for the query's terms, best first.
    pub async fn search(
        &self,
        base_id: &str,
        query_terms: &[String],
        limit: usize,
    ) -> DbResult<Vec<LexicalHit>> {
        let mut seen = HashSet::new();
        let terms: Vec<&str> = query_terms
            .iter()
            .map(String::as_str)
            .filter(|t| !t.is_empty() && seen.insert(*t))
            .take(MAX_QUERY_TERMS)
            .collect();
        if terms.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (chunks, avg_len): (i64, f64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(AVG(term_count), 0) AS DOUBLE PRECISION) \
             FROM knowledge_lexical_chunks WHERE base_id = $1",
        )
        .bind(base_id)
        .fetch_one(self.db.pool())
        .await?;
        if chunks == 0 {
            return Ok(Vec::new());
        }
        match self.db.backend() {
            Backend::Sqlite => self.search_sqlite(base_id, &terms, chunks, limit).await,
            Backend::Postgres => {
                self.search_postgres(base_id, &terms, (chunks, avg_len), limit)
                    .await
            }
        }
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

/// Adds chunks of one base within the caller's transaction (see [`LexicalIndex::insert`]), so
/// a document's chunks become searchable in the same commit that marks it ready.
pub async fn insert_in(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    base_id: &str,
    chunks: &[IndexedChunk],
) -> DbResult<()> {
    for chunk in chunks {
        let terms = chunk.terms.join(" ");
        let count = i64::try_from(chunk.terms.len()).unwrap_or(i64::MAX);
        match backend {
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
                .await?;
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
                .await?;
            }
        }
    }
    Ok(())
}

/// FTS5's inverse document frequency: ln((N − n + 0.5) / (n + 0.5)), floored just above 0 so a
/// term in most chunks still counts a little.
fn fts5_idf(chunks: i64, with_term: i64) -> f64 {
    let n = chunks as f64;
    let t = with_term as f64;
    ((n - t + 0.5) / (t + 0.5)).ln().max(1e-6)
}

/// The share of the query's information the chunk holds: the sum of the (always positive)
/// inverse document frequencies of the query terms it contains over that of all query terms.
/// A term no chunk of the base contains weighs the most, so a question about something the
/// base never mentions covers little however many common words match.
fn coverage(
    terms: &[&str],
    df: &HashMap<&str, i64>,
    chunks: i64,
    contains: impl Fn(&str) -> bool,
) -> f64 {
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
}
