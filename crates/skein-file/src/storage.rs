//! The object store under every file: the local disk or an S3-compatible store, through
//! OpenDAL. Keys are ours alone (`tmp/<id>`, `objects/<id>`, `variants/<id>/<variant>`): no
//! user-given name ever becomes part of a key, so names cannot reach outside the store.

use std::ops::Range;
use std::path::Path;

use futures::StreamExt;
use opendal::{ErrorKind, Operator, services};
use skein_core::ApiError;
use skein_core::api::ByteStream;

use crate::config::{FileConfig, StorageKind};

/// Bytes buffered before a part is sent (S3 multipart parts; the disk writes as it goes).
const CHUNK: usize = 8 * 1024 * 1024;

/// Where an upload is written while it streams in.
pub fn tmp_key(id: &str) -> String {
    format!("tmp/{id}")
}

/// Where an object's content lives once committed.
pub fn object_key(object_id: &str) -> String {
    format!("objects/{object_id}")
}

/// Where an image variant of an object lives.
pub fn variant_key(object_id: &str, variant: &str) -> String {
    format!("variants/{object_id}/{variant}")
}

/// Where part `number` of upload session `upload_id` is kept until the session completes.
pub fn part_key(upload_id: &str, number: u32) -> String {
    format!("uploads/{upload_id}/{number:05}")
}

/// The folder of an upload session's parts (a key ending in `/`: the sweeper removes it
/// with everything under it).
pub fn upload_prefix(upload_id: &str) -> String {
    format!("uploads/{upload_id}/")
}

/// A request a client makes to the store itself, signed for it (a presigned URL).
#[derive(Debug, Clone)]
pub struct Presigned {
    /// `GET` or `PUT`.
    pub method: String,
    /// The URL, signature in its query.
    pub url: String,
    /// Headers the client must send as they are (signed too).
    pub headers: Vec<(String, String)>,
}

impl From<opendal::raw::PresignedRequest> for Presigned {
    fn from(p: opendal::raw::PresignedRequest) -> Self {
        Presigned {
            method: p.method().to_string(),
            url: p.uri().to_string(),
            headers: p
                .header()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                .collect(),
        }
    }
}

/// The store.
#[derive(Clone, Debug)]
pub struct Storage {
    op: Operator,
    kind: StorageKind,
    /// Signs URLs for clients (S3 only): the same bucket and key, addressed through
    /// `file.s3.public_endpoint` when one is set, since the host is part of the signature.
    presigner: Option<Operator>,
}

/// A storage failure, with the store's own words for the log (never for the client).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(#[from] pub opendal::Error);

impl StorageError {
    /// Whether the key does not exist.
    pub fn is_not_found(&self) -> bool {
        self.0.kind() == ErrorKind::NotFound
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::internal(format!("file storage: {e}"))
    }
}

impl Storage {
    /// Opens the configured store: `fs` under `file.root` (default `<data_dir>/files`), or S3.
    /// Credentials come from the configuration only, never from the environment or instance
    /// metadata, so what runs is what `skein config check` shows.
    pub fn open(config: &FileConfig, data_dir: &Path) -> Result<Storage, StorageError> {
        let op = match config.storage {
            StorageKind::Fs => {
                let root = config
                    .root
                    .clone()
                    .unwrap_or_else(|| data_dir.join("files"));
                let root = root.to_string_lossy().into_owned();
                Operator::new(services::Fs::default().root(&root))?.finish()
            }
            StorageKind::S3 => s3_operator(config, &config.s3.endpoint)?,
        };
        let presigner = match config.storage {
            StorageKind::S3 => Some(match &config.s3.public_endpoint {
                Some(public) => s3_operator(config, public)?,
                None => op.clone(),
            }),
            StorageKind::Fs => None,
        };
        Ok(Storage {
            op,
            kind: config.storage,
            presigner,
        })
    }

    /// Which kind of store this is.
    pub fn kind(&self) -> StorageKind {
        self.kind
    }

    /// Checks the store answers (a missing key is an answer): at start, so a wrong endpoint
    /// or key fails the start with a clear error instead of the first upload.
    pub async fn check(&self) -> Result<(), StorageError> {
        match self.op.stat("objects/.probe").await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A writer of `key`; parts of [`CHUNK`] bytes (S3 multipart underneath).
    pub async fn writer(&self, key: &str) -> Result<opendal::Writer, StorageError> {
        Ok(self.op.writer_with(key).chunk(CHUNK).await?)
    }

    /// Writes small content (variants) at once.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.op.write(key, bytes).await?;
        Ok(())
    }

    /// Moves a finished upload to its final key: a rename where the store has one (the disk),
    /// else copy and delete (S3). Readers never see a half-written final key.
    pub async fn commit(&self, from: &str, to: &str) -> Result<(), StorageError> {
        if self.op.info().full_capability().rename {
            self.op.rename(from, to).await?;
        } else {
            self.op.copy(from, to).await?;
            self.delete(from).await?;
        }
        Ok(())
    }

    /// Streams `range` of `key`.
    pub async fn read(&self, key: &str, range: Range<u64>) -> Result<ByteStream, StorageError> {
        if range.is_empty() {
            return Ok(futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>().boxed());
        }
        let reader = self.op.reader_with(key).chunk(CHUNK).await?;
        let stream = reader.into_bytes_stream(range).await?;
        Ok(stream.boxed())
    }

    /// Reads at most `limit` bytes of `key` (previews, variants).
    pub async fn read_head(&self, key: &str, limit: u64) -> Result<Vec<u8>, StorageError> {
        let size = self.op.stat(key).await?.content_length();
        let end = size.min(limit);
        if end == 0 {
            return Ok(Vec::new());
        }
        Ok(self.op.read_with(key).range(0..end).await?.to_vec())
    }

    /// Deletes `key`, or everything under it when it ends in `/` (an upload session's parts);
    /// a key already gone is not an error (deletes are retried after crashes).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let done = if key.ends_with('/') {
            self.op.remove_all(key).await
        } else {
            self.op.delete(key).await
        };
        match done {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The size of `key` in bytes.
    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        Ok(self.op.stat(key).await?.content_length())
    }

    /// The files directly under `prefix` (a folder key ending in `/`) with their sizes, by
    /// name; none when the folder does not exist.
    pub async fn list_sizes(&self, prefix: &str) -> Result<Vec<(String, u64)>, StorageError> {
        let entries = match self.op.list(prefix).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            // S3's listing carries sizes; the disk's does not, and a stat there is cheap.
            let size = match self.kind {
                StorageKind::S3 => entry.metadata().content_length(),
                StorageKind::Fs => match self.op.stat(entry.path()).await {
                    Ok(meta) => meta.content_length(),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            out.push((entry.name().to_string(), size));
        }
        Ok(out)
    }

    /// A presigned `PUT` of `key` valid for `ttl`, when the store is S3 (`None` on the disk,
    /// where clients send parts through this server).
    pub async fn presign_write(
        &self,
        key: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Presigned>, StorageError> {
        let Some(presigner) = &self.presigner else {
            return Ok(None);
        };
        Ok(Some(presigner.presign_write(key, ttl).await?.into()))
    }

    /// A presigned `GET` of `key` valid for `ttl`, answering with `content_type` and
    /// `disposition` whatever the object was stored with (S3 only).
    pub async fn presign_read(
        &self,
        key: &str,
        ttl: std::time::Duration,
        content_type: &str,
        disposition: &str,
    ) -> Result<Option<Presigned>, StorageError> {
        let Some(presigner) = &self.presigner else {
            return Ok(None);
        };
        let signed = presigner
            .presign_read_with(key, ttl)
            .override_content_type(content_type)
            .override_content_disposition(disposition)
            .await?;
        Ok(Some(signed.into()))
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.op.exists(key).await?)
    }
}

/// An S3 operator of the configured bucket, through `endpoint`.
fn s3_operator(config: &FileConfig, endpoint: &str) -> Result<Operator, StorageError> {
    let s3 = &config.s3;
    let mut builder = services::S3::default()
        .endpoint(endpoint)
        .region(if s3.region.is_empty() {
            "us-east-1"
        } else {
            &s3.region
        })
        .bucket(&s3.bucket)
        .root(&format!("/{}", s3.root.trim_matches('/')))
        .access_key_id(&s3.access_key_id)
        .secret_access_key(
            s3.secret_access_key
                .as_ref()
                .map(|k| k.expose())
                .unwrap_or(""),
        )
        .disable_config_load()
        .disable_ec2_metadata();
    if s3.virtual_host_style {
        builder = builder.enable_virtual_host_style();
    }
    Ok(Operator::new(builder)?.finish())
}
