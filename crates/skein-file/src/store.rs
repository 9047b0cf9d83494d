//! The File service's tables: `file_objects`, `files`, `file_sweep` and `file_shares`. Every
//! query that takes a file id from a client also takes the caller's user id, so another
//! user's id reads as missing.

use skein_db::{Db, DbResult};
use sqlx::FromRow;

/// A file with its object's facts (a `files` row joined to `file_objects`).
#[derive(Debug, Clone, FromRow)]
pub struct FileRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The stored object.
    pub object_id: String,
    /// Safe name.
    pub name: String,
    /// Purpose (wire name).
    pub purpose: String,
    /// Created, ms.
    pub created_at: i64,
    /// Renamed, ms.
    pub updated_at: i64,
    /// Content hash, hex.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// Sniffed type.
    pub content_type: String,
    /// Image width.
    pub width: Option<i64>,
    /// Image height.
    pub height: Option<i64>,
    /// PDF pages.
    pub page_count: Option<i64>,
    /// Ready variants, comma-separated.
    pub variants: String,
    /// The variants' type (`None`: `image/jpeg`, as every variant was before WebP).
    pub variant_type: Option<String>,
}

impl FileRow {
    /// The MIME type of the variants.
    pub fn variant_content_type(&self) -> &str {
        self.variant_type.as_deref().unwrap_or("image/jpeg")
    }

    /// Whether `variant` is ready.
    pub fn has_variant(&self, variant: &str) -> bool {
        self.variants.split(',').any(|v| v == variant)
    }
}

const FILE_COLUMNS: &str = "f.id, f.user_id, f.object_id, f.name, f.purpose, f.created_at, f.updated_at, \
     o.sha256, o.size, o.content_type, o.width, o.height, o.page_count, o.variants, o.variant_type";

/// A new object's facts.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    /// Id (also its storage key's).
    pub id: &'a str,
    /// Owner.
    pub user_id: &'a str,
    /// Content hash.
    pub sha256: &'a str,
    /// Bytes.
    pub size: i64,
    /// Sniffed type.
    pub content_type: &'a str,
    /// Created, ms.
    pub now: i64,
}

/// The owner's object with this content, if one exists.
pub async fn object_by_hash<'e, E>(db: E, user_id: &str, sha256: &str) -> DbResult<Option<String>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM file_objects WHERE user_id = $1 AND sha256 = $2")
            .bind(user_id)
            .bind(sha256)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Inserts an object.
pub async fn insert_object<'e, E>(db: E, o: &NewObject<'_>) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO file_objects (id, user_id, sha256, size, content_type, variants, created_at) \
         VALUES ($1, $2, $3, $4, $5, '', $6)",
    )
    .bind(o.id)
    .bind(o.user_id)
    .bind(o.sha256)
    .bind(o.size)
    .bind(o.content_type)
    .bind(o.now)
    .execute(db)
    .await?;
    Ok(())
}

/// Inserts a file naming `object_id`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_file<'e, E>(
    db: E,
    id: &str,
    user_id: &str,
    object_id: &str,
    name: &str,
    purpose: &str,
    now: i64,
) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO files (id, user_id, object_id, name, purpose, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(id)
    .bind(user_id)
    .bind(object_id)
    .bind(name)
    .bind(purpose)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The owner's file.
pub async fn file(db: &Db, user_id: &str, id: &str) -> DbResult<Option<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {FILE_COLUMNS} FROM files f JOIN file_objects o ON o.id = f.object_id \
         WHERE f.id = $1 AND f.user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// A file by id alone, for signed URLs and shares (whose signature or token is the proof).
pub async fn file_any_owner(db: &Db, id: &str) -> DbResult<Option<FileRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {FILE_COLUMNS} FROM files f JOIN file_objects o ON o.id = f.object_id WHERE f.id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// What a file list shows.
#[derive(Debug, Clone, Default)]
pub struct ListFilter<'a> {
    /// Whose.
    pub user_id: &'a str,
    /// Only this purpose.
    pub purpose: Option<&'a str>,
    /// Only types starting with this (`image/`, `application/pdf`).
    pub content_type: Option<&'a str>,
}

/// One page of the owner's files, newest first, and how many match in all.
pub async fn list(
    db: &Db,
    filter: &ListFilter<'_>,
    limit: i64,
    offset: i64,
) -> DbResult<(Vec<FileRow>, i64)> {
    let mut conditions = String::from("f.user_id = $1");
    let mut binds: Vec<String> = Vec::new();
    if let Some(purpose) = filter.purpose {
        binds.push(purpose.to_string());
        conditions.push_str(&format!(" AND f.purpose = ${}", binds.len() + 1));
    }
    if let Some(prefix) = filter.content_type {
        binds.push(format!("{}%", escape_like(prefix)));
        conditions.push_str(&format!(
            " AND o.content_type LIKE ${} ESCAPE '!'",
            binds.len() + 1
        ));
    }
    let from = format!("FROM files f JOIN file_objects o ON o.id = f.object_id WHERE {conditions}");
    let sql = format!(
        "SELECT {FILE_COLUMNS} {from} ORDER BY f.created_at DESC, f.id DESC LIMIT ${} OFFSET ${}",
        binds.len() + 2,
        binds.len() + 3
    );
    let mut query = sqlx::query_as::<_, FileRow>(&sql).bind(filter.user_id);
    for b in &binds {
        query = query.bind(b.clone());
    }
    let rows: Vec<FileRow> = query.bind(limit).bind(offset).fetch_all(db.pool()).await?;
    let count_sql = format!("SELECT COUNT(*) {from}");
    let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(filter.user_id);
    for b in &binds {
        count = count.bind(b.clone());
    }
    let (total,) = count.fetch_one(db.pool()).await?;
    Ok((rows, total))
}

fn escape_like(text: &str) -> String {
    text.replace('!', "!!")
        .replace('%', "!%")
        .replace('_', "!_")
}

/// Bytes the owner keeps (each object once) and how many files name them.
pub async fn usage(db: &Db, user_id: &str) -> DbResult<(i64, i64)> {
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM file_objects WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    let (files,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM files WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db.pool())
        .await?;
    Ok((bytes, files))
}

/// Renames the owner's file; false when it is not theirs.
pub async fn rename(db: &Db, user_id: &str, id: &str, name: &str, now: i64) -> DbResult<bool> {
    let done =
        sqlx::query("UPDATE files SET name = $1, updated_at = $2 WHERE id = $3 AND user_id = $4")
            .bind(name)
            .bind(now)
            .bind(id)
            .bind(user_id)
            .execute(db.pool())
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes the owner's file and its shares. When no file names its object any more, the
/// object's row goes too and its storage keys are queued for the sweeper, in the same
/// transaction. False when the file is not theirs.
pub async fn delete_file(db: &Db, user_id: &str, id: &str, now: i64) -> DbResult<bool> {
    let mut tx = db.begin_write().await?;
    let object: Option<(String,)> =
        sqlx::query_as("SELECT object_id FROM files WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((object_id,)) = object else {
        return Ok(false);
    };
    sqlx::query("DELETE FROM file_shares WHERE file_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM files WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query(
        "DELETE FROM file_objects WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM files WHERE object_id = $1)",
    )
    .bind(&object_id)
    .execute(&mut *tx)
    .await?;
    if removed.rows_affected() > 0 {
        for key in crate::object_keys(&object_id) {
            queue_sweep(&mut *tx, &key, now).await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Queues `key` for deletion at `due_at` (an existing entry gets the new time).
pub async fn queue_sweep<'e, E>(db: E, key: &str, due_at: i64) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO file_sweep (storage_key, due_at) VALUES ($1, $2) \
         ON CONFLICT (storage_key) DO UPDATE SET due_at = excluded.due_at",
    )
    .bind(key)
    .bind(due_at)
    .execute(db)
    .await?;
    Ok(())
}

/// Takes `key` off the sweep queue (it is named by a committed row now, or already gone).
pub async fn unqueue_sweep<'e, E>(db: E, key: &str) -> DbResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("DELETE FROM file_sweep WHERE storage_key = $1")
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

/// Keys due for deletion.
pub async fn due_sweeps(db: &Db, now: i64, limit: i64) -> DbResult<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT storage_key FROM file_sweep WHERE due_at <= $1 ORDER BY due_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Records an image's size and a ready variant.
pub async fn set_image_facts(
    db: &Db,
    object_id: &str,
    width: i64,
    height: i64,
    variants: &str,
    variant_type: &str,
) -> DbResult<()> {
    sqlx::query(
        "UPDATE file_objects SET width = $1, height = $2, variants = $3, variant_type = $4 WHERE id = $5",
    )
    .bind(width)
    .bind(height)
    .bind(variants)
    .bind(variant_type)
    .bind(object_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records the variants ready for an object (a PDF's first page).
pub async fn set_variants(
    db: &Db,
    object_id: &str,
    variants: &str,
    variant_type: &str,
) -> DbResult<()> {
    sqlx::query("UPDATE file_objects SET variants = $1, variant_type = $2 WHERE id = $3")
        .bind(variants)
        .bind(variant_type)
        .bind(object_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Records a PDF's page count.
pub async fn set_page_count(db: &Db, object_id: &str, pages: i64) -> DbResult<()> {
    sqlx::query("UPDATE file_objects SET page_count = $1 WHERE id = $2")
        .bind(pages)
        .bind(object_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A row of `file_shares`.
#[derive(Debug, Clone, FromRow)]
pub struct ShareRow {
    /// Id.
    pub id: String,
    /// The public token in the link.
    pub token: String,
    /// The shared file.
    pub file_id: String,
    /// Its owner.
    pub user_id: String,
    /// argon2id hash of the password, when one is needed.
    pub password_hash: Option<String>,
    /// Expiry, ms.
    pub expires_at: Option<i64>,
    /// Most downloads allowed.
    pub max_downloads: Option<i64>,
    /// Downloads so far.
    pub downloads: i64,
    /// Revoked, ms.
    pub revoked_at: Option<i64>,
    /// Created, ms.
    pub created_at: i64,
}

const SHARE_COLUMNS: &str = "id, token, file_id, user_id, password_hash, expires_at, max_downloads, downloads, revoked_at, created_at";

/// Inserts a share.
pub async fn insert_share(db: &Db, s: &ShareRow) -> DbResult<()> {
    sqlx::query(&format!(
        "INSERT INTO file_shares ({SHARE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(&s.id)
    .bind(&s.token)
    .bind(&s.file_id)
    .bind(&s.user_id)
    .bind(&s.password_hash)
    .bind(s.expires_at)
    .bind(s.max_downloads)
    .bind(s.downloads)
    .bind(s.revoked_at)
    .bind(s.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The shares of the owner's file, newest first.
pub async fn shares_of(db: &Db, user_id: &str, file_id: &str) -> DbResult<Vec<ShareRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SHARE_COLUMNS} FROM file_shares WHERE user_id = $1 AND file_id = $2 ORDER BY created_at DESC"
    ))
    .bind(user_id)
    .bind(file_id)
    .fetch_all(db.pool())
    .await?)
}

/// A share by its public token.
pub async fn share_by_token(db: &Db, token: &str) -> DbResult<Option<ShareRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SHARE_COLUMNS} FROM file_shares WHERE token = $1"
    ))
    .bind(token)
    .fetch_optional(db.pool())
    .await?)
}

/// Revokes the owner's share; false when it is not theirs or already revoked.
pub async fn revoke_share(
    db: &Db,
    user_id: &str,
    file_id: &str,
    id: &str,
    now: i64,
) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE file_shares SET revoked_at = $1 \
         WHERE id = $2 AND user_id = $3 AND file_id = $4 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .bind(user_id)
    .bind(file_id)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Counts one download if the share still allows one (not revoked, not expired, under its
/// limit), in one statement so two downloads racing for the last one cannot both win.
pub async fn count_download(db: &Db, id: &str, now: i64) -> DbResult<bool> {
    let done = sqlx::query(
        "UPDATE file_shares SET downloads = downloads + 1 \
         WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2) \
         AND (max_downloads IS NULL OR downloads < max_downloads)",
    )
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}
