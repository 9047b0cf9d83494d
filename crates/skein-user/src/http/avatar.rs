//! Avatars: an uploaded picture, cropped to a square and stored small (256 px PNG) through the
//! File service, or, when there is none, a generated one: initials on a colour derived from
//! the user id, so it is the same on every page and every instance.
//!
//! Avatars are served without sign-in (an `<img>` sends no bearer token) at
//! `/api/v1/users/{id}/avatar?size=N`, at the sizes of `crate::avatars` (resized once, kept,
//! revalidated by ETag); they show nothing but the picture or the initials.

use std::io::Cursor;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use skein_core::api::{FilePurpose, NewFile};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::ids::now_ms;
use skein_core::{ApiError, ApiResult};
use utoipa::{IntoParams, ToSchema};

use crate::avatars::{self, Format};
use crate::errors;
use crate::model::Profile;
use crate::{UserService, store};

/// The largest upload accepted.
pub const MAX_AVATAR_BYTES: usize = 5 * 1024 * 1024;
/// The side of the stored square, pixels.
const SIDE: u32 = 256;
/// Pictures with more pixels than this are refused before they are decoded (pixel bombs):
/// 4096 × 4096 is more than any avatar needs, and decodes to at most 64 MiB.
const MAX_PIXELS: u64 = 16_777_216;
/// Most memory one decode may take, whatever the header claimed.
const MAX_DECODE_BYTES: u64 = 96 * 1024 * 1024;
/// Pictures decoded at once: a burst of uploads waits rather than multiplying the memory.
static DECODES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// An avatar upload: one multipart field `file` with a JPEG, PNG, WebP or GIF image.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AvatarUpload {
    /// The picture, at most 5 MiB.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload an avatar: it is cropped to a square, stored at 256 px and becomes `avatar_url`.
#[utoipa::path(put, path = "/user/avatar", tag = "user", security(("bearer" = [])),
    request_body(content = AvatarUpload, content_type = "multipart/form-data"),
    responses(
        (status = 200, body = Profile),
        (status = 413, description = "Over 5 MiB", body = ErrorEnvelope),
        (status = 422, description = "Not an image this server reads", body = ErrorEnvelope),
        (status = 503, description = "No file storage in this process", body = ErrorEnvelope),
    ))]
pub async fn upload_avatar(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
    mut form: Multipart,
) -> ApiResult<ApiJson<Profile>> {
    let Some(files) = svc.files.clone() else {
        return Err(ApiError::unavailable("file storage"));
    };
    let mut bytes = None;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        if field.name() == Some("file") {
            bytes = Some(field.bytes().await.map_err(bad_form)?);
            break;
        }
    }
    let Some(bytes) = bytes else {
        return Err(ApiError::invalid_field(
            "file",
            "Send the picture in a multipart field named `file`.",
            "请在名为 `file` 的 multipart 字段中上传图片。",
        ));
    };
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(errors::too_large());
    }
    let permit = DECODES.acquire().await.map_err(ApiError::internal)?;
    let png = tokio::task::spawn_blocking(move || square_png(&bytes))
        .await
        .map_err(ApiError::internal)??;
    drop(permit);
    let body = futures::stream::once(async move { Ok(bytes::Bytes::from(png)) }).boxed();
    let meta = files
        .store(
            NewFile {
                owner_id: user.user_id.clone(),
                name: "avatar.png".into(),
                purpose: FilePurpose::Avatar,
            },
            body,
        )
        .await?;
    let previous =
        store::set_avatar_file(svc.db.pool(), &user.user_id, Some(&meta.id), now_ms()).await?;
    // The old picture goes, unless it is the same content (the File service dedups).
    if let Some(old) = previous.filter(|old| *old != meta.id)
        && let Err(error) = files.delete(&user.user_id, &old).await
    {
        tracing::warn!(%error, "old avatar not deleted");
    }
    svc.forget_user_sessions(&user.user_id);
    Ok(ApiJson(svc.profile_of(&user.user_id).await?))
}

/// Remove the uploaded avatar; the generated one shows again.
#[utoipa::path(delete, path = "/user/avatar", tag = "user", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = ErrorEnvelope)))]
pub async fn delete_avatar(
    State(svc): State<Arc<UserService>>,
    user: AuthUser,
) -> ApiResult<ApiJson<Profile>> {
    let previous = store::set_avatar_file(svc.db.pool(), &user.user_id, None, now_ms()).await?;
    if let (Some(old), Some(files)) = (previous, svc.files.as_ref())
        && let Err(error) = files.delete(&user.user_id, &old).await
    {
        tracing::warn!(%error, "old avatar not deleted");
    }
    Ok(ApiJson(svc.profile_of(&user.user_id).await?))
}

/// Which size of avatar to serve.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvatarQuery {
    /// Side in pixels, 16 to 512; snapped to the nearest of 32, 64, 128 and 256. Default 256.
    pub size: Option<String>,
}

/// A user's avatar at a size: the uploaded picture (PNG, or lossless WebP when `Accept` lists
/// it), or generated initials (SVG). Anyone may fetch any user's (an `<img>` sends no bearer
/// token); it shows nothing but the picture or the initials. A strong ETag answers a matching
/// `If-None-Match` with 304.
#[utoipa::path(get, path = "/users/{id}/avatar", tag = "user",
    params(("id" = String, Path, description = "User id"), AvatarQuery),
    responses(
        (status = 200, description = "image/png, image/webp or image/svg+xml", content_type = "image/png"),
        (status = 304, description = "The browser's copy (its If-None-Match) is current"),
        (status = 404, body = ErrorEnvelope),
        (status = 422, description = "A size that is not a number from 16 to 512 (`avatar_size`)", body = ErrorEnvelope),
    ))]
pub async fn get_avatar(
    State(svc): State<Arc<UserService>>,
    Path(id): Path<String>,
    Query(query): Query<AvatarQuery>,
    request: HeaderMap,
) -> ApiResult<Response> {
    let size = parse_size(query.size.as_deref())?;
    if !skein_core::ids::looks_like_id(&id) {
        return Err(ApiError::not_found("User", "用户"));
    }
    let Some(user) = store::user_by_id(svc.db.pool(), &id).await? else {
        return Err(ApiError::not_found("User", "用户"));
    };
    let if_none_match = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let accept = request.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let mut headers = HeaderMap::new();
    // Kept by browsers and shared caches, but checked every time: the address of a generated
    // avatar stays the same when the name (its initials) changes.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, no-cache"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Accept"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let (Some(file_id), Some(files)) = (
        store::avatar_file(svc.db.pool(), &id).await?,
        svc.files.as_ref(),
    ) {
        let format = Format::from_accept(accept);
        let etag = avatars::uploaded_etag(&file_id, size, format);
        set_etag(&mut headers, &etag)?;
        if avatars::matches(if_none_match, &etag) {
            return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
        }
        match sized(&svc, files.as_ref(), &id, &file_id, size, format).await {
            Ok(bytes) => {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                return Ok((StatusCode::OK, headers, bytes).into_response());
            }
            Err(error) => {
                tracing::warn!(%error, user_id = %id, "avatar file unusable; showing initials");
                headers.remove(header::ETAG);
            }
        }
    }
    let etag = avatars::generated_etag(&user.id, &user.display_name, size);
    set_etag(&mut headers, &etag)?;
    if avatars::matches(if_none_match, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    // The SVG is ours and holds only escaped text, but a strict CSP keeps it inert anyway.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok((
        StatusCode::OK,
        headers,
        initials_svg(&user.id, &user.display_name, size),
    )
        .into_response())
}

/// The `size` query as a served size, or a 422 that says which sizes there are.
fn parse_size(raw: Option<&str>) -> ApiResult<u32> {
    let asked = match raw.map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<u32>().map_err(|_| errors::size_refused())?),
    };
    avatars::snap(asked).map_err(|_| errors::size_refused())
}

fn set_etag(headers: &mut HeaderMap, etag: &str) -> ApiResult<()> {
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(etag).map_err(ApiError::internal)?,
    );
    Ok(())
}

/// The uploaded avatar `file_id` at `size` in `format`: from the cache, or read from the File
/// service, resized and kept.
async fn sized(
    svc: &UserService,
    files: &dyn skein_core::api::FileApi,
    owner: &str,
    file_id: &str,
    size: u32,
    format: Format,
) -> Result<bytes::Bytes, String> {
    if let Some(kept) = svc.avatar_cache.get(file_id, size, format) {
        return Ok(kept);
    }
    let content = files
        .open(owner, file_id, None)
        .await
        .map_err(|e| e.message(skein_core::i18n::Lang::En).to_string())?;
    let mut original = Vec::new();
    let mut body = content.body;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        // A stored avatar is a 256 px PNG; anything far larger is not one of ours.
        if original.len() + chunk.len() > MAX_AVATAR_BYTES {
            return Err("the stored avatar is too large".into());
        }
        original.extend_from_slice(&chunk);
    }
    // The stored PNG is exactly what a default-size PNG request wants: no work to do.
    let rendered = if size == SIDE && format == Format::Png {
        original
    } else {
        let permit = DECODES.acquire().await.map_err(|e| e.to_string())?;
        let out = tokio::task::spawn_blocking(move || avatars::render(&original, size, format))
            .await
            .map_err(|e| e.to_string())??;
        drop(permit);
        out
    };
    let rendered = bytes::Bytes::from(rendered);
    svc.avatar_cache
        .insert(file_id, size, format, rendered.clone());
    Ok(rendered)
}

/// Decodes an upload, crops its centre square and encodes it as a 256 px PNG (EXIF and any
/// other metadata are dropped on the way).
fn square_png(bytes: &[u8]) -> ApiResult<Vec<u8>> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| errors::not_an_image())?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|_| errors::not_an_image())?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(errors::not_an_image());
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| errors::not_an_image())?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let picture = reader.decode().map_err(|_| errors::not_an_image())?;
    let square = picture.resize_to_fill(SIDE, SIDE, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    square
        .to_rgba8()
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(ApiError::internal)?;
    Ok(out)
}

/// A generated avatar: up to two initials on a colour picked from the user id, declared `size`
/// px (the drawing is vector; only the size it declares changes, so it lays out like the
/// uploaded picture at that size).
pub fn initials_svg(user_id: &str, name: &str, size: u32) -> String {
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let initials = if initials.is_empty() {
        "?".to_string()
    } else {
        initials
    };
    let hash = crate::avatars::fnv1a(user_id);
    let hue = hash % 360;
    let escaped = initials
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 256 256\">\
         <rect width=\"256\" height=\"256\" fill=\"hsl({hue},55%,45%)\"/>\
         <text x=\"50%\" y=\"50%\" dy=\".35em\" text-anchor=\"middle\" fill=\"#fff\" \
         font-family=\"system-ui,sans-serif\" font-size=\"104\">{escaped}</text></svg>"
    )
}

fn bad_form(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        errors::too_large()
    } else {
        ApiError::bad_request(
            "malformed_multipart",
            "The upload is not valid multipart data.",
            "上传内容不是合法的 multipart 数据。",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_are_stable_escaped_and_coloured_by_id() {
        let a = initials_svg("0190-a", "Ada Lovelace", SIDE);
        assert!(a.contains(">AL<"));
        assert_eq!(a, initials_svg("0190-a", "Ada Lovelace", SIDE));
        assert_ne!(
            a,
            initials_svg("0190-b", "Ada Lovelace", SIDE),
            "another id, another colour"
        );
        assert!(initials_svg("x", "<b> &", SIDE).contains("&lt;&amp;"));
        assert!(initials_svg("x", "  ", SIDE).contains(">?<"));
        assert!(initials_svg("x", "张 三", SIDE).contains(">张三<"));
    }
}
