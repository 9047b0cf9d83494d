//! A base's documents: add by file id or by upload, list with status and progress, read,
//! delete, re-index, and the chunk viewer.

use std::sync::Arc;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use skein_core::api::{FileMeta, FilePurpose, NewFile};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::page::{Page, PageQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use crate::KnowledgeService;
use crate::access::Access;
use crate::errors;
use crate::extract::Format;
use crate::store::{self, ChunkRow, DocumentRow};

/// A message in both languages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DocumentError {
    /// A stable code (`extract_failed`, `embedding_failed`, `file_missing`, ...).
    pub code: String,
    /// English.
    pub en: String,
    /// Chinese.
    pub zh: String,
}

/// A document as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    /// Id.
    pub id: String,
    /// Its base.
    pub base_id: String,
    /// The file it is read from.
    pub file_id: String,
    /// Name.
    pub name: String,
    /// The file's type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// `queued`, `extracting`, `embedding`, `indexing`, `ready` (searchable) or `failed`.
    pub status: String,
    /// Chunks embedded so far (while `embedding`), or chunks indexed once `ready`.
    pub progress_done: i64,
    /// Chunks in all (0 until chunked).
    pub progress_total: i64,
    /// Chunks, once chunked.
    pub chunk_count: Option<i64>,
    /// Why it failed, or (while it waits for a retry) what went wrong.
    pub error: Option<DocumentError>,
    /// Added, RFC 3339.
    pub created_at: String,
    /// Changed, RFC 3339.
    pub updated_at: String,
}

pub(super) fn view(row: DocumentRow) -> DocumentView {
    DocumentView {
        error: row
            .error
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok()),
        id: row.id,
        base_id: row.base_id,
        file_id: row.file_id,
        name: row.name,
        content_type: row.content_type,
        size: row.size,
        status: row.status,
        progress_done: row.progress_done,
        progress_total: row.progress_total,
        chunk_count: row.chunk_count,
        created_at: ids::ms_to_rfc3339(row.created_at),
        updated_at: ids::ms_to_rfc3339(row.updated_at),
    }
}

/// Adds the caller's file `meta` to `base_id` and queues it.
async fn add(
    svc: &KnowledgeService,
    user_id: &str,
    base_id: &str,
    meta: FileMeta,
) -> ApiResult<DocumentView> {
    if Format::from_file_name(&meta.name)
        .or_else(|| Format::from_mime(&meta.content_type))
        .is_none()
    {
        return Err(errors::unsupported(&meta.name));
    }
    let now = ids::now_ms();
    let doc = DocumentRow {
        id: ids::new_id(),
        base_id: base_id.to_string(),
        file_id: meta.id,
        file_owner_id: user_id.to_string(),
        name: meta.name,
        content_type: meta.content_type,
        size: i64::try_from(meta.size).unwrap_or(i64::MAX),
        status: "queued".into(),
        progress_done: 0,
        progress_total: 0,
        chunk_count: None,
        error: None,
        created_at: now,
        updated_at: now,
    };
    store::insert_document(&svc.db, &doc).await?;
    Ok(view(doc))
}

/// A file to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocument {
    /// The id of one of the caller's files.
    pub file_id: String,
}

/// Add one of the caller's files to a base (writers); it is indexed in the background.
#[utoipa::path(post, path = "/knowledge/bases/{id}/documents", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")), request_body = AddDocument,
    responses((status = 202, body = DocumentView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 415, description = "A format Skein cannot index", body = ErrorEnvelope)))]
pub async fn add_document(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddDocument>,
) -> ApiResult<(StatusCode, ApiJson<DocumentView>)> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let meta = svc.files.authorise(&user.user_id, &body.file_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(add(&svc, &user.user_id, &base.id, meta).await?),
    ))
}

/// A web page to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddUrl {
    /// An `http` or `https` URL on a public address (private ones only when the admin allows
    /// them); a page or any document Skein indexes.
    pub url: String,
}

/// How long fetching a page may take.
const URL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The file name a fetched page is stored under: the URL's last path segment when it names a
/// format Skein reads, else the host and path with the content type's extension.
fn page_name(url: &reqwest::Url, content_type: &str) -> Option<String> {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("")
        .to_string();
    if Format::from_file_name(&last).is_some() && last.len() <= 200 {
        return Some(last);
    }
    let ext = match Format::from_mime(content_type)? {
        Format::Text => "txt",
        Format::Markdown => "md",
        Format::Html => "html",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Docx => "docx",
        Format::Pptx => "pptx",
        Format::Xlsx => "xlsx",
        Format::Epub => "epub",
        Format::Pdf => "pdf",
        Format::Image => match content_type {
            "image/png" => "png",
            "image/jpeg" => "jpg",
            "image/gif" => "gif",
            "image/webp" => "webp",
            "image/bmp" => "bmp",
            _ => "tiff",
        },
    };
    let stem: String = format!("{}{}", url.host_str().unwrap_or("page"), url.path())
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem: String = stem.trim_matches('-').chars().take(120).collect();
    Some(format!("{stem}.{ext}"))
}

/// Add a web page (or a document on the web) to a base by URL (writers): fetched once, with
/// the server-side request forgery guard, stored among the caller's files, and indexed in the
/// background like an upload.
#[utoipa::path(post, path = "/knowledge/bases/{id}/documents/url", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")), request_body = AddUrl,
    responses((status = 202, body = DocumentView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope), (status = 422, description = "A URL that is invalid, not allowed or could not be fetched", body = ErrorEnvelope)))]
pub async fn add_url(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddUrl>,
) -> ApiResult<(StatusCode, ApiJson<DocumentView>)> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let url = reqwest::Url::parse(body.url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && body.url.len() <= 2048)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "url",
                "Give an http or https URL of at most 2048 characters.",
                "请提供不超过 2048 个字符的 http 或 https 网址。",
            )
        })?;
    let max = usize::try_from(svc.config.max_document_bytes).unwrap_or(usize::MAX);
    let page = crate::net::fetch(&url, svc.config.allow_private_urls, max, URL_TIMEOUT)
        .await
        .map_err(|e| {
            let zh = match &e {
                crate::net::FetchError::NotAllowed(_) => {
                    "该网址不允许访问（私有、本机或链路本地地址，或非 http/https）。".to_string()
                }
                crate::net::FetchError::Unreachable(why) => format!("无法获取该网页：{why}"),
                crate::net::FetchError::TooLarge(limit) => {
                    format!("该网页超过 {limit} 字节的上限。")
                }
            };
            ApiError::invalid_field("url", format!("The URL cannot be added: {e}."), zh)
        })?;
    let name = page_name(&url, &page.content_type)
        .ok_or_else(|| errors::unsupported(&format!("{url} ({})", page.content_type)))?;
    let file = NewFile {
        owner_id: user.user_id.clone(),
        name,
        purpose: FilePurpose::Knowledge,
    };
    let body: skein_core::api::ByteStream = Box::pin(futures::stream::once(async move {
        Ok::<_, std::io::Error>(page.body)
    }));
    let meta = svc.files.store(file, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(add(&svc, &user.user_id, &base.id, meta).await?),
    ))
}

/// The form of an upload (for the OpenAPI document; the body is streamed to the File service).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// The document.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return errors::document_too_large();
    }
    ApiError::bad_request(
        "invalid_multipart",
        format!("The upload was cut off or malformed: {}", e.body_text()),
        format!("上传内容不完整或格式错误：{}", e.body_text()),
    )
}

/// Upload a document straight into a base (writers; multipart field `file`): it is stored
/// among the caller's files (purpose `knowledge`) and indexed in the background.
#[utoipa::path(post, path = "/knowledge/bases/{id}/documents/upload", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id")),
    request_body(content = DocumentUpload, content_type = "multipart/form-data"),
    responses((status = 202, body = DocumentView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn upload_document(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, ApiJson<DocumentView>)> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let mut multipart = multipart.map_err(|e| errors::invalid_multipart(&e))?;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("document").to_string();
        if Format::from_file_name(&name).is_none() {
            return Err(errors::unsupported(&name));
        }
        let file = NewFile {
            owner_id: user.user_id.clone(),
            name,
            purpose: FilePurpose::Knowledge,
        };
        // The File API takes a stream it may keep ('static); the field borrows the request.
        // A small channel hands the pieces over as they arrive, so nothing is buffered whole,
        // and a store that refuses early (too large, over quota) stops the pump.
        let (mut tx, rx) =
            futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let pump = async move {
            let mut field = field;
            while let Some(piece) = field.next().await {
                let piece = piece.map_err(|e| std::io::Error::other(e.body_text()));
                let failed = piece.is_err();
                if futures::SinkExt::send(&mut tx, piece).await.is_err() || failed {
                    break;
                }
            }
        };
        let (_, stored) = futures::join!(pump, svc.files.store(file, Box::pin(rx)));
        let meta = stored?;
        return Ok((
            StatusCode::ACCEPTED,
            ApiJson(add(&svc, &user.user_id, &base.id, meta).await?),
        ));
    }
    Err(ApiError::invalid_field(
        "file",
        "The form has no file field.",
        "表单中没有 file 字段。",
    ))
}

/// A base's documents with their status and progress, newest first.
#[utoipa::path(get, path = "/knowledge/bases/{id}/documents", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), PageQuery),
    responses((status = 200, body = Page<DocumentView>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_documents(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<DocumentView>>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    let (rows, total) = store::documents(&svc.db, &base.id, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.into_iter().map(view).collect(),
        total,
        page,
    )))
}

async fn document_of(
    svc: &KnowledgeService,
    base_id: &str,
    doc_id: &str,
) -> ApiResult<DocumentRow> {
    if !ids::looks_like_id(doc_id) {
        return Err(errors::document_not_found());
    }
    store::document(&svc.db, base_id, doc_id)
        .await?
        .ok_or_else(errors::document_not_found)
}

/// One document with its status and progress.
#[utoipa::path(get, path = "/knowledge/bases/{id}/documents/{doc_id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), ("doc_id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_document(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path((id, doc_id)): Path<(String, String)>,
) -> ApiResult<ApiJson<DocumentView>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    Ok(ApiJson(view(document_of(&svc, &base.id, &doc_id).await?)))
}

/// How long a document's signed file link stays valid.
const FILE_LINK_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// Where a reader opens a document's file.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentFileView {
    /// A signed URL of the file's content, fetched without a session (valid for 10 minutes:
    /// a citation asks again when it is opened).
    pub url: String,
    /// The file's name.
    pub name: String,
    /// Its MIME type.
    pub content_type: String,
}

/// Open a document's file (everyone who may read the base, not only the file's owner): a
/// citation's "open the source". Answers a signed content URL once read access is checked;
/// a user who may not read the base gets the same 404 as for a base that does not exist.
#[utoipa::path(get, path = "/knowledge/bases/{id}/documents/{doc_id}/file", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), ("doc_id" = String, Path, description = "Document id")),
    responses((status = 200, body = DocumentFileView), (status = 404, body = ErrorEnvelope)))]
pub async fn document_file(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path((id, doc_id)): Path<(String, String)>,
) -> ApiResult<ApiJson<DocumentFileView>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    let doc = document_of(&svc, &base.id, &doc_id).await?;
    // The file is read as its owner's (who added it); a file deleted since is a 404.
    let meta = svc
        .files
        .metadata(&doc.file_owner_id, &doc.file_id)
        .await
        .map_err(|e| {
            if e.status().is_client_error() {
                ApiError::not_found("The document's file", "该文档的文件")
            } else {
                e
            }
        })?;
    Ok(ApiJson(DocumentFileView {
        url: svc.files.content_url(&meta.id, FILE_LINK_LIFETIME),
        name: meta.name,
        content_type: meta.content_type,
    }))
}

/// Remove a document with its chunks and vectors (writers); its file stays.
#[utoipa::path(delete, path = "/knowledge/bases/{id}/documents/{doc_id}", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), ("doc_id" = String, Path, description = "Document id")),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_document(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path((id, doc_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let doc = document_of(&svc, &base.id, &doc_id).await?;
    store::delete_document(&svc.db, &doc.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Index a document again from its file (writers); unsearchable until it is ready again.
#[utoipa::path(post, path = "/knowledge/bases/{id}/documents/{doc_id}/reindex", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), ("doc_id" = String, Path, description = "Document id")),
    responses((status = 202, body = DocumentView), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn reindex_document(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path((id, doc_id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, ApiJson<DocumentView>)> {
    let (base, _) = svc.require(&user.user_id, &id, Access::Write).await?;
    let doc = document_of(&svc, &base.id, &doc_id).await?;
    store::reset_document(&svc.db, &doc, ids::now_ms()).await?;
    let doc = document_of(&svc, &base.id, &doc_id).await?;
    Ok((StatusCode::ACCEPTED, ApiJson(view(doc))))
}

/// A chunk as the chunk viewer shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChunkView {
    /// Id.
    pub id: String,
    /// Its document.
    pub document_id: String,
    /// 0-based position in the document.
    pub position: i64,
    /// The text (the heading path on its first line when it has one).
    pub text: String,
    /// Headings above it, outermost first.
    pub headings: Vec<String>,
    /// First page.
    pub page_start: Option<i64>,
    /// Last page.
    pub page_end: Option<i64>,
    /// Tokens.
    pub tokens: i64,
    /// Whether it has an embedding.
    pub embedded: bool,
}

/// The view of a chunk row.
pub(crate) fn chunk_view(c: &ChunkRow) -> ChunkView {
    ChunkView {
        id: c.id.clone(),
        document_id: c.document_id.clone(),
        position: c.position,
        text: c.text.clone(),
        headings: serde_json::from_str(&c.headings).unwrap_or_default(),
        page_start: c.page_start,
        page_end: c.page_end,
        tokens: c.tokens,
        embedded: c.embedded != 0,
    }
}

/// A document's chunks, in order.
#[utoipa::path(get, path = "/knowledge/bases/{id}/documents/{doc_id}/chunks", tag = "knowledge", security(("bearer" = [])),
    params(("id" = String, Path, description = "Base id"), ("doc_id" = String, Path, description = "Document id"), PageQuery),
    responses((status = 200, body = Page<ChunkView>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_chunks(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path((id, doc_id)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<ApiJson<Page<ChunkView>>> {
    let (base, _) = svc.access(&user.user_id, &id).await?;
    let doc = document_of(&svc, &base.id, &doc_id).await?;
    let (rows, total) = store::chunks_of(&svc.db, &doc.id, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.iter().map(chunk_view).collect(),
        total,
        page,
    )))
}
