//! The ingestion worker: claims due jobs from the `knowledge_jobs` queue (any instance may;
//! a lease that runs out hands the job to another), and brings each document to `ready`
//! through steps that each commit what they did, so a job cut off anywhere resumes from the
//! last commit:
//!
//! 1. **extract and chunk** — the file is read through the File service (into memory, or a
//!    PDF over [`extract::LARGE_PDF_BYTES`] into a scratch file that poppler reads a range of
//!    pages at a time, so its memory stays flat), extracted on the blocking pool and cut into
//!    chunks, written in one transaction that also marks the
//!    document chunked (a resumed job skips this step; a chunk can never be written twice);
//! 2. **embed** — chunks still without a vector, in batches, through the relay, billed to the
//!    base's owner; each batch is committed with the document's progress, so a failing
//!    upstream costs only the batch in flight and the retry embeds only what is missing;
//! 3. **publish** — the chunks enter the lexical index (and, on PostgreSQL, their vectors the
//!    pgvector table) in the same transaction that marks the document `ready`: before it,
//!    nothing of the document is searchable.
//!
//! A step that fails for a reason that may pass (the upstream, the file store) is retried
//! later with a growing wait; one that cannot pass (a damaged file, an unreadable format)
//! fails the document with a message in English and Chinese.

use futures::StreamExt;
use serde_json::json;
use skein_core::api::ByteStream;
use skein_core::i18n::Lang;
use skein_core::ids;
use skein_db::DbError;
use skein_text::chunk::{self as chunker, Block, ChunkConfig};
use skein_text::segment::Analyzer;
use tokio::io::AsyncWriteExt;

use crate::extract::{self, Format};
use crate::lexical::{self, IndexedChunk};
use crate::store::{self, DocumentRow, JobRow, NewChunk, NewParent};
use crate::{KnowledgeService, vector};

/// Why a job stopped.
#[derive(Debug)]
pub enum JobError {
    /// The document or its base was deleted meanwhile: nothing left to do.
    Gone,
    /// Another instance holds the job now.
    LostLease,
    /// It cannot succeed: the document fails with this message.
    Permanent(Message),
    /// It may succeed later: retried with this message shown meanwhile.
    Transient(Message),
}

/// A message for the document, in both languages.
#[derive(Debug, Clone)]
pub struct Message {
    /// A stable code (`extract_failed`, `embedding_failed`, ...).
    pub code: &'static str,
    /// English.
    pub en: String,
    /// Chinese.
    pub zh: String,
}

impl Message {
    fn new(code: &'static str, en: impl Into<String>, zh: impl Into<String>) -> Message {
        Message {
            code,
            en: en.into(),
            zh: zh.into(),
        }
    }

    /// As stored on the document.
    pub fn to_json(&self) -> String {
        json!({"code": self.code, "en": self.en, "zh": self.zh}).to_string()
    }
}

impl From<DbError> for JobError {
    fn from(e: DbError) -> Self {
        JobError::Transient(Message::new(
            "storage_unavailable",
            format!("The database could not be written: {e}"),
            format!("无法写入数据库：{e}"),
        ))
    }
}

impl KnowledgeService {
    /// Runs due jobs one after another until none is left.
    pub async fn run_due_jobs(&self) {
        loop {
            let now = ids::now_ms();
            let job =
                match store::claim_job(&self.db, &self.worker_id, now, self.lease_until()).await {
                    Ok(Some(job)) => job,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "knowledge jobs cannot be claimed");
                        return;
                    }
                };
            self.run_job(job).await;
        }
    }

    fn lease_until(&self) -> i64 {
        let lease_ms =
            i64::try_from(self.config.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        ids::now_ms().saturating_add(lease_ms)
    }

    async fn run_job(&self, job: JobRow) {
        let outcome = self.index(&job).await;
        let now = ids::now_ms();
        let result = match outcome {
            Ok(()) | Err(JobError::Gone) => {
                store::finish_job(&self.db, &job.document_id, &self.worker_id).await
            }
            Err(JobError::LostLease) => Ok(()),
            Err(JobError::Permanent(message)) => {
                tracing::info!(document_id = %job.document_id, code = message.code, "document failed: {}", message.en);
                self.fail(&job, &message, now).await
            }
            Err(JobError::Transient(message)) => {
                let attempts = u32::try_from(job.attempts).unwrap_or(u32::MAX);
                if attempts >= self.config.max_attempts {
                    tracing::warn!(document_id = %job.document_id, attempts, "document given up: {}", message.en);
                    self.fail(&job, &message, now).await
                } else {
                    let wait_secs = self
                        .config
                        .retry_base_secs
                        .saturating_mul(1u64 << attempts.saturating_sub(1).min(10));
                    let wait_ms = i64::try_from(wait_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
                    tracing::info!(document_id = %job.document_id, attempts, wait_secs, "document step failed, retrying: {}", message.en);
                    let retrying = Message::new(
                        message.code,
                        format!("{} (retrying)", message.en),
                        format!("{}（将重试）", message.zh),
                    );
                    let noted = self.note_error(&job.document_id, &retrying, now).await;
                    match noted {
                        Ok(()) => {
                            store::retry_job(
                                &self.db,
                                &job.document_id,
                                &self.worker_id,
                                now.saturating_add(wait_ms),
                                &message.en,
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    }
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(document_id = %job.document_id, error = %e, "knowledge job state not saved");
        }
    }

    async fn fail(&self, job: &JobRow, message: &Message, now: i64) -> Result<(), DbError> {
        if let Some(doc) = store::document_by_id(&self.db, &job.document_id).await? {
            store::set_status(
                &self.db,
                &doc.id,
                "failed",
                (doc.progress_done, doc.progress_total),
                Some(&message.to_json()),
                now,
            )
            .await?;
        }
        store::finish_job(&self.db, &job.document_id, &self.worker_id).await
    }

    async fn note_error(
        &self,
        document_id: &str,
        message: &Message,
        now: i64,
    ) -> Result<(), DbError> {
        skein_db::sqlx::query(
            "UPDATE knowledge_documents SET error = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(document_id)
        .bind(message.to_json())
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn renew(&self, document_id: &str) -> Result<(), JobError> {
        if store::renew_lease(&self.db, document_id, &self.worker_id, self.lease_until()).await? {
            Ok(())
        } else {
            Err(JobError::LostLease)
        }
    }

    /// Brings one document to `ready` (see the module doc).
    async fn index(&self, job: &JobRow) -> Result<(), JobError> {
        let doc = store::document_by_id(&self.db, &job.document_id)
            .await?
            .ok_or(JobError::Gone)?;
        let base = store::base(&self.db, &doc.base_id)
            .await?
            .ok_or(JobError::Gone)?;
        if doc.chunk_count.is_none() {
            self.chunk_document(&doc, &base).await?;
            self.renew(&doc.id).await?;
        }
        if let Some(model) = &base.embedding_model {
            self.embed_document(&doc, &base.owner_id, model).await?;
        }
        self.publish(&doc).await
    }

    async fn chunk_document(
        &self,
        doc: &DocumentRow,
        base: &store::BaseRow,
    ) -> Result<(), JobError> {
        let now = ids::now_ms();
        if !store::set_status(&self.db, &doc.id, "extracting", (0, 0), None, now).await? {
            return Err(JobError::Gone);
        }
        let format = Format::from_file_name(&doc.name)
            .or_else(|| Format::from_mime(&doc.content_type))
            .ok_or_else(|| {
                JobError::Permanent(Message::new(
                    "unsupported_format",
                    format!("Documents of type {} cannot be read yet (PDF, Word, PowerPoint, EPUB, HTML, Markdown, text, CSV and JSON can).", doc.content_type),
                    format!("暂不支持读取 {} 类型的文档（支持 PDF、Word、PowerPoint、EPUB、HTML、Markdown、文本、CSV 和 JSON）。", doc.content_type),
                ))
            })?;
        let source = self.read_document(doc, format).await?;
        let config = ChunkConfig {
            max_tokens: usize::try_from(base.chunk_max_tokens).unwrap_or(512),
            overlap_tokens: usize::try_from(base.chunk_overlap_tokens).unwrap_or(0),
        };
        // Parent-child chunks: the parents are cut from the same blocks, larger and without
        // overlap; each small chunk belongs to the parent its text overlaps most.
        let parent_tokens = base
            .parent_chunk_tokens
            .and_then(|p| usize::try_from(p).ok())
            .filter(|p| *p > 0);
        let chunks = tokio::task::spawn_blocking(move || {
            source.extract(format).map(|blocks| {
                let children = chunker::chunk(&blocks, config);
                let parents = parent_tokens
                    .map(|max_tokens| {
                        chunker::chunk(
                            &blocks,
                            ChunkConfig {
                                max_tokens,
                                overlap_tokens: 0,
                            },
                        )
                    })
                    .unwrap_or_default();
                (children, parents)
            })
        })
        .await
        .map_err(|e| {
            JobError::Permanent(Message::new(
                "extract_failed",
                format!("The document could not be read: {e}"),
                format!("无法读取该文档：{e}"),
            ))
        })?
        .map_err(|e| {
            JobError::Permanent(Message::new(
                "extract_failed",
                e.message(Lang::En),
                e.message(Lang::Zh),
            ))
        })?;
        let (chunks, parent_chunks) = chunks;
        let parents: Vec<NewParent> = parent_chunks
            .iter()
            .enumerate()
            .map(|(i, parent)| NewParent {
                id: ids::new_id(),
                position: i64::try_from(i).unwrap_or(i64::MAX),
                text: parent.indexed_text(),
                headings: serde_json::to_string(&parent.headings).unwrap_or_else(|_| "[]".into()),
                pages: parent.pages.map(|(a, b)| (i64::from(a), i64::from(b))),
                tokens: i64::try_from(parent.tokens).unwrap_or(i64::MAX),
            })
            .collect();
        let rows: Vec<NewChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| NewChunk {
                id: ids::new_id(),
                position: i64::try_from(i).unwrap_or(i64::MAX),
                text: chunk.indexed_text(),
                headings: serde_json::to_string(&chunk.headings).unwrap_or_else(|_| "[]".into()),
                pages: chunk.pages.map(|(a, b)| (i64::from(a), i64::from(b))),
                tokens: i64::try_from(chunk.tokens).unwrap_or(i64::MAX),
                parent_id: parent_of(chunk, &parent_chunks)
                    .and_then(|p| parents.get(p))
                    .map(|p| p.id.clone()),
            })
            .collect();
        let status = if base.embedding_model.is_some() {
            "embedding"
        } else {
            "indexing"
        };
        // False when the document was deleted meanwhile, or another worker chunked it first.
        store::store_chunks_with_parents(&self.db, doc, &rows, &parents, status, ids::now_ms())
            .await?;
        Ok(())
    }

    /// The document's content: in memory, or, for a large PDF when poppler can read it from
    /// disk, in a scratch file (so a PDF of hundreds of megabytes costs disk, not memory).
    async fn read_document(&self, doc: &DocumentRow, format: Format) -> Result<Source, JobError> {
        let large = u64::try_from(doc.size).unwrap_or(0) > extract::LARGE_PDF_BYTES;
        if format != Format::Pdf || !large || !extract::pdftotext_available() {
            return self.read_file(doc).await.map(Source::Memory);
        }
        let limit = self.config.max_pdf_bytes;
        let scratch = tempfile::Builder::new()
            .prefix("skein-knowledge-")
            .suffix(".pdf")
            .tempfile()
            .map_err(|e| scratch_failed(&e))?;
        let (file, path) = scratch.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut body = self.open_file(doc).await?;
        let mut written: u64 = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| file_unreadable(&e))?;
            written += piece.len() as u64;
            if written > limit {
                return Err(too_large(limit));
            }
            file.write_all(&piece)
                .await
                .map_err(|e| scratch_failed(&e))?;
        }
        file.flush().await.map_err(|e| scratch_failed(&e))?;
        Ok(Source::Spooled(path))
    }

    async fn open_file(&self, doc: &DocumentRow) -> Result<ByteStream, JobError> {
        let content = self
            .files
            .open(&doc.file_owner_id, &doc.file_id, None)
            .await
            .map_err(|e| {
                if e.status().is_client_error() {
                    JobError::Permanent(Message::new(
                        "file_missing",
                        "The document's file was deleted.",
                        "该文档的文件已被删除。",
                    ))
                } else {
                    JobError::Transient(Message::new(
                        "file_unavailable",
                        "The file store could not be read.",
                        "无法读取文件存储。",
                    ))
                }
            })?;
        Ok(content.body)
    }

    async fn read_file(&self, doc: &DocumentRow) -> Result<Vec<u8>, JobError> {
        let limit = self.config.max_document_bytes;
        let mut body = self.open_file(doc).await?;
        let mut bytes = Vec::new();
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| file_unreadable(&e))?;
            if (bytes.len() + piece.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&piece);
        }
        Ok(bytes)
    }

    async fn embed_document(
        &self,
        doc: &DocumentRow,
        owner_id: &str,
        model: &str,
    ) -> Result<(), JobError> {
        let batch = i64::from(self.config.embed_batch);
        loop {
            let pending = store::unembedded(&self.db, &doc.id, batch).await?;
            if pending.is_empty() {
                return Ok(());
            }
            let inputs = pending.iter().map(|(_, text)| text.clone()).collect();
            let caller = Self::caller(owner_id, &ids::new_id(), None);
            let vectors = self.embed(caller, model, inputs).await.map_err(|e| {
                JobError::Transient(Message::new(
                    "embedding_failed",
                    format!(
                        "The embedding model {model} failed: {}",
                        e.message(Lang::En)
                    ),
                    format!("向量模型 {model} 调用失败：{}", e.message(Lang::Zh)),
                ))
            })?;
            if vectors.len() != pending.len()
                || vectors
                    .iter()
                    .any(|v| v.is_empty() || v.iter().any(|x| !x.is_finite()))
            {
                return Err(JobError::Transient(Message::new(
                    "embedding_failed",
                    format!("The embedding model {model} answered vectors that cannot be used."),
                    format!("向量模型 {model} 返回的向量无法使用。"),
                )));
            }
            let vectors: Vec<(String, Vec<u8>)> = pending
                .into_iter()
                .zip(&vectors)
                .map(|((id, _), v)| (id, vector::encode(v)))
                .collect();
            self.renew(&doc.id).await?;
            store::store_embeddings(&self.db, &doc.id, &vectors, ids::now_ms()).await?;
        }
    }

    /// Adds the chunks to the lexical index and marks the document ready, in one transaction.
    async fn publish(&self, doc: &DocumentRow) -> Result<(), JobError> {
        let texts = store::chunk_texts(&self.db, &doc.id).await?;
        let document_id = doc.id.clone();
        let count = i64::try_from(texts.len()).unwrap_or(i64::MAX);
        let indexed: Vec<IndexedChunk> = tokio::task::spawn_blocking(move || {
            let analyzer = Analyzer::default();
            texts
                .into_iter()
                .map(|(chunk_id, text)| IndexedChunk {
                    chunk_id,
                    document_id: document_id.clone(),
                    terms: analyzer.terms(&text),
                })
                .collect()
        })
        .await
        .map_err(|e| {
            JobError::Transient(Message::new(
                "index_failed",
                format!("Indexing stopped: {e}"),
                format!("索引中断：{e}"),
            ))
        })?;
        // Read before the transaction: the document's vectors for pgvector (PostgreSQL).
        let vectors = if self.db.backend() == skein_db::Backend::Postgres {
            store::chunk_embeddings(&self.db, &doc.id).await?
        } else {
            Vec::new()
        };
        self.renew(&doc.id).await?;
        let mut tx = self.db.begin_write().await.map_err(JobError::from)?;
        let marked = skein_db::sqlx::query(
            "UPDATE knowledge_documents SET status = 'ready', progress_done = $2, progress_total = $2, \
             error = NULL, updated_at = $3 WHERE id = $1 AND chunk_count IS NOT NULL",
        )
        .bind(&doc.id)
        .bind(count)
        .bind(ids::now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| JobError::from(DbError::from(e)))?;
        if marked.rows_affected() != 1 {
            return Err(JobError::Gone);
        }
        lexical::insert_in(self.db.backend(), &mut tx, &doc.base_id, &indexed).await?;
        crate::pgvector::insert_in(self.db.backend(), &mut tx, &doc.base_id, &doc.id, &vectors)
            .await?;
        tx.commit()
            .await
            .map_err(|e| JobError::from(DbError::from(e)))?;
        Ok(())
    }
}

/// The index of the parent whose byte range overlaps `chunk`'s most (parents are in document
/// order and do not overlap one another); `None` without parents.
fn parent_of(chunk: &chunker::Chunk, parents: &[chunker::Chunk]) -> Option<usize> {
    if parents.is_empty() {
        return None;
    }
    // The last parent starting at or before the chunk, and the ones after it that it reaches.
    let first = parents
        .partition_point(|p| p.start <= chunk.start)
        .saturating_sub(1);
    let overlap = |p: &chunker::Chunk| {
        chunk
            .end
            .min(p.end)
            .saturating_sub(chunk.start.max(p.start))
    };
    let mut best = first;
    for (i, parent) in parents.iter().enumerate().skip(first) {
        if parent.start >= chunk.end && i > first {
            break;
        }
        if overlap(parent) > overlap(&parents[best]) {
            best = i;
        }
    }
    Some(best)
}

/// A document's content, as the worker read it.
enum Source {
    /// In memory.
    Memory(Vec<u8>),
    /// A large PDF in a scratch file, removed when this is dropped.
    Spooled(tempfile::TempPath),
}

impl Source {
    /// Its blocks (blocking work: run it off the async workers).
    fn extract(&self, format: Format) -> Result<Vec<Block>, extract::ExtractError> {
        match self {
            Source::Memory(bytes) => extract::extract(format, bytes),
            // Spooled only when poppler was found; if it went away since, the file is not read
            // into memory after all (it is past the in-memory limit): the document fails and
            // says why.
            Source::Spooled(path) => extract::extract_pdf_file(path).unwrap_or_else(|| {
                Err(extract::ExtractError::corrupt(
                    format,
                    "poppler's pdftotext is needed for a PDF this large and could not be run",
                ))
            }),
        }
    }
}

fn too_large(limit: u64) -> JobError {
    JobError::Permanent(Message::new(
        "document_too_large",
        format!("The document is larger than the {limit} bytes indexed."),
        format!("文档超过了可索引的 {limit} 字节上限。"),
    ))
}

fn file_unreadable(e: &impl std::fmt::Display) -> JobError {
    JobError::Transient(Message::new(
        "file_unavailable",
        format!("The file could not be read: {e}"),
        format!("无法读取文件：{e}"),
    ))
}

fn scratch_failed(e: &std::io::Error) -> JobError {
    JobError::Transient(Message::new(
        "scratch_unavailable",
        format!("The document could not be copied to the temporary folder: {e}"),
        format!("无法将文档复制到临时目录：{e}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_text::chunk::Block;

    #[test]
    fn each_small_chunk_belongs_to_the_parent_it_overlaps_most() {
        let sentence =
            |i: usize| format!("Sentence number {i} says something about harbors and ferries.");
        let mut blocks = vec![Block::heading(1, "First")];
        blocks.extend((0..12).map(|i| Block::paragraph(sentence(i))));
        blocks.push(Block::heading(1, "Second"));
        blocks.extend((12..24).map(|i| Block::paragraph(sentence(i))));
        let small = chunker::chunk(
            &blocks,
            ChunkConfig {
                max_tokens: 32,
                overlap_tokens: 8,
            },
        );
        let large = chunker::chunk(
            &blocks,
            ChunkConfig {
                max_tokens: 400,
                overlap_tokens: 0,
            },
        );
        assert_eq!(large.len(), 2, "{large:?}");
        assert!(small.len() > 4);
        for chunk in &small {
            let parent = &large[parent_of(chunk, &large).unwrap()];
            assert_eq!(parent.headings, chunk.headings);
            // The small chunk's last sentence is in its parent.
            let last = chunk.text.lines().last().unwrap();
            assert!(parent.text.contains(last), "{last} / {}", parent.text);
        }
        assert_eq!(parent_of(&small[0], &[]), None);
    }
}
