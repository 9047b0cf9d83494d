//! An upload, from the first byte to a committed file: streamed to a temporary key while it
//! is hashed and its head sniffed, checked against its purpose's size and type limits and the
//! owner's quota, then committed (moved to its object key, or dropped for the owner's
//! existing object with the same content) and recorded in one transaction.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use skein_core::api::{FileMeta, NewFile};
use skein_core::{ApiError, ApiResult, ids};

use crate::errors;
use crate::sniff::{self, HEAD_BYTES, Kind, Sniffed};
use crate::storage::{object_key, tmp_key};
use crate::{FileService, TMP_GRACE_MS, images, store};

/// What the bytes turned out to be.
struct Received {
    size: u64,
    sha256: String,
    sniffed: Sniffed,
}

/// Stores `body` as `file` and answers its metadata.
pub(crate) async fn store<S, E>(svc: &FileService, file: NewFile, body: S) -> ApiResult<FileMeta>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: Into<ApiError>,
{
    let name = sniff::safe_name(&file.name);
    let limit = svc.config.max_bytes(file.purpose);
    let quota = svc.config.quota_bytes;
    let (used, _) = store::usage(&svc.db, &file.owner_id).await?;
    let used = u64::try_from(used).unwrap_or(0);
    let tmp = tmp_key(&ids::new_id());
    // Queued before the first byte is written: if this process dies mid-upload, the sweeper
    // removes the partial key later.
    store::queue_sweep(svc.db.pool(), &tmp, ids::now_ms() + TMP_GRACE_MS).await?;
    let received = match receive(svc, &tmp, &name, &file, body, limit, quota, used).await {
        Ok(received) => received,
        Err(error) => {
            discard(svc, &tmp).await;
            return Err(error);
        }
    };
    match commit(svc, &tmp, &name, &file, &received, quota).await {
        Ok(meta) => Ok(meta),
        Err(error) => {
            discard(svc, &tmp).await;
            Err(error)
        }
    }
}

/// Streams the body to `tmp`, hashing it and sniffing its head; refuses it as soon as it is
/// too large, over quota, or of a kind the purpose does not take.
#[allow(clippy::too_many_arguments)]
async fn receive<S, E>(
    svc: &FileService,
    tmp: &str,
    name: &str,
    file: &NewFile,
    mut body: S,
    limit: u64,
    quota: u64,
    used: u64,
) -> ApiResult<Received>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: Into<ApiError>,
{
    let mut writer = svc.storage.writer(tmp).await?;
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(HEAD_BYTES);
    let mut sniffed: Option<Sniffed> = None;
    let mut size: u64 = 0;
    let idle = std::time::Duration::from_secs(svc.config.upload_idle_secs);
    let result: ApiResult<()> = async {
        loop {
            let next = tokio::time::timeout(idle, body.next())
                .await
                .map_err(|_| errors::stalled(svc.config.upload_idle_secs))?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(Into::into)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(errors::too_large(limit));
            }
            if used + size > quota {
                return Err(errors::over_quota(quota, used));
            }
            if sniffed.is_none() {
                let take = (HEAD_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() >= HEAD_BYTES {
                    sniffed = Some(check_kind(file, &head, name)?);
                }
            }
            hasher.update(&chunk);
            writer
                .write(chunk)
                .await
                .map_err(crate::storage::StorageError)?;
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        let _ = writer.abort().await;
        return Err(error);
    }
    if size == 0 {
        let _ = writer.abort().await;
        return Err(errors::empty());
    }
    let sniffed = match sniffed {
        Some(s) => s,
        None => match check_kind(file, &head, name) {
            Ok(s) => s,
            Err(error) => {
                let _ = writer.abort().await;
                return Err(error);
            }
        },
    };
    writer.close().await.map_err(crate::storage::StorageError)?;
    Ok(Received {
        size,
        sha256: hex::encode(hasher.finalize()),
        sniffed,
    })
}

fn check_kind(file: &NewFile, head: &[u8], name: &str) -> ApiResult<Sniffed> {
    let sniffed = sniff::sniff(head, name);
    if !sniff::accepts(file.purpose, sniffed.kind) {
        return Err(errors::refused(file.purpose, &sniffed));
    }
    Ok(sniffed)
}

/// Records the file: on the owner's existing object with this content (the temporary key is
/// dropped), or on a new object the temporary key is moved to.
async fn commit(
    svc: &FileService,
    tmp: &str,
    name: &str,
    file: &NewFile,
    got: &Received,
    quota: u64,
) -> ApiResult<FileMeta> {
    let id = ids::new_id();
    let now = ids::now_ms();
    let purpose = file.purpose.as_str();
    let mut fresh_object: Option<String> = None;
    for _attempt in 0..2 {
        let existing = store::object_by_hash(svc.db.pool(), &file.owner_id, &got.sha256).await?;
        if let Some(object_id) = existing {
            let named = async {
                let mut tx = svc.db.begin_write().await?;
                store::insert_file(
                    &mut *tx,
                    &id,
                    &file.owner_id,
                    &object_id,
                    name,
                    purpose,
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok::<(), skein_db::DbError>(())
            }
            .await;
            match named {
                Ok(()) => {
                    discard(svc, tmp).await;
                    return finish(svc, &id, &file.owner_id, None).await;
                }
                // The object was swept between the read and the insert (its foreign key
                // refused the file): store the content anew.
                Err(error) => tracing::debug!(%error, "deduplicated object vanished; storing anew"),
            }
            continue;
        }
        let (used, _) = store::usage(&svc.db, &file.owner_id).await?;
        let used = u64::try_from(used).unwrap_or(0);
        if used + got.size > quota {
            return Err(errors::over_quota(quota, used));
        }
        let object_id = ids::new_id();
        let key = object_key(&object_id);
        // Queued before the key exists, taken off in the transaction that names it.
        store::queue_sweep(svc.db.pool(), &key, now + TMP_GRACE_MS).await?;
        svc.storage.commit(tmp, &key).await?;
        let mut tx = svc.db.begin_write().await?;
        let object = store::NewObject {
            id: &object_id,
            user_id: &file.owner_id,
            sha256: &got.sha256,
            size: i64::try_from(got.size).unwrap_or(i64::MAX),
            content_type: &got.sniffed.content_type,
            now,
        };
        let inserted = async {
            store::insert_object(&mut *tx, &object).await?;
            store::insert_file(
                &mut *tx,
                &id,
                &file.owner_id,
                &object_id,
                name,
                purpose,
                now,
            )
            .await?;
            store::unqueue_sweep(&mut *tx, &key).await?;
            store::unqueue_sweep(&mut *tx, tmp).await?;
            tx.commit().await?;
            Ok::<(), skein_db::DbError>(())
        }
        .await;
        match inserted {
            Ok(()) => {
                fresh_object = Some(object_id);
                break;
            }
            Err(error) if skein_db::is_unique_violation(&error) => {
                // The same content arrived twice at once: the other upload's object wins and
                // this one's key is swept now.
                store::queue_sweep(svc.db.pool(), &key, now).await?;
                // The temporary key is gone (moved); the loop's next turn deduplicates.
                return dedup_after_race(svc, &id, name, file, got, now).await;
            }
            Err(error) => {
                store::queue_sweep(svc.db.pool(), &key, now).await?;
                return Err(error.into());
            }
        }
    }
    let Some(object_id) = fresh_object else {
        return Err(ApiError::internal("an upload could not be committed twice"));
    };
    let kind = got.sniffed.kind;
    finish(svc, &id, &file.owner_id, Some((object_id, kind))).await
}

/// Names the object another upload of the same content committed first.
async fn dedup_after_race(
    svc: &FileService,
    id: &str,
    name: &str,
    file: &NewFile,
    got: &Received,
    now: i64,
) -> ApiResult<FileMeta> {
    let object_id = store::object_by_hash(svc.db.pool(), &file.owner_id, &got.sha256)
        .await?
        .ok_or_else(|| ApiError::internal("deduplicated object vanished"))?;
    let mut tx = svc.db.begin_write().await?;
    store::insert_file(
        &mut *tx,
        id,
        &file.owner_id,
        &object_id,
        name,
        file.purpose.as_str(),
        now,
    )
    .await?;
    tx.commit().await.map_err(skein_db::DbError::from)?;
    finish(svc, id, &file.owner_id, None).await
}

/// Reads the committed file back, and starts its variants when it is a new image or PDF.
async fn finish(
    svc: &FileService,
    id: &str,
    owner: &str,
    new_object: Option<(String, Kind)>,
) -> ApiResult<FileMeta> {
    let row = svc.owned(owner, id).await?;
    if let Some((object_id, kind)) = new_object {
        images::after_upload(svc, object_id, kind, &row.content_type);
    }
    Ok(crate::meta(&row))
}

/// Drops a temporary key now (the sweep row stays until it is gone, in case this fails).
async fn discard(svc: &FileService, tmp: &str) {
    match svc.storage.delete(tmp).await {
        Ok(()) => {
            if let Err(error) = store::unqueue_sweep(svc.db.pool(), tmp).await {
                tracing::debug!(%error, "unqueueing a discarded upload failed; the sweeper will");
            }
        }
        Err(error) => tracing::warn!(%error, "discarding an upload failed; the sweeper will"),
    }
}
