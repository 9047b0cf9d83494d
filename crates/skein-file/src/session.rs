//! Upload sessions: a large file sent in numbered parts, each of which may be sent again
//! after a dropped connection, then assembled and checked like any other upload.
//!
//! Parts are objects of their own under `uploads/<id>/` in the store. On the disk the client
//! sends them through this server; on S3 (with `file.s3.presign_uploads`) it gets presigned
//! `PUT` URLs and sends them straight to the store. Completing reads the parts back in order
//! through the one upload path (`upload::store`), so the purpose's size and type limits, the
//! sniffed type, the quota and per-owner dedup apply exactly as to a form upload; on S3 that
//! path writes the assembled file with S3 multipart underneath. The price of one path is that
//! completing moves the bytes store → server → store once more.
//!
//! **Invariant:** a session's part folder is queued in `file_sweep` for the session's expiry
//! in the transaction that creates it, so parts nobody completes or aborts are swept.

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use skein_core::api::{FileMeta, FilePurpose, NewFile};
use skein_core::{ApiError, ApiResult, ids};
use sqlx::FromRow;

use crate::errors;
use crate::storage::{Presigned, part_key, upload_prefix};
use crate::{FileService, store, upload};

/// The smallest part size a session may have (but a file smaller than it is one part).
pub const MIN_PART: u64 = 1024 * 1024;
/// The largest part size a session may have.
pub const MAX_PART: u64 = 64 * 1024 * 1024;
/// The most parts a session may have (S3's own limit on multipart uploads).
pub const MAX_PARTS: u64 = 10_000;

/// A row of `file_uploads`.
#[derive(Debug, Clone, FromRow)]
pub struct UploadRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Safe name of the file to be.
    pub name: String,
    /// Purpose (wire name).
    pub purpose: String,
    /// Bytes the whole file has.
    pub size: i64,
    /// Bytes every part but the last has.
    pub part_size: i64,
    /// Parts.
    pub part_count: i64,
    /// `open` or `completing`.
    pub state: String,
    /// Created, ms.
    pub created_at: i64,
    /// Expires, ms.
    pub expires_at: i64,
}

impl UploadRow {
    /// The exact size part `number` must have.
    pub fn part_len(&self, number: u32) -> u64 {
        let (size, part) = (self.size as u64, self.part_size as u64);
        let start = u64::from(number - 1) * part;
        part.min(size.saturating_sub(start))
    }

    /// Whether `number` names one of this session's parts.
    pub fn has_part(&self, number: u32) -> bool {
        number >= 1 && i64::from(number) <= self.part_count
    }
}

const COLUMNS: &str =
    "id, user_id, name, purpose, size, part_size, part_count, state, created_at, expires_at";

/// What a new session is for.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Owner.
    pub owner_id: String,
    /// Name of the file to be.
    pub name: String,
    /// Its purpose.
    pub purpose: FilePurpose,
    /// Its exact size in bytes.
    pub size: u64,
    /// Bytes per part (`file.upload_part_bytes` when `None`).
    pub part_size: Option<u64>,
}

/// A part as stored: its number, its size and whether that is the size it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPart {
    /// 1-based.
    pub number: u32,
    /// Bytes stored.
    pub size: u64,
    /// Whether `size` is what this part must be (a wrong one is sent again).
    pub complete: bool,
}

impl FileService {
    /// Opens a session, refusing at once a file its purpose or the quota would refuse.
    pub async fn create_upload(&self, new: NewSession) -> ApiResult<UploadRow> {
        let limit = self.config.max_bytes(new.purpose);
        if new.size == 0 {
            return Err(ApiError::invalid_field(
                "size",
                "size is the file's size in bytes, at least 1.",
                "size 为文件的字节数，至少为 1。",
            ));
        }
        if new.size > limit {
            return Err(errors::too_large(limit));
        }
        let (used, _) = store::usage(&self.db, &new.owner_id).await?;
        let used = u64::try_from(used).unwrap_or(0);
        if used + new.size > self.config.quota_bytes {
            return Err(errors::over_quota(self.config.quota_bytes, used));
        }
        let part_size = new.part_size.unwrap_or(self.config.upload_part_bytes);
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(ApiError::invalid_field(
                "part_size",
                format!("part_size is between {MIN_PART} and {MAX_PART} bytes."),
                format!("part_size 须在 {MIN_PART} 到 {MAX_PART} 字节之间。"),
            ));
        }
        let part_count = new.size.div_ceil(part_size);
        if part_count > MAX_PARTS {
            return Err(ApiError::invalid_field(
                "part_size",
                format!("At most {MAX_PARTS} parts: choose a larger part_size."),
                format!("分片最多 {MAX_PARTS} 个，请增大 part_size。"),
            ));
        }
        let now = ids::now_ms();
        let open: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM file_uploads WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(&new.owner_id)
        .bind(now)
        .fetch_one(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        let max_open = i64::from(self.config.max_open_uploads);
        if open.0 >= max_open {
            return Err(errors::too_many_uploads(max_open));
        }
        let ttl_ms = i64::try_from(self.config.upload_session_ttl_secs)
            .unwrap_or(86_400)
            .saturating_mul(1000);
        let row = UploadRow {
            id: ids::new_id(),
            user_id: new.owner_id,
            name: crate::sniff::safe_name(&new.name),
            purpose: new.purpose.as_str().to_string(),
            size: i64::try_from(new.size).unwrap_or(i64::MAX),
            part_size: i64::try_from(part_size).unwrap_or(i64::MAX),
            part_count: i64::try_from(part_count).unwrap_or(i64::MAX),
            state: "open".into(),
            created_at: now,
            expires_at: now + ttl_ms,
        };
        let mut tx = self.db.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO file_uploads ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&row.id)
        .bind(&row.user_id)
        .bind(&row.name)
        .bind(&row.purpose)
        .bind(row.size)
        .bind(row.part_size)
        .bind(row.part_count)
        .bind(&row.state)
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(skein_db::DbError::from)?;
        store::queue_sweep(&mut *tx, &upload_prefix(&row.id), row.expires_at).await?;
        tx.commit().await.map_err(skein_db::DbError::from)?;
        Ok(row)
    }

    /// The owner's unexpired session, or a 404.
    pub async fn upload_session(&self, user_id: &str, id: &str) -> ApiResult<UploadRow> {
        if !ids::looks_like_id(id) {
            return Err(errors::session_not_found());
        }
        let row: Option<UploadRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM file_uploads WHERE id = $1 AND user_id = $2 AND expires_at > $3"
        ))
        .bind(id)
        .bind(user_id)
        .bind(ids::now_ms())
        .fetch_optional(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        row.ok_or_else(errors::session_not_found)
    }

    /// The owner's unexpired sessions, newest first.
    pub async fn upload_sessions(&self, user_id: &str) -> ApiResult<Vec<UploadRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM file_uploads WHERE user_id = $1 AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC"
        ))
        .bind(user_id)
        .bind(ids::now_ms())
        .fetch_all(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?)
    }

    /// The parts in the store, by number (a part sent with the wrong size is listed as not
    /// complete, so the client sends it again).
    pub async fn stored_parts(&self, row: &UploadRow) -> ApiResult<Vec<StoredPart>> {
        let mut parts: Vec<StoredPart> = self
            .storage
            .list_sizes(&upload_prefix(&row.id))
            .await?
            .into_iter()
            .filter_map(|(name, size)| {
                let number: u32 = name.parse().ok()?;
                row.has_part(number).then(|| StoredPart {
                    number,
                    size,
                    complete: size == row.part_len(number),
                })
            })
            .collect();
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    /// Where part `number` is sent: a presigned URL of the store (S3 with
    /// `file.s3.presign_uploads`), or `None` for this server's own part route.
    pub async fn part_target(&self, row: &UploadRow, number: u32) -> ApiResult<Option<Presigned>> {
        if !row.has_part(number) {
            return Err(errors::no_such_part(row.part_count));
        }
        if !self.config.s3.presign_uploads {
            return Ok(None);
        }
        // A URL never outlives its session: the sweep at expiry must find every part a
        // client could still PUT.
        let left_ms = row.expires_at.saturating_sub(ids::now_ms());
        let left = std::time::Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        if left < std::time::Duration::from_secs(1) {
            return Err(ApiError::not_found("Upload", "上传"));
        }
        Ok(self
            .storage
            .presign_write(&part_key(&row.id, number), self.presign_ttl().min(left))
            .await?)
    }

    /// How long presigned URLs live.
    pub(crate) fn presign_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.s3.presign_ttl_secs)
    }

    /// Stores part `number` of the session from `body`, which must be exactly the part's
    /// size; a part sent again replaces the one before.
    pub async fn put_part<S, E>(&self, row: &UploadRow, number: u32, mut body: S) -> ApiResult<u64>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: std::fmt::Display,
    {
        if !row.has_part(number) {
            return Err(errors::no_such_part(row.part_count));
        }
        if row.state != "open" {
            return Err(errors::busy());
        }
        let expected = row.part_len(number);
        let key = part_key(&row.id, number);
        let idle = std::time::Duration::from_secs(self.config.upload_idle_secs);
        let mut writer = self.storage.writer(&key).await?;
        let mut size = 0u64;
        let result: ApiResult<()> = async {
            loop {
                let next = tokio::time::timeout(idle, body.next())
                    .await
                    .map_err(|_| errors::stalled(self.config.upload_idle_secs))?;
                let Some(chunk) = next else { break };
                let chunk = chunk.map_err(|e| {
                    ApiError::bad_request(
                        "upload_failed",
                        format!("Reading the part failed: {e}"),
                        format!("读取分片失败：{e}"),
                    )
                })?;
                size += chunk.len() as u64;
                if size > expected {
                    return Err(errors::part_size_wrong(number, expected));
                }
                writer
                    .write(chunk)
                    .await
                    .map_err(crate::storage::StorageError)?;
            }
            if size != expected {
                return Err(errors::part_size_wrong(number, expected));
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            let _ = writer.abort().await;
            // Whatever reached the store is not this part: drop it so the listing is honest.
            if let Err(e) = self.storage.delete(&key).await {
                tracing::debug!(error = %e, "dropping a failed part failed; the session's sweep will");
            }
            return Err(error);
        }
        writer.close().await.map_err(crate::storage::StorageError)?;
        Ok(size)
    }

    /// Assembles the session's parts into a file (limits, sniffing, quota and dedup as for
    /// any upload), then drops the session and its parts.
    pub async fn complete_upload(&self, user_id: &str, id: &str) -> ApiResult<FileMeta> {
        let row = self.upload_session(user_id, id).await?;
        let claimed = sqlx::query(
            "UPDATE file_uploads SET state = 'completing' WHERE id = $1 AND state = 'open'",
        )
        .bind(&row.id)
        .execute(self.db.pool())
        .await
        .map_err(skein_db::DbError::from)?;
        if claimed.rows_affected() == 0 {
            return Err(errors::busy());
        }
        let result = self.assemble(&row).await;
        match result {
            Ok(meta) => {
                self.drop_session(&row.id).await?;
                Ok(meta)
            }
            Err(error) => {
                // Open again: the client may send parts again, free room, or abort.
                let _ = sqlx::query("UPDATE file_uploads SET state = 'open' WHERE id = $1")
                    .bind(&row.id)
                    .execute(self.db.pool())
                    .await;
                Err(error)
            }
        }
    }

    async fn assemble(&self, row: &UploadRow) -> ApiResult<FileMeta> {
        let parts = self.stored_parts(row).await?;
        let complete: std::collections::HashSet<u32> = parts
            .iter()
            .filter(|p| p.complete)
            .map(|p| p.number)
            .collect();
        let missing: Vec<u32> = (1..=u32::try_from(row.part_count).unwrap_or(u32::MAX))
            .filter(|n| !complete.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(errors::upload_incomplete(row, &missing));
        }
        let storage = self.storage.clone();
        let id = row.id.clone();
        let lens: Vec<(u32, u64)> = (1..=u32::try_from(row.part_count).unwrap_or(0))
            .map(|n| (n, row.part_len(n)))
            .collect();
        // The parts one after another, each opened only when the one before is read.
        let body = futures::stream::iter(lens)
            // Boxed so the future's `Send` is proven here, for its concrete lifetimes.
            .then(move |(n, len)| open_part(storage.clone(), part_key(&id, n), len).boxed())
            .try_flatten()
            .boxed();
        let file = NewFile {
            owner_id: row.user_id.clone(),
            name: row.name.clone(),
            purpose: FilePurpose::parse(&row.purpose).unwrap_or(FilePurpose::Chat),
        };
        upload::store(self, file, body).await
    }

    /// Aborts the owner's session: its parts are removed.
    pub async fn abort_upload(&self, user_id: &str, id: &str) -> ApiResult<()> {
        let row = self.upload_session(user_id, id).await?;
        if row.state != "open" {
            return Err(errors::busy());
        }
        self.drop_session(&row.id).await
    }

    /// Deletes the session row and queues its parts for the sweeper now, in one transaction,
    /// then removes them at once (the queue row finishes the job if that fails). The queue row
    /// stays until every presigned URL the session gave out has expired, so a part PUT
    /// straight to the store after the session ended is swept too.
    async fn drop_session(&self, id: &str) -> ApiResult<()> {
        let prefix = upload_prefix(id);
        let mut tx = self.db.begin_write().await?;
        sqlx::query("DELETE FROM file_uploads WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(skein_db::DbError::from)?;
        store::queue_sweep(&mut *tx, &prefix, ids::now_ms()).await?;
        tx.commit().await.map_err(skein_db::DbError::from)?;
        match self.storage.delete(&prefix).await {
            Ok(()) if self.config.s3.presign_uploads => {
                let ttl_ms = i64::try_from(self.presign_ttl().as_millis()).unwrap_or(i64::MAX);
                store::queue_sweep(
                    self.db.pool(),
                    &prefix,
                    ids::now_ms().saturating_add(ttl_ms),
                )
                .await?
            }
            Ok(()) => store::unqueue_sweep(self.db.pool(), &prefix).await?,
            Err(error) => {
                tracing::warn!(%error, "removing an upload's parts failed; the sweeper will")
            }
        }
        Ok(())
    }
}

/// The bytes of one stored part, as the upload path reads them.
async fn open_part(
    storage: crate::storage::Storage,
    key: String,
    len: u64,
) -> ApiResult<futures::stream::BoxStream<'static, ApiResult<Bytes>>> {
    let stream = storage.read(&key, 0..len).await?;
    Ok(stream
        .map_err(|e| ApiError::internal(format!("reading a part: {e}")))
        .boxed())
}

/// Deletes the rows of sessions past their expiry (their parts are swept by their queue row).
pub(crate) async fn forget_expired(db: &skein_db::Db, now: i64) -> skein_db::DbResult<u64> {
    let done = sqlx::query("DELETE FROM file_uploads WHERE expires_at <= $1")
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(size: i64, part_size: i64) -> UploadRow {
        UploadRow {
            id: "u".into(),
            user_id: "a".into(),
            name: "n".into(),
            purpose: "chat".into(),
            size,
            part_size,
            part_count: (size + part_size - 1) / part_size,
            state: "open".into(),
            created_at: 0,
            expires_at: 0,
        }
    }

    #[test]
    fn part_lengths_cover_the_file_exactly() {
        let r = row(10, 4);
        assert_eq!(r.part_count, 3);
        assert_eq!((r.part_len(1), r.part_len(2), r.part_len(3)), (4, 4, 2));
        assert!(r.has_part(3) && !r.has_part(0) && !r.has_part(4));
        let exact = row(8, 4);
        assert_eq!(exact.part_len(2), 4);
    }
}
