//! The File service as a process that does not run it reaches it: [`RemoteFiles`], an HTTP
//! client of `/internal/file/*` (served by `http/internal.rs`) implementing [`FileApi`], and
//! the bodies both sides share.
//!
//! Uploads and reads stream through the hop (never whole in memory on either side). A read
//! carries the file's metadata in a header (base64url JSON: names may be Chinese, headers
//! are ASCII) and its byte range in another. Signed content URLs are made in the calling
//! process with the deployment's signing key, so `file.signing_key` must be the same
//! everywhere (the binary refuses to start a split deployment without it).

use std::ops::Range;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use skein_core::ApiError;
use skein_core::api::{ByteStream, FileApi, FileContent, FileMeta, FilePurpose, NewFile};
use skein_core::internal::InternalClient;

use crate::sign::Signer;

/// The header carrying a read file's metadata: base64url of its JSON.
pub(crate) const META_HEADER: &str = "x-skein-file-meta";

/// The header carrying the byte range a read answers, `start-end` (end exclusive).
pub(crate) const RANGE_HEADER: &str = "x-skein-file-range";

/// The `FileApi` of a File service in another process.
#[derive(Debug, Clone)]
pub struct RemoteFiles {
    client: InternalClient,
    signer: Signer,
    public_base_url: Option<String>,
}

impl RemoteFiles {
    /// A client of the File service behind `client`, signing content URLs with
    /// `signing_key` (the deployment's `file.signing_key`) under `public_base_url`.
    pub fn new(
        client: InternalClient,
        signing_key: &[u8],
        public_base_url: Option<String>,
    ) -> Result<Self, String> {
        Ok(RemoteFiles {
            client,
            signer: Signer::new(signing_key)?,
            public_base_url,
        })
    }
}

/// Where an upload goes: the query of `/internal/file/store`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreQuery {
    pub(crate) owner_id: String,
    pub(crate) name: String,
    pub(crate) purpose: FilePurpose,
}

/// A file of a user: the body of metadata, delete, authorise and open.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileBody {
    pub(crate) user_id: String,
    pub(crate) id: String,
    /// For open: the bytes asked for, `[start, end)`; none = the whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) range: Option<(u64, u64)>,
}

impl FileBody {
    fn of(user_id: &str, id: &str) -> Self {
        FileBody {
            user_id: user_id.to_owned(),
            id: id.to_owned(),
            range: None,
        }
    }
}

/// Encodes a read's metadata for [`META_HEADER`].
pub(crate) fn encode_meta(meta: &FileMeta) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(meta).unwrap_or_default())
}

fn decode_meta(value: &str) -> Option<FileMeta> {
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn parse_range(value: &str) -> Option<Range<u64>> {
    let (start, end) = value.split_once('-')?;
    let (start, end) = (start.parse().ok()?, end.parse().ok()?);
    (start <= end).then_some(start..end)
}

#[async_trait]
impl FileApi for RemoteFiles {
    async fn store(&self, file: NewFile, body: ByteStream) -> Result<FileMeta, ApiError> {
        let query = StoreQuery {
            owner_id: file.owner_id,
            name: file.name,
            purpose: file.purpose,
        };
        self.client
            .call_stream(
                "/internal/file/store",
                &query,
                "application/octet-stream",
                body,
            )
            .await
    }

    async fn open(
        &self,
        owner_id: &str,
        id: &str,
        range: Option<Range<u64>>,
    ) -> Result<FileContent, ApiError> {
        let body = FileBody {
            range: range.map(|r| (r.start, r.end)),
            ..FileBody::of(owner_id, id)
        };
        let response = self.client.open("/internal/file/open", &body).await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(meta), Some(range)) = (
            header(META_HEADER).as_deref().and_then(decode_meta),
            header(RANGE_HEADER).as_deref().and_then(parse_range),
        ) else {
            tracing::error!("a remote file read came without its metadata");
            return Err(ApiError::unavailable("file"));
        };
        let body: ByteStream = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
        Ok(FileContent { meta, range, body })
    }

    async fn metadata(&self, owner_id: &str, id: &str) -> Result<FileMeta, ApiError> {
        self.client
            .call("/internal/file/metadata", &FileBody::of(owner_id, id))
            .await
    }

    async fn delete(&self, owner_id: &str, id: &str) -> Result<(), ApiError> {
        self.client
            .notify("/internal/file/delete", &FileBody::of(owner_id, id))
            .await
    }

    async fn authorise(&self, user_id: &str, id: &str) -> Result<FileMeta, ApiError> {
        self.client
            .call("/internal/file/authorise", &FileBody::of(user_id, id))
            .await
    }

    fn content_url(&self, id: &str, ttl: std::time::Duration) -> String {
        crate::signed_content_url(&self.signer, self.public_base_url.as_deref(), id, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_ranges_survive_the_headers() {
        let meta = FileMeta {
            id: "f1".into(),
            owner_id: "u1".into(),
            name: "季度报告 Q3.pdf".into(),
            size: 10,
            content_type: "application/pdf".into(),
            sha256: "ab".into(),
            purpose: FilePurpose::Knowledge,
            width: None,
            height: None,
            page_count: Some(3),
            created_at: "2026-12-05T00:00:00Z".into(),
        };
        let header = encode_meta(&meta);
        assert!(header.is_ascii());
        assert_eq!(decode_meta(&header), Some(meta));
        assert_eq!(parse_range("3-10"), Some(3..10));
        assert_eq!(parse_range("10-3"), None);
        assert_eq!(parse_range("x-3"), None);
    }
}
