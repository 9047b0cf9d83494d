//! Downloads: byte ranges (206, 416), ETags (304), a safe `Content-Disposition` (RFC 5987 for
//! non-ASCII names), and `Cache-Control` that is private for owners and public for signed URLs.

use std::ops::Range;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiQuery;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::IntoParams;

use super::MaybeUser;
use crate::FileService;
use crate::errors;
use crate::sign::{Scope, SignatureError};
use crate::storage::{object_key, variant_key};
use crate::store::{self, FileRow};

/// How a download may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caching {
    /// The owner's own download: revalidate with the ETag each time.
    Private,
    /// A signed URL: anyone may cache it until it expires (a CDN in front).
    Public {
        /// Seconds left.
        max_age: i64,
    },
    /// A share's download, counted each time: never cached.
    NoStore,
}

/// What a download may ask for besides the file.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContentQuery {
    /// `thumb` or `web` for an image's variant (JPEG or WebP, `file.image_format`); the original when absent.
    pub variant: Option<String>,
    /// Expiry of a signed URL (unix seconds).
    pub exp: Option<i64>,
    /// Signature of a signed URL.
    pub sig: Option<String>,
    /// `true` to save rather than show.
    pub download: Option<bool>,
}

/// `""`, `thumb` or `web`.
pub(crate) fn parse_variant(text: Option<&str>) -> ApiResult<&'static str> {
    match text.unwrap_or("") {
        "" | "original" => Ok(""),
        "thumb" => Ok("thumb"),
        "web" => Ok("web"),
        _ => Err(ApiError::invalid_field(
            "variant",
            "variant is thumb or web.",
            "variant 须为 thumb 或 web。",
        )),
    }
}

fn signature_error(e: SignatureError) -> ApiError {
    match e {
        SignatureError::Expired => errors::url_expired(),
        SignatureError::Forged => errors::invalid_signature(),
    }
}

/// Download a file's content: as its owner, or with a signed URL (`exp`, `sig`) and no
/// session. Supports `Range` and `If-None-Match`.
#[utoipa::path(get, path = "/files/{id}/content", tag = "files", params(ContentQuery),
    responses((status = 200, description = "The content"), (status = 206, description = "A range of it"),
        (status = 304, description = "Not modified"), (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Expired or forged signature", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 416, body = ErrorEnvelope)))]
pub async fn download(
    State(svc): State<Arc<FileService>>,
    MaybeUser(user): MaybeUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ContentQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let variant = parse_variant(q.variant.as_deref())?;
    let (row, caching) = match (q.exp, q.sig.as_deref()) {
        (Some(exp), Some(sig)) => {
            let now = ids::now_ms() / 1000;
            svc.signer
                .verify(Scope::File, &id, variant, exp, sig, now)
                .map_err(signature_error)?;
            let row = store::file_any_owner(&svc.db, &id)
                .await?
                .ok_or_else(errors::not_found)?;
            (row, Caching::Public { max_age: exp - now })
        }
        (None, None) => {
            let user = user.ok_or_else(ApiError::unauthorized)?;
            (svc.owned(&user.user_id, &id).await?, Caching::Private)
        }
        _ => return Err(signature_error(SignatureError::Forged)),
    };
    serve(
        &svc,
        &row,
        variant,
        caching,
        q.download.unwrap_or(false),
        &headers,
    )
    .await
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// The whole file (no header, several ranges, or a header we do not read).
    Whole,
    /// One range, end exclusive.
    Part(Range<u64>),
    /// A range wholly outside the file.
    Unsatisfiable,
}

/// Reads one `bytes=` range (`a-b`, `a-`, `-n`); several ranges are answered whole, which
/// RFC 9110 allows.
pub(crate) fn parse_range(value: &str, size: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.is_empty(), end.is_empty()) {
        (true, true) => return RangeAsk::Whole,
        (true, false) => match end.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size)),
            Err(_) => return RangeAsk::Whole,
        },
        (false, _) => {
            let Ok(a) = start.parse::<u64>() else {
                return RangeAsk::Whole;
            };
            let b = if end.is_empty() {
                size
            } else {
                match end.parse::<u64>() {
                    Ok(b) if b >= a => b.saturating_add(1).min(size),
                    _ => return RangeAsk::Whole,
                }
            };
            Some((a, b))
        }
    };
    match parsed {
        Some((a, b)) if a < size && a < b => RangeAsk::Part(a..b),
        _ => RangeAsk::Unsatisfiable,
    }
}

/// `inline` or `attachment` with the name as ASCII (`filename=`) and as UTF-8 (`filename*=`,
/// RFC 5987), so Chinese names survive and no name can break out of the header.
pub(crate) fn disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Types a browser may show in place: images and PDFs. Anything else (text that could be
/// HTML, scripts) is only ever saved.
fn shows_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "application/pdf"
    )
}

/// Answers a download of `row` (or its `variant`), honouring `Range` and `If-None-Match`.
pub(crate) async fn serve(
    svc: &FileService,
    row: &FileRow,
    variant: &str,
    caching: Caching,
    force_download: bool,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    // A variant not made yet (or never: not an image) falls back to the original.
    let use_variant = !variant.is_empty() && row.has_variant(variant);
    let (key, content_type, etag) = if use_variant {
        (
            variant_key(&row.object_id, variant),
            row.variant_content_type().to_string(),
            format!("\"{}-{variant}\"", row.sha256),
        )
    } else {
        (
            object_key(&row.object_id),
            row.content_type.clone(),
            format!("\"{}\"", row.sha256),
        )
    };
    let size = if use_variant {
        svc.storage.size(&key).await?
    } else {
        u64::try_from(row.size).unwrap_or(0)
    };
    let cache_control = match caching {
        Caching::Private => "private, no-cache".to_string(),
        Caching::Public { max_age } => format!("public, max-age={}, immutable", max_age.max(0)),
        Caching::NoStore => "private, no-store".to_string(),
    };
    let mut common = HeaderMap::new();
    put(&mut common, header::ETAG, &etag);
    put(&mut common, header::CACHE_CONTROL, &cache_control);
    put(&mut common, header::ACCEPT_RANGES, "bytes");
    put(&mut common, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Even if a browser were made to render it, the content runs nothing.
    put(
        &mut common,
        header::CONTENT_SECURITY_POLICY,
        "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'",
    );
    if caching != Caching::NoStore
        && let Some(given) = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        && given.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        })
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let name = if use_variant {
        let ext = if row.variant_content_type() == "image/webp" {
            "webp"
        } else {
            "jpg"
        };
        format!("{}.{variant}.{ext}", row.name)
    } else {
        row.name.clone()
    };
    put(
        &mut common,
        header::CONTENT_DISPOSITION,
        &disposition(!force_download && shows_inline(&content_type), &name),
    );
    put(&mut common, header::CONTENT_TYPE, &content_type);
    // Share downloads are counted one by one, so they never hand out a URL that could be
    // fetched again; a signed URL's redirect lives no longer than the signed URL.
    let presign_ttl = match caching {
        Caching::Private => Some(svc.presign_ttl()),
        Caching::Public { max_age } => Some(
            svc.presign_ttl()
                .min(std::time::Duration::from_secs(max_age.max(1) as u64)),
        ),
        Caching::NoStore => None,
    };
    if svc.config.s3.presign_downloads
        && let Some(ttl) = presign_ttl
        && let Some(signed) = svc
            .storage
            .presign_read(
                &key,
                ttl,
                &content_type,
                &disposition(!force_download && shows_inline(&content_type), &name),
            )
            .await?
    {
        // The store sends the bytes (ranges included: the client repeats its `Range` there).
        // The redirect itself is not cached: the URL it names expires.
        let mut headers = HeaderMap::new();
        put(&mut headers, header::LOCATION, &signed.url);
        put(&mut headers, header::CACHE_CONTROL, "private, no-store");
        put(&mut headers, header::ETAG, &etag);
        return Ok((StatusCode::FOUND, headers).into_response());
    }
    // `If-Range` with another validator means the client's copy is stale: send it whole.
    let range_allowed = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag);
    let ask = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) if range_allowed => parse_range(value, size),
        _ => RangeAsk::Whole,
    };
    let (status, range) = match ask {
        RangeAsk::Whole => (StatusCode::OK, 0..size),
        RangeAsk::Part(range) => {
            put(
                &mut common,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{size}", range.start, range.end - 1),
            );
            (StatusCode::PARTIAL_CONTENT, range)
        }
        RangeAsk::Unsatisfiable => {
            let mut response = errors::range_not_satisfiable(size).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    put(
        &mut common,
        header::CONTENT_LENGTH,
        &(range.end - range.start).to_string(),
    );
    let body = svc.storage.read(&key, range).await?;
    Ok((status, common, Body::from_stream(body)).into_response())
}

/// Sets a header whose value is valid (every value here is made by us; a name with bytes a
/// header cannot carry was already made safe by `disposition`).
fn put(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeAsk::Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), RangeAsk::Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), RangeAsk::Part(90..100));
        assert_eq!(parse_range("bytes=-500", 100), RangeAsk::Part(0..100));
        assert_eq!(parse_range("bytes=95-200", 100), RangeAsk::Part(95..100));
        assert_eq!(parse_range("bytes=100-", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-2", 100), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=0-", 0), RangeAsk::Unsatisfiable);
    }

    #[test]
    fn dispositions_escape_and_encode() {
        assert_eq!(
            disposition(false, "报告.pdf"),
            "attachment; filename=\"__.pdf\"; filename*=UTF-8''%E6%8A%A5%E5%91%8A.pdf"
        );
        let d = disposition(true, "a\"b\\c.png");
        assert!(d.starts_with("inline; filename=\"a_b_c.png\""), "{d}");
    }
}
