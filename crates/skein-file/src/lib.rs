//! Skein's File service (`/api/v1/files`, `/api/v1/shares`): one store over the local disk or
//! an S3-compatible store; uploads streamed to storage with their type sniffed from the
//! content, hashed as they arrive and stored once per owner and content; ranged downloads
//! with ETags; HMAC-signed URLs a CDN can cache; image variants made in the background; text
//! previews; share links with expiry, password and download limits.
//!
//! Other services reach files only through [`FileApi`] (implemented here for in-process
//! callers).
//!
//! **Architecture Invariant:** only this crate touches `file_objects`, `files`, `file_sweep`
//! and `file_shares`, and only it writes to the file store. No storage key is ever removed
//! except by the sweeper, from a `file_sweep` row written in the same transaction that made
//! the key unneeded (or before an upload began): a crash at any point leaves either a named
//! object or a queued key, never lost bytes or a half-written file anyone can see.

pub mod config;
pub(crate) mod errors;
mod http;
pub mod images;
pub mod remote;
mod service;
pub mod session;
pub mod sign;
pub mod sniff;
pub mod storage;
pub mod store;
mod upload;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use config::{FileConfig, ImageFormat, S3Config, StorageKind};
use skein_core::api::{
    ByteStream, DocumentText, FileApi, FileContent, FileMeta, FilePurpose, NewFile,
};
use skein_core::limit::RateLimiter;
use skein_core::service::{BackgroundTasks, FirstRun};
use skein_core::{ApiError, ApiResult, ids};
use skein_db::{Db, ServiceMigrations};
use tokio_util::task::TaskTracker;

use sign::Signer;
use storage::Storage;
use store::FileRow;

/// The File service's migrations.
pub static MIGRATIONS: ServiceMigrations = ServiceMigrations {
    service: skein_core::service::ServiceName::File,
    sqlite: || skein_db::sqlx::migrate!("migrations/sqlite"),
    postgres: || skein_db::sqlx::migrate!("migrations/postgres"),
};

/// How long an upload's temporary key may live before the sweeper takes it: longer than any
/// request may run, so only uploads whose server died are swept.
const TMP_GRACE_MS: i64 = 6 * 3600 * 1000;

/// Keys the sweeper deletes per tick.
const SWEEP_BATCH: i64 = 200;

/// The image variants made on upload, by name.
pub const VARIANTS: [&str; 2] = ["thumb", "web"];

/// Every storage key an object may have: its content and its variants.
pub fn object_keys(object_id: &str) -> Vec<String> {
    let mut keys = vec![storage::object_key(object_id)];
    keys.extend(VARIANTS.iter().map(|v| storage::variant_key(object_id, v)));
    keys
}

/// What the File service is started with besides its configuration.
pub struct FileDeps {
    /// The database.
    pub db: Db,
    /// Where the `fs` store lives by default (`<data_dir>/files`).
    pub data_dir: std::path::PathBuf,
    /// The key signed URLs are signed with.
    pub signing_key: Vec<u8>,
    /// Where wrong share passwords are counted.
    pub limiter: Arc<dyn RateLimiter>,
    /// How often the sweeper runs.
    pub sweep_every: Duration,
    /// Reads Office documents and EPUBs for previews (Knowledge's extractors, handed over
    /// by the binary); `None`: those types have no preview.
    pub documents: Option<Arc<dyn DocumentText>>,
}

/// The File service.
pub struct FileService {
    db: Db,
    storage: Storage,
    config: FileConfig,
    signer: Signer,
    limiter: Arc<dyn RateLimiter>,
    /// Variant and page-count jobs started by uploads; shutdown waits for them.
    jobs: TaskTracker,
    /// Whether `pdftoppm` (poppler) is installed, for PDF page counts and first-page previews.
    pdftoppm: bool,
    /// Reads Office documents and EPUBs for previews.
    documents: Option<Arc<dyn DocumentText>>,
    /// The sweeper.
    background: BackgroundTasks,
}

impl FileService {
    /// Opens the store (a wrong endpoint or key fails here, clearly) and starts the sweeper.
    pub async fn start(config: FileConfig, deps: FileDeps) -> Result<Arc<Self>, String> {
        let storage = Storage::open(&config, &deps.data_dir)
            .map_err(|e| format!("cannot open the file store: {e}"))?;
        storage.check().await.map_err(|e| {
            format!(
                "the file store does not answer ({:?} store): {e}",
                config.storage
            )
        })?;
        let signer = Signer::new(&deps.signing_key)?;
        let pdftoppm = images::pdftoppm_available().await;
        if !pdftoppm {
            tracing::info!(
                "pdftoppm not found: PDF page counts and previews are skipped (apt-get install poppler-utils)"
            );
        }
        let service = Arc::new(FileService {
            db: deps.db,
            storage,
            config,
            signer,
            limiter: deps.limiter,
            jobs: TaskTracker::new(),
            pdftoppm,
            documents: deps.documents,
            background: BackgroundTasks::new(),
        });
        service.background.every(
            "file.sweep",
            deps.sweep_every,
            FirstRun::Now,
            &service,
            |service| async move {
                service.sweep().await;
            },
        );
        Ok(service)
    }

    /// Deletes the storage keys whose time has come, then their queue rows; a key already
    /// gone counts as deleted, so a crash between the two only repeats a delete.
    pub async fn sweep(&self) -> usize {
        let due = match store::due_sweeps(&self.db, ids::now_ms(), SWEEP_BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "reading the file sweep queue failed");
                return 0;
            }
        };
        let mut swept = 0;
        for key in due {
            if let Err(error) = self.storage.delete(&key).await {
                tracing::warn!(%error, key, "deleting a stored object failed; will retry");
                continue;
            }
            match store::unqueue_sweep(self.db.pool(), &key).await {
                Ok(()) => swept += 1,
                Err(error) => tracing::warn!(%error, "unqueueing a swept key failed"),
            }
        }
        if swept > 0 {
            tracing::info!(keys = swept, "swept stored objects");
        }
        if let Err(error) = session::forget_expired(&self.db, ids::now_ms()).await {
            tracing::warn!(%error, "forgetting expired upload sessions failed");
        }
        swept
    }

    /// The configuration in effect.
    pub fn config(&self) -> &FileConfig {
        &self.config
    }

    /// Lets variant jobs finish (up to `grace`).
    pub async fn drain(&self, grace: Duration) {
        self.jobs.close();
        let _ = tokio::time::timeout(grace, self.jobs.wait()).await;
    }

    /// The owner's file or a 404.
    pub(crate) async fn owned(&self, user_id: &str, id: &str) -> ApiResult<FileRow> {
        if !ids::looks_like_id(id) {
            return Err(errors::not_found());
        }
        store::file(&self.db, user_id, id)
            .await?
            .ok_or_else(errors::not_found)
    }

    /// Whether upload sessions send parts straight to the store (S3 with
    /// `file.s3.presign_uploads`).
    pub fn direct_uploads(&self) -> bool {
        self.storage.kind() == StorageKind::S3 && self.config.s3.presign_uploads
    }

    /// Where a path of this server is reached from outside (`file.public_base_url`).
    pub(crate) fn public_url(&self, path: &str) -> String {
        match &self.config.public_base_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path.to_string(),
        }
    }
}

/// A row as the API's metadata.
pub(crate) fn meta(row: &FileRow) -> FileMeta {
    let small = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    FileMeta {
        id: row.id.clone(),
        owner_id: row.user_id.clone(),
        name: row.name.clone(),
        size: u64::try_from(row.size).unwrap_or(0),
        content_type: row.content_type.clone(),
        sha256: row.sha256.clone(),
        purpose: FilePurpose::parse(&row.purpose).unwrap_or(FilePurpose::Chat),
        width: small(row.width),
        height: small(row.height),
        page_count: small(row.page_count),
        created_at: ids::ms_to_rfc3339(row.created_at),
    }
}

/// The signing key of signed URLs: `file.signing_key`, or kept in `<data_dir>/file_signing_key`
/// (made on first start, readable by the owner only).
pub fn signing_key(config: &FileConfig, data_dir: &Path) -> Result<Vec<u8>, String> {
    if let Some(key) = &config.signing_key {
        return Ok(key.expose().as_bytes().to_vec());
    }
    let path = data_dir.join("file_signing_key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = text.trim();
        if text.len() < 32 {
            return Err(format!("{} is shorter than 32 characters", path.display()));
        }
        return Ok(text.as_bytes().to_vec());
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    options
        .open(&path)
        .and_then(|mut f| f.write_all(key.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new file signing key");
    Ok(key.into_bytes())
}

#[async_trait]
impl FileApi for FileService {
    async fn store(&self, file: NewFile, body: ByteStream) -> Result<FileMeta, ApiError> {
        use futures::TryStreamExt;
        let body = body.map_err(|e| {
            ApiError::bad_request(
                "upload_failed",
                format!("Reading the file failed: {e}"),
                format!("读取文件失败：{e}"),
            )
        });
        upload::store(self, file, body).await
    }

    async fn open(
        &self,
        owner_id: &str,
        id: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<FileContent, ApiError> {
        let row = self.owned(owner_id, id).await?;
        let size = u64::try_from(row.size).unwrap_or(0);
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(errors::range_outside_file());
        }
        let body = self
            .storage
            .read(&storage::object_key(&row.object_id), range.clone())
            .await?;
        Ok(FileContent {
            meta: meta(&row),
            range,
            body,
        })
    }

    async fn metadata(&self, owner_id: &str, id: &str) -> Result<FileMeta, ApiError> {
        Ok(meta(&self.owned(owner_id, id).await?))
    }

    async fn delete(&self, owner_id: &str, id: &str) -> Result<(), ApiError> {
        if !ids::looks_like_id(id)
            || !store::delete_file(&self.db, owner_id, id, ids::now_ms()).await?
        {
            return Err(errors::not_found());
        }
        Ok(())
    }

    async fn authorise(&self, user_id: &str, id: &str) -> Result<FileMeta, ApiError> {
        self.metadata(user_id, id).await
    }

    fn content_url(&self, id: &str, ttl: std::time::Duration) -> String {
        signed_content_url(
            &self.signer,
            self.config.public_base_url.as_deref(),
            id,
            ttl,
        )
    }
}

/// A signed URL of file `id`'s content valid for at least `ttl` (rounded up to the hour, so
/// it stays the same for an hour and caches keep working), under `public_base_url` when set.
/// Made wherever it is needed, in the File service's process or another's, with the
/// deployment's signing key.
pub(crate) fn signed_content_url(
    signer: &sign::Signer,
    public_base_url: Option<&str>,
    id: &str,
    ttl: std::time::Duration,
) -> String {
    const HOUR: i64 = 3600;
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(HOUR);
    let exp = (ids::now_ms() / 1000 + ttl) / HOUR * HOUR + HOUR;
    let sig = signer.sign(sign::Scope::File, id, "", exp);
    let path = format!("/api/v1/files/{id}/content?exp={exp}&sig={sig}");
    match public_base_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    }
}
