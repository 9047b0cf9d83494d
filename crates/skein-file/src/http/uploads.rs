//! Upload sessions over HTTP: open one, learn where each part goes (this server, or a
//! presigned URL of the S3 store), send parts (again after a dropped connection), see which
//! parts are there, then complete or abort.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::files::{FileView, view};
use crate::FileService;
use crate::session::{NewSession, StoredPart, UploadRow};

/// What a new upload session is for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUploadInput {
    /// The file's name (made safe: no folders, no control characters).
    pub name: String,
    /// `chat`, `knowledge`, `avatar`, `agent` or `plugin`.
    pub purpose: String,
    /// The file's exact size in bytes.
    pub size: u64,
    /// Bytes per part, 1–64 MiB (default `file.upload_part_bytes`); every part but the last
    /// is exactly this long.
    pub part_size: Option<u64>,
}

/// A part that is in the store.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartView {
    /// 1-based.
    pub number: u32,
    /// Bytes stored.
    pub size: u64,
    /// Whether it has the size it must have (send it again when not).
    pub complete: bool,
}

impl From<StoredPart> for PartView {
    fn from(p: StoredPart) -> Self {
        PartView {
            number: p.number,
            size: p.size,
            complete: p.complete,
        }
    }
}

/// An upload session.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadView {
    /// Id.
    pub id: String,
    /// The file's name.
    pub name: String,
    /// Its purpose.
    pub purpose: String,
    /// Its size in bytes.
    pub size: u64,
    /// Bytes per part (the last part is the rest).
    pub part_size: u64,
    /// Parts, numbered from 1.
    pub part_count: u64,
    /// `open`, or `completing` while a completion runs.
    pub state: String,
    /// Whether parts go straight to the store through presigned URLs (`POST .../part-urls`
    /// says where); otherwise they are sent to this server.
    pub direct: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; the parts are removed after this.
    pub expires_at: String,
    /// The parts in the store (one session's view; absent in the list).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartView>>,
}

fn upload_view(svc: &FileService, row: &UploadRow, parts: Option<Vec<StoredPart>>) -> UploadView {
    UploadView {
        id: row.id.clone(),
        name: row.name.clone(),
        purpose: row.purpose.clone(),
        size: u64::try_from(row.size).unwrap_or(0),
        part_size: u64::try_from(row.part_size).unwrap_or(0),
        part_count: u64::try_from(row.part_count).unwrap_or(0),
        state: row.state.clone(),
        direct: svc.direct_uploads(),
        created_at: ids::ms_to_rfc3339(row.created_at),
        expires_at: ids::ms_to_rfc3339(row.expires_at),
        parts: parts.map(|p| p.into_iter().map(PartView::from).collect()),
    }
}

/// Open an upload session for a large file sent in parts. Refused at once (413) when the
/// purpose's limit or the quota would refuse the file.
#[utoipa::path(post, path = "/files/uploads", tag = "files", security(("bearer" = [])),
    request_body = CreateUploadInput,
    responses((status = 201, body = UploadView), (status = 401, body = ErrorEnvelope),
        (status = 413, description = "Over the purpose's size limit or the quota", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
        (status = 429, description = "Too many sessions open", body = ErrorEnvelope)))]
pub async fn create_upload(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    ApiJson(input): ApiJson<CreateUploadInput>,
) -> ApiResult<(StatusCode, ApiJson<UploadView>)> {
    if input.name.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            "Give the file a name.",
            "请填写文件名。",
        ));
    }
    let purpose = super::files::parse_purpose(&input.purpose)?;
    let row = svc
        .create_upload(NewSession {
            owner_id: user.user_id.clone(),
            name: input.name,
            purpose,
            size: input.size,
            part_size: input.part_size,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(upload_view(&svc, &row, Some(Vec::new()))),
    ))
}

/// The caller's open upload sessions (to resume one after a reload), newest first.
#[utoipa::path(get, path = "/files/uploads", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = Vec<UploadView>), (status = 401, body = ErrorEnvelope)))]
pub async fn list_uploads(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Vec<UploadView>>> {
    let rows = svc.upload_sessions(&user.user_id).await?;
    Ok(ApiJson(
        rows.iter().map(|r| upload_view(&svc, r, None)).collect(),
    ))
}

/// One upload session with the parts the store has: resume by sending the parts missing or
/// not `complete`.
#[utoipa::path(get, path = "/files/uploads/{id}", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = UploadView), (status = 404, body = ErrorEnvelope)))]
pub async fn get_upload(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<UploadView>> {
    let row = svc.upload_session(&user.user_id, &id).await?;
    let parts = svc.stored_parts(&row).await?;
    Ok(ApiJson(upload_view(&svc, &row, Some(parts))))
}

/// Abort an upload session; its parts are removed.
#[utoipa::path(delete, path = "/files/uploads/{id}", tag = "files", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Being completed", body = ErrorEnvelope)))]
pub async fn abort_upload(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    svc.abort_upload(&user.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which parts to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartUrlsInput {
    /// Part numbers (at most 1000 per call).
    pub parts: Vec<u32>,
}

/// Where one part is sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartTarget {
    /// The part.
    pub number: u32,
    /// `PUT`.
    pub method: String,
    /// A presigned URL of the store (send no `Authorization`), or this server's part route
    /// (send the bearer token).
    pub url: String,
    /// Headers to send as they are.
    pub headers: BTreeMap<String, String>,
    /// Whether `url` is the store's own (presigned).
    pub direct: bool,
    /// When a presigned URL stops working (RFC 3339); ask again after.
    pub expires_at: Option<String>,
}

/// Where to send parts: presigned `PUT` URLs straight to the store when it is S3 and
/// `file.s3.presign_uploads` is on, else this server's `PUT .../parts/{number}`.
#[utoipa::path(post, path = "/files/uploads/{id}/part-urls", tag = "files", security(("bearer" = [])),
    request_body = PartUrlsInput,
    responses((status = 200, body = Vec<PartTarget>), (status = 404, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
pub async fn part_urls(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PartUrlsInput>,
) -> ApiResult<ApiJson<Vec<PartTarget>>> {
    if input.parts.is_empty() || input.parts.len() > 1000 {
        return Err(ApiError::invalid_field(
            "parts",
            "Ask for 1 to 1000 parts at a time.",
            "每次请求 1 到 1000 个分片。",
        ));
    }
    let row = svc.upload_session(&user.user_id, &id).await?;
    let expires_at = ids::ms_to_rfc3339(
        ids::now_ms()
            + i64::try_from(svc.config.s3.presign_ttl_secs)
                .unwrap_or(900)
                .saturating_mul(1000),
    );
    let mut out = Vec::with_capacity(input.parts.len());
    for number in input.parts {
        let target = match svc.part_target(&row, number).await? {
            Some(signed) => PartTarget {
                number,
                method: signed.method,
                url: signed.url,
                headers: signed.headers.into_iter().collect(),
                direct: true,
                expires_at: Some(expires_at.clone()),
            },
            None => PartTarget {
                number,
                method: "PUT".into(),
                url: format!("/api/v1/files/uploads/{}/parts/{number}", row.id),
                headers: BTreeMap::new(),
                direct: false,
                expires_at: None,
            },
        };
        out.push(target);
    }
    Ok(ApiJson(out))
}

/// Send one part through this server (the raw bytes as the body, exactly the part's size).
/// Sending a part again replaces it.
#[utoipa::path(put, path = "/files/uploads/{id}/parts/{number}", tag = "files", security(("bearer" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = PartView), (status = 404, body = ErrorEnvelope),
        (status = 408, description = "The part stopped arriving", body = ErrorEnvelope),
        (status = 409, description = "Being completed", body = ErrorEnvelope),
        (status = 422, description = "Wrong part number or size", body = ErrorEnvelope)))]
pub async fn put_part(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path((id, number)): Path<(String, u32)>,
    body: Body,
) -> ApiResult<ApiJson<PartView>> {
    let row = svc.upload_session(&user.user_id, &id).await?;
    let size = svc.put_part(&row, number, body.into_data_stream()).await?;
    Ok(ApiJson(PartView {
        number,
        size,
        complete: true,
    }))
}

/// Complete an upload session: the parts become one file, checked like any upload (size and
/// type limits, sniffed type, quota, the same content stored once). The session and its
/// parts are then gone.
#[utoipa::path(post, path = "/files/uploads/{id}/complete", tag = "files", security(("bearer" = [])),
    responses((status = 201, body = FileView), (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Parts missing, or already being completed", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope)))]
pub async fn complete_upload(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<FileView>)> {
    let meta = svc.complete_upload(&user.user_id, &id).await?;
    let row = svc.owned(&user.user_id, &meta.id).await?;
    Ok((StatusCode::CREATED, ApiJson(view(&svc, &row))))
}
