//! The `[file]` section of the configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skein_core::api::FilePurpose;
use skein_core::secret::Secret;

/// Where files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// A folder on the local disk (`file.root`, else `<data_dir>/files`).
    #[default]
    Fs,
    /// An S3-compatible store (AWS, MinIO, Aliyun OSS, Tencent COS, Cloudflare R2).
    S3,
}

/// An S3-compatible store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The endpoint (`https://s3.us-east-1.amazonaws.com`, `http://minio:9000`,
    /// `https://oss-cn-hangzhou.aliyuncs.com`).
    pub endpoint: String,
    /// The region (`us-east-1`; `auto` for R2).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key; never logged or returned.
    pub secret_access_key: Option<Secret>,
    /// Address the bucket as `bucket.endpoint` (AWS, OSS, COS) instead of `endpoint/bucket`
    /// (MinIO and most self-hosted stores, the default).
    pub virtual_host_style: bool,
    /// A prefix inside the bucket under which every key is written (`skein/`).
    pub root: String,
    /// The endpoint clients reach for presigned URLs, when it differs from `endpoint` (the
    /// server talks to `http://minio:9000` inside a private network, browsers to
    /// `https://files.example.com`); `None`: `endpoint`.
    pub public_endpoint: Option<String>,
    /// Downloads answer `302` to a presigned URL of the store, so the bytes go from the store
    /// to the client and not through this server.
    pub presign_downloads: bool,
    /// Upload sessions hand out presigned part URLs, so parts go from the client straight to
    /// the store (the bucket needs a CORS rule allowing `PUT` from the web app's origin).
    pub presign_uploads: bool,
    /// How long a presigned URL is valid, in seconds.
    pub presign_ttl_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: String::new(),
            bucket: String::new(),
            access_key_id: String::new(),
            secret_access_key: None,
            virtual_host_style: false,
            root: String::new(),
            public_endpoint: None,
            presign_downloads: false,
            presign_uploads: false,
            presign_ttl_secs: 900,
        }
    }
}

/// The format of image variants (thumbnails and web-sized copies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// JPEG at `file.image_quality` (the default: small for photos, no transparency).
    #[default]
    Jpeg,
    /// WebP. The encoder Skein carries (the `image` crate's) writes lossless WebP only, so
    /// `file.image_quality` does not apply: larger than JPEG for photos, smaller for
    /// screenshots and drawings, and transparency is kept.
    Webp,
}

impl ImageFormat {
    /// The MIME type of variants in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
        }
    }

    /// The file extension of variants in this format.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Webp => "webp",
        }
    }
}

/// Files: where they are kept, how big they may be, and how they are handed out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `fs` (the default) or `s3`.
    pub storage: StorageKind,
    /// The folder of the `fs` store (`None`: `<data_dir>/files`).
    pub root: Option<PathBuf>,
    /// The `s3` store.
    pub s3: S3Config,
    /// Bytes each user may keep (content stored once counts once).
    pub quota_bytes: u64,
    /// Largest upload of any purpose; each purpose's own limit is at most this.
    pub max_upload_bytes: u64,
    /// Largest avatar.
    pub avatar_max_bytes: u64,
    /// Largest chat attachment.
    pub chat_max_bytes: u64,
    /// Largest agent asset.
    pub agent_max_bytes: u64,
    /// Largest plugin package.
    pub plugin_max_bytes: u64,
    /// Largest knowledge document (512 MiB: knowledge bases read PDFs that large from disk;
    /// other formats are refused past `knowledge.max_document_bytes` when indexed).
    pub knowledge_max_bytes: u64,
    /// Where signed and share URLs point (a CDN in front of this server:
    /// `https://cdn.example.com`); `None`: paths relative to this server.
    pub public_base_url: Option<String>,
    /// The key of signed URLs (at least 32 characters); when empty one is generated into
    /// `<data_dir>/file_signing_key`. Every instance of a deployment needs the same one.
    pub signing_key: Option<Secret>,
    /// How long a signed URL is valid by default, in seconds.
    pub signed_url_ttl_secs: u64,
    /// Largest image decoded for variants, in pixels (a decompression-bomb guard).
    pub image_max_pixels: u64,
    /// Longest text a preview shows, in bytes.
    pub preview_max_bytes: u64,
    /// Wrong share passwords allowed per share per minute.
    pub share_password_attempts_per_minute: u32,
    /// How often the sweeper deletes stored objects no file names any more, in seconds.
    pub sweep_interval_secs: u64,
    /// An upload that sends nothing for this long is ended (408), in seconds. Uploads have no
    /// overall time limit (the server's request timeout does not apply to them).
    pub upload_idle_secs: u64,
    /// How long an upload session (a file sent in parts) stays open, in seconds; its parts are
    /// swept after that.
    pub upload_session_ttl_secs: u64,
    /// The part size an upload session gets when the client names none, in bytes (1–64 MiB).
    pub upload_part_bytes: u64,
    /// Upload sessions one user may have open at once.
    pub max_open_uploads: u32,
    /// The format of image variants: `jpeg` (default) or `webp` (lossless).
    pub image_format: ImageFormat,
    /// JPEG quality of image variants, 1–100.
    pub image_quality: u8,
    /// Animated images (GIF, WebP, APNG) with more frames than this get no variants: a
    /// decompression bomb can hide in frames as well as in pixels.
    pub image_max_frames: u32,
}

impl Default for FileConfig {
    fn default() -> Self {
        const MIB: u64 = 1024 * 1024;
        FileConfig {
            storage: StorageKind::Fs,
            root: None,
            s3: S3Config::default(),
            quota_bytes: 1024 * MIB,
            max_upload_bytes: 512 * MIB,
            avatar_max_bytes: 5 * MIB,
            chat_max_bytes: 20 * MIB,
            agent_max_bytes: 20 * MIB,
            plugin_max_bytes: 50 * MIB,
            knowledge_max_bytes: 512 * MIB,
            public_base_url: None,
            signing_key: None,
            signed_url_ttl_secs: 3600,
            image_max_pixels: 50_000_000,
            preview_max_bytes: 256 * 1024,
            share_password_attempts_per_minute: 5,
            sweep_interval_secs: 60,
            upload_idle_secs: 30,
            upload_session_ttl_secs: 24 * 3600,
            upload_part_bytes: 8 * MIB,
            max_open_uploads: 10,
            image_format: ImageFormat::Jpeg,
            image_quality: 82,
            image_max_frames: 500,
        }
    }
}

impl FileConfig {
    /// The largest upload of `purpose`.
    pub fn max_bytes(&self, purpose: FilePurpose) -> u64 {
        let own = match purpose {
            FilePurpose::Avatar => self.avatar_max_bytes,
            FilePurpose::Chat => self.chat_max_bytes,
            FilePurpose::Agent => self.agent_max_bytes,
            FilePurpose::Plugin => self.plugin_max_bytes,
            FilePurpose::Knowledge => self.knowledge_max_bytes,
        };
        own.min(self.max_upload_bytes)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_upload_bytes == 0 || self.quota_bytes == 0 {
            return Err("file.max_upload_bytes and file.quota_bytes must be at least 1".into());
        }
        if self.signed_url_ttl_secs < 10
            || self.share_password_attempts_per_minute == 0
            || self.sweep_interval_secs == 0
            || self.upload_idle_secs == 0
        {
            return Err(
                "file.signed_url_ttl_secs must be at least 10, and file.share_password_attempts_per_minute, file.sweep_interval_secs and file.upload_idle_secs at least 1"
                    .into(),
            );
        }
        if !(crate::session::MIN_PART..=crate::session::MAX_PART).contains(&self.upload_part_bytes)
        {
            return Err("file.upload_part_bytes must be between 1 MiB and 64 MiB".into());
        }
        if self.upload_session_ttl_secs < 60 || self.max_open_uploads == 0 {
            return Err(
                "file.upload_session_ttl_secs must be at least 60 and file.max_open_uploads at least 1"
                    .into(),
            );
        }
        if !(1..=100).contains(&self.image_quality) || self.image_max_frames == 0 {
            return Err(
                "file.image_quality must be between 1 and 100, and file.image_max_frames at least 1"
                    .into(),
            );
        }
        if !(10..=7 * 24 * 3600).contains(&self.s3.presign_ttl_secs) {
            return Err("file.s3.presign_ttl_secs must be between 10 seconds and 7 days".into());
        }
        if let Some(url) = &self.s3.public_endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("file.s3.public_endpoint must start with http:// or https://".into());
        }
        if let Some(key) = &self.signing_key
            && key.expose().len() < 32
        {
            return Err("file.signing_key must be at least 32 characters".into());
        }
        if let Some(url) = &self.public_base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("file.public_base_url must start with http:// or https://".into());
        }
        if self.storage == StorageKind::S3 {
            let s3 = &self.s3;
            if s3.bucket.is_empty() || s3.endpoint.is_empty() {
                return Err(
                    "file.storage = \"s3\" needs file.s3.bucket and file.s3.endpoint".into(),
                );
            }
            if s3.access_key_id.is_empty() || s3.secret_access_key.is_none() {
                return Err(
                    "file.storage = \"s3\" needs file.s3.access_key_id and file.s3.secret_access_key"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
