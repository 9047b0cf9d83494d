//! The File service's API: store an upload, read it (whole or a byte range), its metadata,
//! delete it, and ask whether a user may use a file id. Chat, Knowledge, Agent, User and
//! Plugin keep file ids and reach the bytes only through this trait.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::ApiError;

/// What a file is for; each purpose has its own size and type limits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FilePurpose {
    /// Attached to a chat message (images, documents).
    Chat,
    /// A knowledge base's source document.
    Knowledge,
    /// A user's or an agent's picture.
    Avatar,
    /// An agent's assets.
    Agent,
    /// A plugin's package or assets.
    Plugin,
}

impl FilePurpose {
    /// Every purpose.
    pub const ALL: [FilePurpose; 5] = [
        FilePurpose::Chat,
        FilePurpose::Knowledge,
        FilePurpose::Avatar,
        FilePurpose::Agent,
        FilePurpose::Plugin,
    ];

    /// The wire name (`"chat"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FilePurpose::Chat => "chat",
            FilePurpose::Knowledge => "knowledge",
            FilePurpose::Avatar => "avatar",
            FilePurpose::Agent => "agent",
            FilePurpose::Plugin => "plugin",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<FilePurpose> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FileMeta {
    /// The file's id.
    pub id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its (safe) name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The type sniffed from its content (never taken from its name or the client).
    pub content_type: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// What it is for.
    pub purpose: FilePurpose,
    /// Pixels across, for images.
    pub width: Option<u32>,
    /// Pixels down, for images.
    pub height: Option<u32>,
    /// Pages, for PDFs (when it could be read).
    pub page_count: Option<u32>,
    /// Created, RFC 3339.
    pub created_at: String,
}

/// A new file to store.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Who will own it.
    pub owner_id: String,
    /// The name it was given (made safe by the service).
    pub name: String,
    /// What it is for.
    pub purpose: FilePurpose,
}

/// Bytes as they arrive (an upload) or leave (a download).
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A file opened for reading.
pub struct FileContent {
    /// What it is.
    pub meta: FileMeta,
    /// The bytes asked for (`range`, or the whole file).
    pub range: Range<u64>,
    /// Those bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContent")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Files: stored once per owner and content, read in ranges, owned by one user. A file
/// another user owns reads as missing (404), never as forbidden, so ids leak nothing.
#[async_trait]
pub trait FileApi: Send + Sync {
    /// Streams `body` into storage as `file`: type sniffed from the content, size and type
    /// checked against the purpose, quota checked, the same content stored once per owner.
    async fn store(&self, file: NewFile, body: ByteStream) -> Result<FileMeta, ApiError>;

    /// Opens `owner_id`'s file `id` for reading, `range` of it (end exclusive) or all of it.
    async fn open(
        &self,
        owner_id: &str,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<FileContent, ApiError>;

    /// The metadata of `owner_id`'s file `id`.
    async fn metadata(&self, owner_id: &str, id: &str) -> Result<FileMeta, ApiError>;

    /// Deletes `owner_id`'s file `id`; the stored object goes once no file refers to it.
    async fn delete(&self, owner_id: &str, id: &str) -> Result<(), ApiError>;

    /// Whether `user_id` may use file `id` (for a message or a knowledge base that names it):
    /// its metadata when it may, a 404 when the file does not exist or is not theirs.
    async fn authorise(&self, user_id: &str, id: &str) -> Result<FileMeta, ApiError>;

    /// A signed URL of file `id`'s content that a browser (or a CDN) fetches without a
    /// session, valid for at least `ttl`. The caller has already checked that whoever sees
    /// the URL may read the file. Expiries are rounded up to the hour, so the URL of a file
    /// stays the same for an hour and caches keep working.
    fn content_url(&self, id: &str, ttl: std::time::Duration) -> String;
}

/// Reads the text of documents the File service has no reader for (Word, Excel, PowerPoint,
/// EPUB), for previews. The extractors live with Knowledge; the binary hands them to the File
/// service through this trait, so neither service depends on the other.
pub trait DocumentText: Send + Sync {
    /// Whether documents of `content_type` are read.
    fn reads(&self, content_type: &str) -> bool;

    /// The document's text, or why it has none. Blocking CPU work (and bounded: archives are
    /// read with inflation limits): call it off the async threads.
    fn text(&self, content_type: &str, bytes: &[u8]) -> Result<String, String>;
}
