//! The owner's files: upload, list, usage, read, rename, delete, signed URLs and previews.

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
use utoipa::{IntoParams, ToSchema};

use crate::errors;
use crate::sign::Scope;
use crate::store::{self, FileRow};
use crate::{FileService, meta, sniff, upload};

/// A file as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    /// Its metadata.
    #[serde(flatten)]
    pub meta: FileMeta,
    /// Renamed, RFC 3339.
    pub updated_at: String,
    /// Where its content is downloaded (signed in as the owner).
    pub content_url: String,
    /// Its thumbnail, for images (the original until the thumbnail is ready) and PDFs (their
    /// first page, once rendered): a signed URL an
    /// `<img>` loads without a session, the same for an hour so browsers cache it.
    pub thumbnail_url: Option<String>,
    /// Whether the thumbnail and web-sized copies are ready.
    pub variants_ready: bool,
}

/// The API's view of a row.
pub(crate) fn view(svc: &FileService, row: &FileRow) -> FileView {
    let content_url = format!("/api/v1/files/{}/content", row.id);
    let previewable = row.content_type.starts_with("image/") || row.has_variant("thumb");
    let thumbnail_url = previewable.then(|| {
        // Valid for one to two hours, the same URL within an hour.
        let exp = (ids::now_ms() / 1000 / 3600 + 2) * 3600;
        let sig = svc.signer.sign(Scope::File, &row.id, "thumb", exp);
        svc.public_url(&format!("{content_url}?variant=thumb&exp={exp}&sig={sig}"))
    });
    FileView {
        meta: meta(row),
        updated_at: ids::ms_to_rfc3339(row.updated_at),
        thumbnail_url,
        content_url,
        variants_ready: row.has_variant("thumb"),
    }
}

pub(crate) fn parse_purpose(text: &str) -> ApiResult<FilePurpose> {
    FilePurpose::parse(text.trim()).ok_or_else(|| {
        ApiError::invalid_field(
            "purpose",
            "purpose is one of chat, knowledge, avatar, agent, plugin.",
            "purpose 须为 chat、knowledge、avatar、agent、plugin 之一。",
        )
    })
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return errors::upload_too_large();
    }
    ApiError::bad_request(
        "invalid_multipart",
        format!("The upload was cut off or malformed: {}", e.body_text()),
        format!("上传内容不完整或格式错误：{}", e.body_text()),
    )
}

/// Where an upload's purpose may also be given.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// `chat`, `knowledge`, `avatar`, `agent` or `plugin` (or a `purpose` form field sent
    /// before the `file` field).
    pub purpose: Option<String>,
}

/// The form of an upload (for the OpenAPI document; the body is streamed, never buffered).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// `chat`, `knowledge`, `avatar`, `agent` or `plugin`; before `file`.
    purpose: String,
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload a file (multipart: `purpose`, then `file`). The type is sniffed from the content;
/// the same content uploaded again is stored once.
#[utoipa::path(post, path = "/files", tag = "files", security(("bearer" = [])), params(UploadQuery),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = FileView), (status = 401, body = ErrorEnvelope),
        (status = 413, description = "Over the purpose's size limit or the quota", body = ErrorEnvelope),
        (status = 415, description = "Content of a type the purpose does not take", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn upload(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<UploadQuery>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, ApiJson<FileView>)> {
    let mut multipart = multipart.map_err(|e| errors::invalid_multipart(&e))?;
    let mut purpose = q.purpose.as_deref().map(parse_purpose).transpose()?;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("purpose") => {
                let text = field.text().await.map_err(multipart_error)?;
                purpose = Some(parse_purpose(&text)?);
            }
            Some("file") => {
                let purpose = purpose.ok_or_else(|| {
                    ApiError::invalid_field(
                        "purpose",
                        "Send purpose before the file (or as ?purpose=).",
                        "请在文件之前提供 purpose（或使用 ?purpose=）。",
                    )
                })?;
                let name = field.file_name().unwrap_or("file").to_string();
                let body = Box::pin(field.map(|chunk| chunk.map_err(multipart_error)));
                let file = NewFile {
                    owner_id: user.user_id.clone(),
                    name,
                    purpose,
                };
                let stored = upload::store(&svc, file, body).await?;
                let row = svc.owned(&user.user_id, &stored.id).await?;
                return Ok((StatusCode::CREATED, ApiJson(view(&svc, &row))));
            }
            _ => {}
        }
    }
    Err(ApiError::invalid_field(
        "file",
        "The form has no file field.",
        "表单中没有 file 字段。",
    ))
}

/// Filters of the file list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page number.
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 20).
    pub per_page: Option<u32>,
    /// Only files of this purpose.
    pub purpose: Option<String>,
    /// Only types starting with this (`image/`, `application/pdf`).
    #[serde(rename = "type")]
    pub content_type: Option<String>,
}

/// The caller's files, newest first.
#[utoipa::path(get, path = "/files", tag = "files", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<FileView>), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn list_files(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<ApiJson<Page<FileView>>> {
    let page = PageQuery {
        page: q.page,
        per_page: q.per_page,
    };
    let purpose = q.purpose.as_deref().map(parse_purpose).transpose()?;
    let content_type = q
        .content_type
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if content_type.is_some_and(|t| t.len() > 100) {
        return Err(ApiError::invalid_field(
            "type",
            "type is at most 100 characters.",
            "type 最多 100 个字符。",
        ));
    }
    let filter = store::ListFilter {
        user_id: &user.user_id,
        purpose: purpose.map(FilePurpose::as_str),
        content_type,
    };
    let (rows, total) = store::list(&svc.db, &filter, page.limit(), page.offset()).await?;
    Ok(ApiJson(Page::new(
        rows.iter().map(|r| view(&svc, r)).collect(),
        total,
        page,
    )))
}

/// What a user keeps against their quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileUsage {
    /// Bytes stored (the same content counts once).
    pub used_bytes: u64,
    /// Bytes allowed.
    pub quota_bytes: u64,
    /// Files.
    pub files: u64,
    /// Largest upload per purpose, in bytes.
    pub max_bytes: std::collections::BTreeMap<String, u64>,
}

/// The caller's storage use against their quota.
#[utoipa::path(get, path = "/files/usage", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = FileUsage), (status = 401, body = ErrorEnvelope)))]
pub async fn usage(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<FileUsage>> {
    let (bytes, files) = store::usage(&svc.db, &user.user_id).await?;
    Ok(ApiJson(FileUsage {
        used_bytes: u64::try_from(bytes).unwrap_or(0),
        quota_bytes: svc.config.quota_bytes,
        files: u64::try_from(files).unwrap_or(0),
        max_bytes: FilePurpose::ALL
            .iter()
            .map(|p| (p.as_str().to_string(), svc.config.max_bytes(*p)))
            .collect(),
    }))
}

/// One of the caller's files.
#[utoipa::path(get, path = "/files/{id}", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = FileView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_file(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<FileView>> {
    Ok(ApiJson(view(&svc, &svc.owned(&user.user_id, &id).await?)))
}

/// A new name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameInput {
    /// The name (made safe: no folders, no control characters, at most 255 bytes).
    pub name: String,
}

/// Rename a file.
#[utoipa::path(patch, path = "/files/{id}", tag = "files", security(("bearer" = [])), request_body = RenameInput,
    responses((status = 200, body = FileView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn rename_file(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RenameInput>,
) -> ApiResult<ApiJson<FileView>> {
    if input.name.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            "Give the file a name.",
            "请填写文件名。",
        ));
    }
    svc.owned(&user.user_id, &id).await?;
    let name = sniff::safe_name(&input.name);
    if !store::rename(&svc.db, &user.user_id, &id, &name, ids::now_ms()).await? {
        return Err(errors::not_found());
    }
    Ok(ApiJson(view(&svc, &svc.owned(&user.user_id, &id).await?)))
}

/// Delete a file (and its share links). The stored content goes once no file names it.
#[utoipa::path(delete, path = "/files/{id}", tag = "files", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_file(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    skein_core::api::FileApi::delete(svc.as_ref(), &user.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a signed URL should grant.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInput {
    /// `thumb` or `web` for an image's variant; the original when absent.
    pub variant: Option<String>,
    /// Seconds the URL is valid (10 s to 7 days; default `file.signed_url_ttl_secs`).
    pub ttl_secs: Option<u64>,
}

/// A signed URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUrl {
    /// Fetch it without signing in (behind `file.public_base_url` when configured).
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// A signed, expiring URL of a file's content, which a browser or CDN fetches without a
/// session (`Cache-Control: public`).
#[utoipa::path(post, path = "/files/{id}/url", tag = "files", security(("bearer" = [])), request_body = SignInput,
    responses((status = 200, body = SignedUrl), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn signed_url(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SignInput>,
) -> ApiResult<ApiJson<SignedUrl>> {
    let row = svc.owned(&user.user_id, &id).await?;
    let variant = super::content::parse_variant(input.variant.as_deref())?;
    let ttl = input.ttl_secs.unwrap_or(svc.config.signed_url_ttl_secs);
    if !(10..=7 * 24 * 3600).contains(&ttl) {
        return Err(ApiError::invalid_field(
            "ttl_secs",
            "ttl_secs is between 10 seconds and 7 days.",
            "ttl_secs 须在 10 秒到 7 天之间。",
        ));
    }
    let exp = ids::now_ms() / 1000 + i64::try_from(ttl).unwrap_or(3600);
    let sig = svc.signer.sign(Scope::File, &row.id, variant, exp);
    let mut path = format!("/api/v1/files/{}/content?exp={exp}&sig={sig}", row.id);
    if !variant.is_empty() {
        path.push_str(&format!("&variant={variant}"));
    }
    Ok(ApiJson(SignedUrl {
        url: svc.public_url(&path),
        expires_at: ids::ms_to_rfc3339(exp * 1000),
    }))
}

/// A preview of a file.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// `text`, `image`, `pdf` or `document` (an Office document's or EPUB's extracted text).
    pub kind: String,
    /// The file's type.
    pub content_type: String,
    /// The text, up to `file.preview_max_bytes` (text files, documents).
    pub text: Option<String>,
    /// Whether the text was cut.
    pub truncated: bool,
    /// The web-sized copy (images; a PDF's first page when poppler is installed).
    pub image_url: Option<String>,
    /// Pages (PDFs, when poppler is installed).
    pub page_count: Option<u32>,
}

/// Largest Office document or EPUB read for a preview (the whole archive is needed: its
/// directory is at its end).
const DOCUMENT_PREVIEW_MAX: u64 = 32 * 1024 * 1024;

/// The extracted text of an Office document or EPUB, capped like a text preview.
async fn document_preview(
    svc: &FileService,
    row: &FileRow,
    documents: Arc<dyn skein_core::api::DocumentText>,
    base: Preview,
) -> ApiResult<Preview> {
    if row.size as u64 > DOCUMENT_PREVIEW_MAX {
        return Err(errors::preview_too_large(DOCUMENT_PREVIEW_MAX));
    }
    let bytes = svc
        .storage
        .read_head(
            &crate::storage::object_key(&row.object_id),
            DOCUMENT_PREVIEW_MAX,
        )
        .await?;
    let content_type = row.content_type.clone();
    let text = tokio::task::spawn_blocking(move || documents.text(&content_type, &bytes))
        .await
        .map_err(|e| ApiError::internal(format!("document preview: {e}")))?
        .map_err(errors::document_unreadable)?;
    let cap = usize::try_from(svc.config.preview_max_bytes).unwrap_or(usize::MAX);
    let truncated = text.len() > cap;
    let text = if truncated {
        // Cut on a character boundary.
        let mut end = cap;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    } else {
        text
    };
    Ok(Preview {
        kind: "document".into(),
        text: Some(text),
        truncated,
        ..base
    })
}

/// A preview: text (capped), an image's web-sized copy, a PDF's page count, or an Office
/// document's or EPUB's extracted text.
#[utoipa::path(get, path = "/files/{id}/preview", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = Preview), (status = 404, body = ErrorEnvelope),
        (status = 422, description = "No preview for this type", body = ErrorEnvelope)))]
pub async fn preview(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Preview>> {
    let row = svc.owned(&user.user_id, &id).await?;
    let base = Preview {
        kind: String::new(),
        content_type: row.content_type.clone(),
        text: None,
        truncated: false,
        image_url: None,
        page_count: None,
    };
    let ct = row.content_type.as_str();
    if ct.starts_with("text/") || ct == "application/json" {
        let cap = svc.config.preview_max_bytes;
        let bytes = svc
            .storage
            .read_head(&crate::storage::object_key(&row.object_id), cap)
            .await?;
        let truncated = (row.size as u64) > cap;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t.to_string(),
            // Cut inside a character: keep what is whole.
            Err(e) => String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned(),
        };
        return Ok(ApiJson(Preview {
            kind: "text".into(),
            text: Some(text),
            truncated,
            ..base
        }));
    }
    if ct.starts_with("image/") {
        return Ok(ApiJson(Preview {
            kind: "image".into(),
            image_url: Some(format!("/api/v1/files/{}/content?variant=web", row.id)),
            ..base
        }));
    }
    if ct == "application/pdf" {
        return Ok(ApiJson(Preview {
            kind: "pdf".into(),
            page_count: meta(&row).page_count,
            image_url: row
                .has_variant("web")
                .then(|| format!("/api/v1/files/{}/content?variant=web", row.id)),
            ..base
        }));
    }
    if let Some(documents) = svc.documents.clone()
        && documents.reads(ct)
    {
        return document_preview(&svc, &row, documents, base)
            .await
            .map(ApiJson);
    }
    Err(errors::no_preview())
}
