//! The Knowledge service's tables (see `migrations/`): bases, shares, documents, chunks, the
//! job queue and conversation attachments. Every query a client's id reaches also filters by
//! what the caller may see, in [`crate::access`] and here.

use skein_db::sqlx::{self, Any, FromRow, Transaction};
use skein_db::{Db, DbResult};

/// A knowledge base.
#[derive(Debug, Clone, FromRow)]
pub struct BaseRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub owner_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Embedding model; `None` for lexical search only.
    pub embedding_model: Option<String>,
    /// Rerank model; `None` for no reranking.
    pub rerank_model: Option<String>,
    /// Chunk size in tokens.
    pub chunk_max_tokens: i64,
    /// Chunk overlap in tokens.
    pub chunk_overlap_tokens: i64,
    /// Parent sections' size in tokens (parent-child chunks); `None`: off.
    pub parent_chunk_tokens: Option<i64>,
    /// `private` or `public`.
    pub visibility: String,
    /// Created, ms.
    pub created_at: i64,
    /// Updated, ms.
    pub updated_at: i64,
}

const BASE_COLUMNS: &str = "b.id, b.owner_id, b.name, b.description, b.embedding_model, b.rerank_model, \
     b.chunk_max_tokens, b.chunk_overlap_tokens, b.parent_chunk_tokens, b.visibility, b.created_at, \
     b.updated_at";

/// A document of a base.
#[derive(Debug, Clone, FromRow)]
pub struct DocumentRow {
    /// Id.
    pub id: String,
    /// Its base.
    pub base_id: String,
    /// The file it is read from.
    pub file_id: String,
    /// Whose file that is.
    pub file_owner_id: String,
    /// Name (the file's).
    pub name: String,
    /// The file's sniffed type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// `queued`, `extracting`, `embedding`, `ready`, `failed`.
    pub status: String,
    /// Chunks embedded (or 0/1 steps for lexical-only bases).
    pub progress_done: i64,
    /// Chunks to embed.
    pub progress_total: i64,
    /// Chunks, once chunked.
    pub chunk_count: Option<i64>,
    /// Why it failed, or why it waits for a retry.
    pub error: Option<String>,
    /// Added, ms.
    pub created_at: i64,
    /// Changed, ms.
    pub updated_at: i64,
}

const DOC_COLUMNS: &str = "id, base_id, file_id, file_owner_id, name, content_type, size, status, \
     progress_done, progress_total, chunk_count, error, created_at, updated_at";

/// A chunk, with its document's name and file for citations.
#[derive(Debug, Clone, FromRow)]
pub struct ChunkRow {
    /// Id.
    pub id: String,
    /// Base.
    pub base_id: String,
    /// Document.
    pub document_id: String,
    /// 0-based position in the document.
    pub position: i64,
    /// Text.
    pub text: String,
    /// Headings as a JSON array.
    pub headings: String,
    /// First page.
    pub page_start: Option<i64>,
    /// Last page.
    pub page_end: Option<i64>,
    /// Tokens.
    pub tokens: i64,
    /// Whether it has an embedding.
    pub embedded: i64,
    /// Its document's name.
    pub document_name: String,
    /// Its document's file.
    pub file_id: String,
    /// The parent section it belongs to (parent-child chunks).
    pub parent_id: Option<String>,
}

const CHUNK_COLUMNS: &str = "c.id, c.base_id, c.document_id, c.position, c.text, c.headings, c.page_start, \
     c.page_end, c.tokens, CASE WHEN c.embedding IS NULL THEN 0 ELSE 1 END AS embedded, \
     d.name AS document_name, d.file_id, c.parent_id";

/// A parent section: the context a search hands back for its small chunks.
#[derive(Debug, Clone, FromRow)]
pub struct ParentRow {
    /// Id.
    pub id: String,
    /// Document.
    pub document_id: String,
    /// 0-based position among the document's parents.
    pub position: i64,
    /// Text (as the chunks': heading path, then the text).
    pub text: String,
    /// Headings as a JSON array.
    pub headings: String,
    /// First page.
    pub page_start: Option<i64>,
    /// Last page.
    pub page_end: Option<i64>,
    /// Tokens.
    pub tokens: i64,
}

/// A chunk to store.
#[derive(Debug, Clone)]
pub struct NewChunk {
    /// Id.
    pub id: String,
    /// Position.
    pub position: i64,
    /// Text (as indexed: heading path, then the text).
    pub text: String,
    /// Headings JSON.
    pub headings: String,
    /// Pages.
    pub pages: Option<(i64, i64)>,
    /// Tokens.
    pub tokens: i64,
    /// Its parent section's id, when the base uses parents.
    pub parent_id: Option<String>,
}

/// A parent section to store (its id is what its chunks' `parent_id` names).
#[derive(Debug, Clone)]
pub struct NewParent {
    /// Id.
    pub id: String,
    /// Position.
    pub position: i64,
    /// Text (as indexed: heading path, then the text).
    pub text: String,
    /// Headings JSON.
    pub headings: String,
    /// Pages.
    pub pages: Option<(i64, i64)>,
    /// Tokens.
    pub tokens: i64,
}

/// A share of a base.
#[derive(Debug, Clone, FromRow)]
pub struct ShareRow {
    /// Who.
    pub user_id: String,
    /// `read` or `write`.
    pub permission: String,
}

/// A claimed job.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    /// The document.
    pub document_id: String,
    /// Its base.
    pub base_id: String,
    /// Attempts so far (this one included once claimed).
    pub attempts: i64,
}

// ---- bases ----------------------------------------------------------------------------

/// Inserts a base.
pub async fn insert_base(db: &Db, base: &BaseRow) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO knowledge_bases (id, owner_id, name, description, embedding_model, rerank_model, \
         chunk_max_tokens, chunk_overlap_tokens, visibility, created_at, updated_at, parent_chunk_tokens) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&base.id)
    .bind(&base.owner_id)
    .bind(&base.name)
    .bind(&base.description)
    .bind(&base.embedding_model)
    .bind(&base.rerank_model)
    .bind(base.chunk_max_tokens)
    .bind(base.chunk_overlap_tokens)
    .bind(&base.visibility)
    .bind(base.created_at)
    .bind(base.updated_at)
    .bind(base.parent_chunk_tokens)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Writes a base's editable fields.
pub async fn update_base(db: &Db, base: &BaseRow) -> DbResult<()> {
    sqlx::query(
        "UPDATE knowledge_bases SET name = $2, description = $3, embedding_model = $4, \
         rerank_model = $5, chunk_max_tokens = $6, chunk_overlap_tokens = $7, visibility = $8, \
         updated_at = $9, parent_chunk_tokens = $10 WHERE id = $1",
    )
    .bind(&base.id)
    .bind(&base.name)
    .bind(&base.description)
    .bind(&base.embedding_model)
    .bind(&base.rerank_model)
    .bind(base.chunk_max_tokens)
    .bind(base.chunk_overlap_tokens)
    .bind(&base.visibility)
    .bind(base.updated_at)
    .bind(base.parent_chunk_tokens)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A base by id, whoever owns it (callers check access).
pub async fn base(db: &Db, id: &str) -> DbResult<Option<BaseRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {BASE_COLUMNS} FROM knowledge_bases b WHERE b.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// `user_id`'s permission on a base through a share, if any.
pub async fn share_of(db: &Db, base_id: &str, user_id: &str) -> DbResult<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT permission FROM knowledge_shares WHERE base_id = $1 AND user_id = $2",
    )
    .bind(base_id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(p,)| p))
}

/// The bases `user_id` may read (own, shared, public), newest first, and how many.
pub async fn readable_bases(
    db: &Db,
    user_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<BaseRow>, i64)> {
    const WHERE: &str = "WHERE b.owner_id = $1 OR b.visibility = 'public' OR EXISTS \
         (SELECT 1 FROM knowledge_shares s WHERE s.base_id = b.id AND s.user_id = $1)";
    let rows = sqlx::query_as(&format!(
        "SELECT {BASE_COLUMNS} FROM knowledge_bases b {WHERE} \
         ORDER BY b.created_at DESC, b.id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) =
        sqlx::query_as(&format!("SELECT COUNT(*) FROM knowledge_bases b {WHERE}"))
            .bind(user_id)
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// A base's shares.
pub async fn shares(db: &Db, base_id: &str) -> DbResult<Vec<ShareRow>> {
    Ok(sqlx::query_as(
        "SELECT user_id, permission FROM knowledge_shares WHERE base_id = $1 ORDER BY created_at, user_id",
    )
    .bind(base_id)
    .fetch_all(db.pool())
    .await?)
}

/// Replaces a base's shares.
pub async fn set_shares(db: &Db, base_id: &str, shares: &[ShareRow], now: i64) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query("DELETE FROM knowledge_shares WHERE base_id = $1")
        .bind(base_id)
        .execute(&mut *tx)
        .await?;
    for share in shares {
        sqlx::query(
            "INSERT INTO knowledge_shares (base_id, user_id, permission, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(base_id)
        .bind(&share.user_id)
        .bind(&share.permission)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes a base with everything in it, in one transaction.
pub async fn delete_base(db: &Db, base_id: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    for table in [
        "DELETE FROM knowledge_bases WHERE id = $1",
        "DELETE FROM knowledge_documents WHERE base_id = $1",
        "DELETE FROM knowledge_chunks WHERE base_id = $1",
        "DELETE FROM knowledge_chunk_parents WHERE base_id = $1",
        "DELETE FROM knowledge_jobs WHERE base_id = $1",
        "DELETE FROM knowledge_shares WHERE base_id = $1",
        "DELETE FROM knowledge_conversation_bases WHERE base_id = $1",
    ] {
        sqlx::query(table).bind(base_id).execute(&mut *tx).await?;
    }
    crate::lexical::remove_base_in(&mut tx, base_id).await?;
    crate::pgvector::delete_in(
        db.backend(),
        &mut tx,
        crate::pgvector::Column::Base,
        base_id,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Counts of a base: documents by status, chunks, embedded chunks, tokens.
#[derive(Debug, Clone, Default)]
pub struct BaseCounts {
    /// Documents.
    pub documents: i64,
    /// Ready documents.
    pub ready: i64,
    /// Failed documents.
    pub failed: i64,
    /// Chunks of ready documents.
    pub chunks: i64,
    /// Of those, embedded.
    pub embedded: i64,
    /// Tokens of those chunks.
    pub tokens: i64,
    /// Bytes of the documents.
    pub bytes: i64,
}

/// A base's counts.
pub async fn counts(db: &Db, base_id: &str) -> DbResult<BaseCounts> {
    let (documents, ready, failed, bytes): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN status = 'ready' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(size), 0) AS BIGINT) \
         FROM knowledge_documents WHERE base_id = $1",
    )
    .bind(base_id)
    .fetch_one(db.pool())
    .await?;
    let (chunks, embedded, tokens): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), \
         CAST(COALESCE(SUM(CASE WHEN c.embedding IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(c.tokens), 0) AS BIGINT) \
         FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id \
         WHERE c.base_id = $1 AND d.status = 'ready'",
    )
    .bind(base_id)
    .fetch_one(db.pool())
    .await?;
    Ok(BaseCounts {
        documents,
        ready,
        failed,
        chunks,
        embedded,
        tokens,
        bytes,
    })
}

// ---- documents --------------------------------------------------------------------------

/// Inserts a document and its job, in one transaction.
pub async fn insert_document(db: &Db, doc: &DocumentRow) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(&format!(
        "INSERT INTO knowledge_documents ({DOC_COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    ))
    .bind(&doc.id)
    .bind(&doc.base_id)
    .bind(&doc.file_id)
    .bind(&doc.file_owner_id)
    .bind(&doc.name)
    .bind(&doc.content_type)
    .bind(doc.size)
    .bind(&doc.status)
    .bind(doc.progress_done)
    .bind(doc.progress_total)
    .bind(doc.chunk_count)
    .bind(&doc.error)
    .bind(doc.created_at)
    .bind(doc.updated_at)
    .execute(&mut *tx)
    .await?;
    enqueue(&mut tx, &doc.id, &doc.base_id, doc.created_at).await?;
    tx.commit().await?;
    Ok(())
}

async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    document_id: &str,
    base_id: &str,
    now: i64,
) -> DbResult<()> {
    sqlx::query("DELETE FROM knowledge_jobs WHERE document_id = $1")
        .bind(document_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO knowledge_jobs (document_id, base_id, attempts, run_after, created_at) \
         VALUES ($1, $2, 0, $3, $3)",
    )
    .bind(document_id)
    .bind(base_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A document of a base.
pub async fn document(db: &Db, base_id: &str, id: &str) -> DbResult<Option<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DOC_COLUMNS} FROM knowledge_documents WHERE id = $1 AND base_id = $2"
    ))
    .bind(id)
    .bind(base_id)
    .fetch_optional(db.pool())
    .await?)
}

/// A base's documents, newest first, and how many.
pub async fn documents(
    db: &Db,
    base_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<DocumentRow>, i64)> {
    let rows = sqlx::query_as(&format!(
        "SELECT {DOC_COLUMNS} FROM knowledge_documents WHERE base_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(base_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM knowledge_documents WHERE base_id = $1")
            .bind(base_id)
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// Deletes a document with its chunks, index rows and job, in one transaction. The document
/// row goes first: a worker writing to it at the same time finds it gone (its guarded writes
/// change nothing) or finished its own transaction before this one read the chunks.
pub async fn delete_document(db: &Db, id: &str) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    for statement in [
        "DELETE FROM knowledge_documents WHERE id = $1",
        "DELETE FROM knowledge_chunks WHERE document_id = $1",
        "DELETE FROM knowledge_chunk_parents WHERE document_id = $1",
        "DELETE FROM knowledge_jobs WHERE document_id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    }
    crate::lexical::remove_document_in(&mut tx, id).await?;
    crate::pgvector::delete_in(db.backend(), &mut tx, crate::pgvector::Column::Document, id)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes a document unsearchable and queues it to be indexed again from its file: its chunks
/// and index rows go, its job starts over.
pub async fn reset_document(db: &Db, doc: &DocumentRow, now: i64) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "UPDATE knowledge_documents SET status = 'queued', progress_done = 0, progress_total = 0, \
         chunk_count = NULL, error = NULL, updated_at = $2 WHERE id = $1",
    )
    .bind(&doc.id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    for statement in [
        "DELETE FROM knowledge_chunks WHERE document_id = $1",
        "DELETE FROM knowledge_chunk_parents WHERE document_id = $1",
    ] {
        sqlx::query(statement)
            .bind(&doc.id)
            .execute(&mut *tx)
            .await?;
    }
    crate::lexical::remove_document_in(&mut tx, &doc.id).await?;
    crate::pgvector::delete_in(
        db.backend(),
        &mut tx,
        crate::pgvector::Column::Document,
        &doc.id,
    )
    .await?;
    enqueue(&mut tx, &doc.id, &doc.base_id, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Ids of all documents of a base.
pub async fn document_rows(db: &Db, base_id: &str) -> DbResult<Vec<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DOC_COLUMNS} FROM knowledge_documents WHERE base_id = $1"
    ))
    .bind(base_id)
    .fetch_all(db.pool())
    .await?)
}

/// A document by id alone (for the worker).
pub async fn document_by_id(db: &Db, id: &str) -> DbResult<Option<DocumentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {DOC_COLUMNS} FROM knowledge_documents WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// Sets a document's status and progress; false when it no longer exists.
pub async fn set_status(
    db: &Db,
    id: &str,
    status: &str,
    progress: (i64, i64),
    error: Option<&str>,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE knowledge_documents SET status = $2, progress_done = $3, progress_total = $4, \
         error = $5, updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(progress.0)
    .bind(progress.1)
    .bind(error)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

// ---- chunks -------------------------------------------------------------------------------

/// Stores a document's chunks and marks it chunked, in one transaction, unless it is gone or
/// already chunked (a resumed job): answers whether it wrote them.
pub async fn store_chunks(
    db: &Db,
    doc: &DocumentRow,
    chunks: &[NewChunk],
    status: &str,
    now: i64,
) -> DbResult<bool> {
    store_chunks_with_parents(db, doc, chunks, &[], status, now).await
}

/// [`store_chunks`] with the parent sections the chunks name (parent-child chunks), in the
/// same transaction.
pub async fn store_chunks_with_parents(
    db: &Db,
    doc: &DocumentRow,
    chunks: &[NewChunk],
    parents: &[NewParent],
    status: &str,
    now: i64,
) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    let count = i64::try_from(chunks.len()).unwrap_or(i64::MAX);
    let marked = sqlx::query(
        "UPDATE knowledge_documents SET chunk_count = $2, status = $3, progress_done = 0, \
         progress_total = $2, error = NULL, updated_at = $4 WHERE id = $1 AND chunk_count IS NULL",
    )
    .bind(&doc.id)
    .bind(count)
    .bind(status)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() != 1 {
        return Ok(false);
    }
    for chunk in chunks {
        sqlx::query(
            "INSERT INTO knowledge_chunks (id, base_id, document_id, position, text, headings, \
             page_start, page_end, tokens, created_at, parent_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&chunk.id)
        .bind(&doc.base_id)
        .bind(&doc.id)
        .bind(chunk.position)
        .bind(&chunk.text)
        .bind(&chunk.headings)
        .bind(chunk.pages.map(|p| p.0))
        .bind(chunk.pages.map(|p| p.1))
        .bind(chunk.tokens)
        .bind(now)
        .bind(&chunk.parent_id)
        .execute(&mut *tx)
        .await?;
    }
    for parent in parents {
        sqlx::query(
            "INSERT INTO knowledge_chunk_parents (id, base_id, document_id, position, text, headings, \
             page_start, page_end, tokens, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&parent.id)
        .bind(&doc.base_id)
        .bind(&doc.id)
        .bind(parent.position)
        .bind(&parent.text)
        .bind(&parent.headings)
        .bind(parent.pages.map(|p| p.0))
        .bind(parent.pages.map(|p| p.1))
        .bind(parent.tokens)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Parent sections of `base_id` by id (a search's hits' parents).
pub async fn parents(db: &Db, base_id: &str, ids: &[String]) -> DbResult<Vec<ParentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // By primary key, the base checked here (see `ready_chunks` for why not in SQL).
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 1)).collect();
    let sql = format!(
        "SELECT base_id, id, document_id, position, text, headings, page_start, page_end, tokens \
         FROM knowledge_chunk_parents WHERE id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, ParentInBase>(&sql);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query
        .fetch_all(db.pool())
        .await?
        .into_iter()
        .filter(|p| p.base_id == base_id)
        .map(|p| p.parent)
        .collect())
}

#[derive(FromRow)]
struct ParentInBase {
    base_id: String,
    #[sqlx(flatten)]
    parent: ParentRow,
}

/// The next chunks of a document still without an embedding, in order: `(id, text)`.
pub async fn unembedded(db: &Db, document_id: &str, limit: i64) -> DbResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, text FROM knowledge_chunks WHERE document_id = $1 AND embedding IS NULL \
         ORDER BY position LIMIT $2",
    )
    .bind(document_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Stores embeddings of chunks and the document's progress, in one transaction; a chunk
/// already embedded keeps its vector. Answers the number of embedded chunks.
pub async fn store_embeddings(
    db: &Db,
    document_id: &str,
    vectors: &[(String, Vec<u8>)],
    now: i64,
) -> DbResult<i64> {
    let mut tx = db.begin_write().await?;
    for (id, bytes) in vectors {
        sqlx::query(
            "UPDATE knowledge_chunks SET embedding = $2 WHERE id = $1 AND embedding IS NULL",
        )
        .bind(id)
        .bind(bytes.as_slice())
        .execute(&mut *tx)
        .await?;
    }
    let (done,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM knowledge_chunks WHERE document_id = $1 AND embedding IS NOT NULL",
    )
    .bind(document_id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE knowledge_documents SET progress_done = $2, error = NULL, updated_at = $3 WHERE id = $1",
    )
    .bind(document_id)
    .bind(done)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// The embeddings of a document's chunks: `(chunk id, bytes)`.
pub async fn chunk_embeddings(db: &Db, document_id: &str) -> DbResult<Vec<(String, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "SELECT id, embedding FROM knowledge_chunks WHERE document_id = $1 \
         AND embedding IS NOT NULL",
    )
    .bind(document_id)
    .fetch_all(db.pool())
    .await?)
}

/// Every chunk of a document, in order: `(id, text)`.
pub async fn chunk_texts(db: &Db, document_id: &str) -> DbResult<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT id, text FROM knowledge_chunks WHERE document_id = $1 ORDER BY position",
    )
    .bind(document_id)
    .fetch_all(db.pool())
    .await?)
}

/// A document's chunks, in order, and how many.
pub async fn chunks_of(
    db: &Db,
    document_id: &str,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<ChunkRow>, i64)> {
    let rows = sqlx::query_as(&format!(
        "SELECT {CHUNK_COLUMNS} FROM knowledge_chunks c JOIN knowledge_documents d \
         ON d.id = c.document_id WHERE c.document_id = $1 ORDER BY c.position LIMIT $2 OFFSET $3"
    ))
    .bind(document_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM knowledge_chunks WHERE document_id = $1")
            .bind(document_id)
            .fetch_one(db.pool())
            .await?;
    Ok((rows, total))
}

/// Chunks of ready documents of `base_id` among `ids`.
pub async fn ready_chunks(db: &Db, base_id: &str, ids: &[String]) -> DbResult<Vec<ChunkRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Ids are bound one by one; searches hydrate at most a few dozen. The base is checked
    // here, not in SQL: with `c.base_id = $1` in the query SQLite's planner (no statistics)
    // preferred the base's index over the primary key and read every chunk of the base — at
    // 100,000 chunks most of a search's time (docs/benchmarks.md).
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 1)).collect();
    let sql = format!(
        "SELECT {CHUNK_COLUMNS} FROM knowledge_chunks c JOIN knowledge_documents d \
         ON d.id = c.document_id WHERE c.id IN ({}) AND d.status = 'ready'",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, ChunkRow>(&sql);
    for id in ids {
        query = query.bind(id);
    }
    let mut rows = query.fetch_all(db.pool()).await?;
    rows.retain(|c| c.base_id == base_id);
    Ok(rows)
}

/// Ids of the chunks of `document_ids` (documents of `base_id`), for a filtered search.
pub async fn chunk_ids_of(
    db: &Db,
    base_id: &str,
    document_ids: &[String],
) -> DbResult<Vec<String>> {
    let mut ids = Vec::new();
    // Bound in batches: SQLite allows 32,766 parameters, PostgreSQL 65,535.
    for batch in document_ids.chunks(500) {
        // The base is checked here rather than in SQL, for the reason `ready_chunks` gives:
        // the (document_id, position) index reads only these documents' chunks.
        let placeholders: Vec<String> = (0..batch.len()).map(|i| format!("${}", i + 1)).collect();
        let sql = format!(
            "SELECT id, base_id FROM knowledge_chunks WHERE document_id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_as::<_, (String, String)>(&sql);
        for id in batch {
            query = query.bind(id);
        }
        ids.extend(
            query
                .fetch_all(db.pool())
                .await?
                .into_iter()
                .filter(|(_, base)| base == base_id)
                .map(|(id, _)| id),
        );
    }
    Ok(ids)
}

/// What the base's ready documents look like now — (documents, chunks, latest change) — so a
/// copy of its vectors can tell whether it is still current.
pub async fn vector_stamp(db: &Db, base_id: &str) -> DbResult<crate::vector_cache::Stamp> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), CAST(COALESCE(SUM(chunk_count), 0) AS BIGINT), \
         CAST(COALESCE(MAX(updated_at), 0) AS BIGINT) \
         FROM knowledge_documents WHERE base_id = $1 AND status = 'ready'",
    )
    .bind(base_id)
    .fetch_one(db.pool())
    .await?)
}

/// The embeddings of a base's ready documents' chunks: `(chunk id, bytes)`.
pub async fn base_vectors(db: &Db, base_id: &str) -> DbResult<Vec<(String, Vec<u8>)>> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.embedding FROM knowledge_chunks c JOIN knowledge_documents d \
         ON d.id = c.document_id WHERE c.base_id = $1 AND d.status = 'ready' \
         AND c.embedding IS NOT NULL",
    )
    .bind(base_id)
    .fetch_all(db.pool())
    .await?)
}

// ---- jobs -----------------------------------------------------------------------------------

/// Claims one due job for `worker` until `lease_until`: a job not claimed, or whose lease ran
/// out. Two instances racing for the same job: one update wins, the other changes no row.
pub async fn claim_job(
    db: &Db,
    worker: &str,
    now: i64,
    lease_until: i64,
) -> DbResult<Option<JobRow>> {
    let candidates: Vec<(String,)> = sqlx::query_as(
        "SELECT document_id FROM knowledge_jobs WHERE run_after <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) ORDER BY run_after LIMIT 8",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    for (document_id,) in candidates {
        let won = sqlx::query(
            "UPDATE knowledge_jobs SET lease_owner = $2, lease_until = $3, attempts = attempts + 1 \
             WHERE document_id = $1 AND run_after <= $4 AND (lease_until IS NULL OR lease_until < $4)",
        )
        .bind(&document_id)
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .execute(db.pool())
        .await?;
        if won.rows_affected() == 1 {
            return Ok(sqlx::query_as(
                "SELECT document_id, base_id, attempts FROM knowledge_jobs WHERE document_id = $1",
            )
            .bind(&document_id)
            .fetch_optional(db.pool())
            .await?);
        }
    }
    Ok(None)
}

/// Extends `worker`'s lease on a job; false when it lost it (taken over, or deleted).
pub async fn renew_lease(db: &Db, document_id: &str, worker: &str, until: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE knowledge_jobs SET lease_until = $3 WHERE document_id = $1 AND lease_owner = $2",
    )
    .bind(document_id)
    .bind(worker)
    .bind(until)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Releases a job for a retry at `run_after`, with why it failed.
pub async fn retry_job(
    db: &Db,
    document_id: &str,
    worker: &str,
    run_after: i64,
    error: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE knowledge_jobs SET lease_owner = NULL, lease_until = NULL, run_after = $3, \
         last_error = $4 WHERE document_id = $1 AND lease_owner = $2",
    )
    .bind(document_id)
    .bind(worker)
    .bind(run_after)
    .bind(error)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Removes a finished (or given up) job.
pub async fn finish_job(db: &Db, document_id: &str, worker: &str) -> DbResult<()> {
    sqlx::query("DELETE FROM knowledge_jobs WHERE document_id = $1 AND lease_owner = $2")
        .bind(document_id)
        .bind(worker)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Jobs waiting or running (for gauges).
pub async fn job_count(db: &Db) -> DbResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM knowledge_jobs")
        .fetch_one(db.pool())
        .await?;
    Ok(n)
}

// ---- conversations -------------------------------------------------------------------------

/// The bases `user_id` attached to a conversation.
pub async fn conversation_bases(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT base_id FROM knowledge_conversation_bases WHERE user_id = $1 AND conversation_id = $2 \
         ORDER BY created_at, base_id",
    )
    .bind(user_id)
    .bind(conversation_id)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Replaces the bases attached to a conversation.
pub async fn set_conversation_bases(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
    base_ids: &[String],
    now: i64,
) -> DbResult<()> {
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "DELETE FROM knowledge_conversation_bases WHERE user_id = $1 AND conversation_id = $2",
    )
    .bind(user_id)
    .bind(conversation_id)
    .execute(&mut *tx)
    .await?;
    for (i, base_id) in base_ids.iter().enumerate() {
        sqlx::query(
            "INSERT INTO knowledge_conversation_bases (user_id, conversation_id, base_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(user_id)
        .bind(conversation_id)
        .bind(base_id)
        .bind(now + i as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
