//! Vector search on PostgreSQL through pgvector's HNSW index, when the `vector` extension is
//! installed (`scripts/test` builds it from Debian's source; see docs/DEPLOY.md).
//!
//! **Why beside the in-memory scan:** on PostgreSQL the index lives with the data, so a search
//! needs no copy of the base in memory, nothing is read into memory when a base changes, and
//! every instance sees a document's vectors in the commit that makes it ready. The in-memory
//! scan stays for SQLite, for a PostgreSQL without the extension, and for filtered searches.
//!
//! The vectors are in `knowledge_pgvectors` (migration 60011) as `real[]`, so the table exists
//! with or without the extension; one partial HNSW index per vector length
//! (`CAST(embedding AS vector(n))`, cosine, `WHERE dims = n`) is built in the background the
//! first time a base of that length is searched (`CREATE INDEX CONCURRENTLY`: writes go on).
//! Until it is valid the search uses the in-memory path. Rows are written in the transaction
//! that makes their document ready and deleted with its chunks; rows of documents made ready
//! before the table existed are copied once in the background at start, and pgvector answers
//! only after that copy.
//!
//! The base filter applies after the index (one index per length, not per base): pgvector
//! 0.8's iterative scan (`hnsw.iterative_scan = relaxed_order`) keeps reading the index until
//! the base's nearest are found. HNSW is approximate: its recall against the exact scan is in
//! docs/benchmarks.md.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use skein_core::service::BackgroundTasks;
use skein_db::sqlx::{self, Row};
use skein_db::{Backend, Db, DbResult};

use crate::fusion::VectorHit;
use crate::vector;

/// Longest vector pgvector's HNSW index takes.
const MAX_INDEXED_DIMS: usize = 2000;
/// Candidates the index keeps per search (pgvector's default is 40, under our 50).
const EF_SEARCH: usize = 100;
/// Rows copied per statement by the start-up backfill.
const BACKFILL_BATCH: i64 = 500;
/// How long an index seen invalid (another instance building it) is not looked at again.
const RECHECK: Duration = Duration::from_secs(5);

/// An index's state, by vector length.
#[derive(Debug, Clone, Copy)]
enum IndexState {
    /// Being built here.
    Building,
    /// Valid: searches use it.
    Ready,
    /// Not valid when last looked at (built elsewhere, or failed): looked at again after
    /// [`RECHECK`].
    Waiting(Instant),
}

/// pgvector on one database.
pub struct Pgvector {
    db: Db,
    /// On PostgreSQL with `knowledge.pgvector` on.
    wanted: bool,
    /// Whether the extension is there (created here if it could be), found at first use.
    available: tokio::sync::OnceCell<bool>,
    /// Rows of documents older than the table were copied.
    backfilled: AtomicBool,
    indexes: Mutex<HashMap<usize, IndexState>>,
    tasks: BackgroundTasks,
}

impl Pgvector {
    /// pgvector on `db` when it is PostgreSQL and `enabled`; background work runs as `tasks`.
    pub fn new(db: Db, enabled: bool, tasks: BackgroundTasks) -> Pgvector {
        Pgvector {
            wanted: enabled && db.backend() == Backend::Postgres,
            db,
            available: tokio::sync::OnceCell::new(),
            backfilled: AtomicBool::new(false),
            indexes: Mutex::new(HashMap::new()),
            tasks,
        }
    }

    /// Whether the extension is there: created when this role may, else found installed.
    pub async fn available(&self) -> bool {
        if !self.wanted {
            return false;
        }
        *self
            .available
            .get_or_init(|| async {
                if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
                    .execute(self.db.pool())
                    .await
                {
                    tracing::debug!(error = %e, "the vector extension could not be created");
                }
                let found: DbResult<Option<(String,)>> = sqlx::query_as(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'",
                )
                .fetch_optional(self.db.pool())
                .await
                .map_err(Into::into);
                match found {
                    Ok(Some((version,))) => {
                        tracing::info!(version = %version, "knowledge: vector search through pgvector");
                        true
                    }
                    Ok(None) => {
                        tracing::info!("knowledge: pgvector is not installed; vectors are scanned in memory");
                        false
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "knowledge: pgvector could not be checked");
                        false
                    }
                }
            })
            .await
    }

    /// Copies the vectors of ready documents that have no row yet (documents made ready
    /// before the table existed), then lets searches use pgvector. Run once at start.
    pub async fn backfill(&self) -> DbResult<u64> {
        if !self.wanted {
            return Ok(0);
        }
        let mut copied = 0u64;
        loop {
            let rows: Vec<(String, String, String, Vec<u8>)> = sqlx::query_as(
                "SELECT c.id, c.base_id, c.document_id, c.embedding FROM knowledge_chunks c \
                 JOIN knowledge_documents d ON d.id = c.document_id \
                 WHERE d.status = 'ready' AND c.embedding IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM knowledge_pgvectors v WHERE v.chunk_id = c.id) LIMIT $1",
            )
            .bind(BACKFILL_BATCH)
            .fetch_all(self.db.pool())
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = self.db.begin_write().await?;
            for (chunk_id, base_id, document_id, bytes) in &rows {
                let Some(v) = vector::decode(bytes).filter(|v| !v.is_empty()) else {
                    continue;
                };
                // Only while the chunk is still there (a document deleted meanwhile).
                sqlx::query(
                    "INSERT INTO knowledge_pgvectors (chunk_id, base_id, document_id, dims, embedding) \
                     SELECT $1, $2, $3, $4, CAST($5 AS REAL[]) \
                     WHERE EXISTS (SELECT 1 FROM knowledge_chunks WHERE id = $1) \
                     ON CONFLICT (chunk_id) DO NOTHING",
                )
                .bind(chunk_id)
                .bind(base_id)
                .bind(document_id)
                .bind(i32::try_from(v.len()).unwrap_or(i32::MAX))
                .bind(array_literal(&v))
                .execute(&mut *tx)
                .await?;
                copied += 1;
            }
            tx.commit().await?;
            if rows.len() < BACKFILL_BATCH as usize {
                break;
            }
        }
        self.backfilled.store(true, Ordering::Release);
        Ok(copied)
    }

    /// The `limit` vectors of the base nearest to `query` by cosine, best first; `None` when
    /// pgvector cannot answer yet (not installed, the start-up copy running, or the index for
    /// this length not built: its build is started here, in the background).
    pub async fn nearest(
        self: &std::sync::Arc<Self>,
        base_id: &str,
        query: &[f32],
        limit: usize,
    ) -> DbResult<Option<Vec<VectorHit>>> {
        let dims = query.len();
        if dims == 0
            || dims > MAX_INDEXED_DIMS
            || !self.backfilled.load(Ordering::Acquire)
            || !self.available().await
            || !self.index_ready(dims).await?
        {
            return Ok(None);
        }
        let query = vector::normalized(query);
        let literal = vector_literal(&query);
        let distance = format!("CAST(embedding AS vector({dims})) <=> CAST($2 AS vector({dims}))");
        let mut tx = self.db.pool().begin().await?;
        sqlx::query(&format!("SET LOCAL hnsw.ef_search = {EF_SEARCH}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("SET LOCAL hnsw.iterative_scan = relaxed_order")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&format!(
            "SELECT chunk_id, CAST(1 - ({distance}) AS DOUBLE PRECISION) FROM knowledge_pgvectors \
             WHERE dims = {dims} AND base_id = $1 ORDER BY {distance} LIMIT $3"
        ))
        .bind(base_id)
        .bind(&literal)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut hits = Vec::with_capacity(rows.len());
        for row in rows {
            let chunk_id: String = row.try_get(0)?;
            let similarity: f64 = row.try_get(1)?;
            if similarity.is_finite() {
                hits.push(VectorHit {
                    chunk_id,
                    similarity: similarity as f32,
                });
            }
        }
        // relaxed_order may hand rows slightly out of order: ordered as the flat scan orders.
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.chunk_id.cmp(&b.chunk_id))
        });
        Ok(Some(hits))
    }

    /// Whether the HNSW index for `dims` is valid; when it is missing, its build is started.
    async fn index_ready(self: &std::sync::Arc<Self>, dims: usize) -> DbResult<bool> {
        let state = self.indexes.lock().ok().and_then(|m| m.get(&dims).copied());
        match state {
            Some(IndexState::Ready) => return Ok(true),
            Some(IndexState::Building) => return Ok(false),
            Some(IndexState::Waiting(since)) if since.elapsed() < RECHECK => return Ok(false),
            _ => {}
        }
        let name = index_name(dims);
        let valid: Option<(bool,)> = sqlx::query_as(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid \
             WHERE c.relname = $1",
        )
        .bind(&name)
        .fetch_optional(self.db.pool())
        .await?;
        let Ok(mut indexes) = self.indexes.lock() else {
            return Ok(false);
        };
        match valid {
            Some((true,)) => {
                indexes.insert(dims, IndexState::Ready);
                Ok(true)
            }
            Some((false,)) => {
                // Another instance is building it, or a build failed: looked at again later.
                indexes.insert(dims, IndexState::Waiting(Instant::now()));
                Ok(false)
            }
            None => {
                if matches!(indexes.get(&dims), Some(IndexState::Building)) {
                    return Ok(false);
                }
                indexes.insert(dims, IndexState::Building);
                drop(indexes);
                let this = self.clone();
                self.tasks.spawn(async move {
                    let sql = format!(
                        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON knowledge_pgvectors \
                         USING hnsw ((CAST(embedding AS vector({dims}))) vector_cosine_ops) \
                         WHERE dims = {dims}"
                    );
                    let started = Instant::now();
                    let built = sqlx::query(&sql).execute(this.db.pool()).await;
                    let next = match built {
                        Ok(_) => {
                            tracing::info!(dims, took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX), "knowledge: pgvector HNSW index built");
                            // Forgotten: the next search looks at it (valid unless another
                            // build of it failed).
                            None
                        }
                        Err(e) => {
                            tracing::warn!(dims, error = %e, "knowledge: the pgvector index could not be built");
                            Some(IndexState::Waiting(Instant::now()))
                        }
                    };
                    if let Ok(mut indexes) = this.indexes.lock() {
                        match next {
                            Some(state) => indexes.insert(dims, state),
                            None => indexes.remove(&dims),
                        };
                    }
                });
                Ok(false)
            }
        }
    }
}

/// The HNSW index of vectors of `dims` floats.
fn index_name(dims: usize) -> String {
    format!("knowledge_pgvectors_hnsw_{dims}")
}

/// Writes a document's vectors, within the transaction that makes it ready (PostgreSQL only;
/// nothing on SQLite). A row already there (a resumed job) is kept.
pub async fn insert_in(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    base_id: &str,
    document_id: &str,
    vectors: &[(String, Vec<u8>)],
) -> DbResult<()> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    for (chunk_id, bytes) in vectors {
        let Some(v) = vector::decode(bytes).filter(|v| !v.is_empty()) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO knowledge_pgvectors (chunk_id, base_id, document_id, dims, embedding) \
             VALUES ($1, $2, $3, $4, CAST($5 AS REAL[])) ON CONFLICT (chunk_id) DO NOTHING",
        )
        .bind(chunk_id)
        .bind(base_id)
        .bind(document_id)
        .bind(i32::try_from(v.len()).unwrap_or(i32::MAX))
        .bind(array_literal(&v))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Deletes rows by `column` (`document_id` or `base_id`) within the caller's transaction
/// (PostgreSQL only).
pub async fn delete_in(
    backend: Backend,
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    column: Column,
    id: &str,
) -> DbResult<()> {
    if backend != Backend::Postgres {
        return Ok(());
    }
    let sql = match column {
        Column::Document => "DELETE FROM knowledge_pgvectors WHERE document_id = $1",
        Column::Base => "DELETE FROM knowledge_pgvectors WHERE base_id = $1",
    };
    sqlx::query(sql).bind(id).execute(&mut **tx).await?;
    Ok(())
}

/// What rows [`delete_in`] deletes by.
#[derive(Debug, Clone, Copy)]
pub enum Column {
    /// A document's.
    Document,
    /// A base's.
    Base,
}

/// A PostgreSQL `real[]` literal (`{0.5,-1}`); floats print exactly and round-trip.
fn array_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('{');
    push_floats(&mut s, v);
    s.push('}');
    s
}

/// A pgvector literal (`[0.5,-1]`).
fn vector_literal(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12 + 2);
    s.push('[');
    push_floats(&mut s, v);
    s.push(']');
    s
}

fn push_floats(s: &mut String, v: &[f32]) {
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Non-finite floats never reach here (the worker refuses them); 0 keeps SQL valid.
        let x = if x.is_finite() { *x } else { 0.0 };
        s.push_str(&x.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_what_postgresql_reads() {
        assert_eq!(array_literal(&[0.5, -1.0, 1e-7]), "{0.5,-1,0.0000001}");
        assert_eq!(vector_literal(&[0.25, f32::NAN]), "[0.25,0]");
        assert_eq!(index_name(64), "knowledge_pgvectors_hnsw_64");
    }
}
