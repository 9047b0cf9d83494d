//! Share links: the owner creates (expiry, optional password, download limit), lists and
//! revokes them; anyone with the link reads its metadata and downloads, after the password
//! when there is one (wrong ones are rate-limited per share). Downloads are counted.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::limit::Quota;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::{IntoParams, ToSchema};

use super::content::{Caching, RangeAsk, parse_range, serve};
use crate::FileService;
use crate::errors;
use crate::sign::{Scope, SignatureError};
use crate::store::{self, ShareRow};

/// How long a download link handed out after the password stays valid.
const ACCESS_TTL_SECS: i64 = 600;

/// A share link as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    /// Id (to revoke it).
    pub id: String,
    /// The token in the link.
    pub token: String,
    /// The share page in the web app.
    pub url: String,
    /// The shared file.
    pub file_id: String,
    /// RFC 3339, or none for no expiry.
    pub expires_at: Option<String>,
    /// Most downloads, or none for no limit.
    pub max_downloads: Option<i64>,
    /// Downloads so far.
    pub downloads: i64,
    /// Whether a password is asked.
    pub password_required: bool,
    /// Whether it was revoked.
    pub revoked: bool,
    /// RFC 3339.
    pub created_at: String,
}

fn share_view(svc: &FileService, s: &ShareRow) -> ShareView {
    ShareView {
        id: s.id.clone(),
        token: s.token.clone(),
        url: svc.public_url(&format!("/s/{}", s.token)),
        file_id: s.file_id.clone(),
        expires_at: s.expires_at.map(ids::ms_to_rfc3339),
        max_downloads: s.max_downloads,
        downloads: s.downloads,
        password_required: s.password_hash.is_some(),
        revoked: s.revoked_at.is_some(),
        created_at: ids::ms_to_rfc3339(s.created_at),
    }
}

/// A new share link.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareInput {
    /// Seconds until it expires (1 s to 365 days); none for no expiry.
    pub expires_in_secs: Option<u64>,
    /// A password to ask for (4–128 characters); stored as an argon2id hash.
    pub password: Option<String>,
    /// Most downloads (1–1,000,000); none for no limit.
    pub max_downloads: Option<i64>,
}

/// Share a file: a link anyone can open, with an optional expiry, password and download limit.
#[utoipa::path(post, path = "/files/{id}/shares", tag = "shares", security(("bearer" = [])), request_body = ShareInput,
    responses((status = 201, body = ShareView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_share(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ShareInput>,
) -> ApiResult<(StatusCode, ApiJson<ShareView>)> {
    let file = svc.owned(&user.user_id, &id).await?;
    let now = ids::now_ms();
    let expires_at = match input.expires_in_secs {
        None => None,
        Some(secs) if (1..=365 * 24 * 3600).contains(&secs) => {
            Some(now + i64::try_from(secs).unwrap_or(0) * 1000)
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "expires_in_secs",
                "expires_in_secs is between 1 second and 365 days.",
                "expires_in_secs 须在 1 秒到 365 天之间。",
            ));
        }
    };
    if input
        .max_downloads
        .is_some_and(|n| !(1..=1_000_000).contains(&n))
    {
        return Err(ApiError::invalid_field(
            "max_downloads",
            "max_downloads is between 1 and 1,000,000.",
            "max_downloads 须在 1 到 1,000,000 之间。",
        ));
    }
    let password_hash = match input.password.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) if (4..=128).contains(&p.chars().count()) => Some(hash_password(p).await?),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "password",
                "A share password has 4 to 128 characters.",
                "分享密码须为 4 到 128 个字符。",
            ));
        }
    };
    let mut token = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let share = ShareRow {
        id: ids::new_id(),
        token: URL_SAFE_NO_PAD.encode(token),
        file_id: file.id.clone(),
        user_id: user.user_id.clone(),
        password_hash,
        expires_at,
        max_downloads: input.max_downloads,
        downloads: 0,
        revoked_at: None,
        created_at: now,
    };
    store::insert_share(&svc.db, &share).await?;
    Ok((StatusCode::CREATED, ApiJson(share_view(&svc, &share))))
}

/// The share links of a file, newest first (revoked ones included).
#[utoipa::path(get, path = "/files/{id}/shares", tag = "shares", security(("bearer" = [])),
    responses((status = 200, body = Vec<ShareView>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_shares(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Vec<ShareView>>> {
    let file = svc.owned(&user.user_id, &id).await?;
    let shares = store::shares_of(&svc.db, &user.user_id, &file.id).await?;
    Ok(ApiJson(
        shares.iter().map(|s| share_view(&svc, s)).collect(),
    ))
}

/// Revoke a share link: it stops working at once.
#[utoipa::path(delete, path = "/files/{id}/shares/{share_id}", tag = "shares", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_share(
    State(svc): State<Arc<FileService>>,
    user: AuthUser,
    Path((id, share_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if !store::revoke_share(&svc.db, &user.user_id, &id, &share_id, ids::now_ms()).await? {
        return Err(ApiError::not_found("Share link", "分享链接"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A share as the public sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicShare {
    /// The file's name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Its type.
    pub content_type: String,
    /// RFC 3339, or none.
    pub expires_at: Option<String>,
    /// Whether a password is needed to download.
    pub password_required: bool,
    /// Downloads left, or none for no limit.
    pub downloads_left: Option<i64>,
    /// Where to download when no password is needed.
    pub content_url: Option<String>,
}

/// The live share behind `token`: revoked or unknown is 404; expired or used up is 410.
async fn live_share(svc: &FileService, token: &str) -> ApiResult<ShareRow> {
    let gone = || ApiError::not_found("Share link", "分享链接");
    if token.len() > 64 {
        return Err(gone());
    }
    let share = store::share_by_token(&svc.db, token)
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or_else(gone)?;
    if share.expires_at.is_some_and(|e| e <= ids::now_ms()) {
        return Err(errors::share_expired());
    }
    if share.max_downloads.is_some_and(|m| share.downloads >= m) {
        return Err(errors::exhausted());
    }
    Ok(share)
}

/// What a share link points to (no sign-in).
#[utoipa::path(get, path = "/shares/{token}", tag = "shares",
    responses((status = 200, body = PublicShare), (status = 404, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope)))]
pub async fn share_info(
    State(svc): State<Arc<FileService>>,
    Path(token): Path<String>,
) -> ApiResult<ApiJson<PublicShare>> {
    let share = live_share(&svc, &token).await?;
    let file = store::file_any_owner(&svc.db, &share.file_id)
        .await?
        .ok_or_else(errors::not_found)?;
    Ok(ApiJson(PublicShare {
        name: file.name,
        size: u64::try_from(file.size).unwrap_or(0),
        content_type: file.content_type,
        expires_at: share.expires_at.map(ids::ms_to_rfc3339),
        password_required: share.password_hash.is_some(),
        downloads_left: share.max_downloads.map(|m| m - share.downloads),
        content_url: share
            .password_hash
            .is_none()
            .then(|| format!("/api/v1/shares/{}/content", share.token)),
    }))
}

/// The password of a share.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessInput {
    /// The password the owner set.
    pub password: String,
}

/// A download link, valid for a few minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessGrant {
    /// Download from here.
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Give a share's password and get a download link. Wrong passwords are limited per share
/// (`file.share_password_attempts_per_minute`), answered 429 past that.
#[utoipa::path(post, path = "/shares/{token}/access", tag = "shares", request_body = AccessInput,
    responses((status = 200, body = AccessGrant), (status = 403, description = "Wrong password", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
pub async fn share_access(
    State(svc): State<Arc<FileService>>,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<AccessInput>,
) -> ApiResult<ApiJson<AccessGrant>> {
    let share = live_share(&svc, &token).await?;
    if let Some(hash) = &share.password_hash {
        let key = format!("file:share-password:{}", share.id);
        let quota = Quota::per_minute(svc.config.share_password_attempts_per_minute);
        // Asked before the (slow, memory-hungry) hash is checked, so a flood costs nothing.
        let decision = svc.limiter.check(&key, quota, 0).await.map_err(|e| {
            tracing::warn!(error = %e, "share password limiter unavailable");
            ApiError::unavailable("rate limiter")
        })?;
        if !decision.allowed {
            let wait = decision.retry_after.map_or(60, |d| d.as_secs().max(1));
            return Err(ApiError::too_many_requests(wait));
        }
        if !verify_password(input.password, hash.clone()).await? {
            let _ = svc.limiter.check(&key, quota, 1).await;
            return Err(errors::wrong_share_password());
        }
    }
    let exp = ids::now_ms() / 1000 + ACCESS_TTL_SECS;
    let sig = svc.signer.sign(Scope::Share, &share.token, "", exp);
    Ok(ApiJson(AccessGrant {
        url: svc.public_url(&format!(
            "/api/v1/shares/{}/content?exp={exp}&sig={sig}",
            share.token
        )),
        expires_at: ids::ms_to_rfc3339(exp * 1000),
    }))
}

/// The grant of a password-protected share's download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShareContentQuery {
    /// From `POST /shares/{token}/access`.
    pub exp: Option<i64>,
    /// From `POST /shares/{token}/access`.
    pub sig: Option<String>,
}

/// Download a shared file (no sign-in; a password-protected share needs the link from
/// `/access`). Each download that starts at the first byte counts.
#[utoipa::path(get, path = "/shares/{token}/content", tag = "shares", params(ShareContentQuery),
    responses((status = 200, description = "The content"), (status = 206, description = "A range of it"),
        (status = 401, description = "Password needed", body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 410, body = ErrorEnvelope)))]
pub async fn share_download(
    State(svc): State<Arc<FileService>>,
    Path(token): Path<String>,
    ApiQuery(q): ApiQuery<ShareContentQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let share = live_share(&svc, &token).await?;
    if share.password_hash.is_some() {
        let (Some(exp), Some(sig)) = (q.exp, q.sig.as_deref()) else {
            return Err(errors::share_password_required());
        };
        svc.signer
            .verify(
                Scope::Share,
                &share.token,
                "",
                exp,
                sig,
                ids::now_ms() / 1000,
            )
            .map_err(|e| match e {
                SignatureError::Expired => errors::share_url_expired(),
                SignatureError::Forged => errors::share_invalid_signature(),
            })?;
    }
    let file = store::file_any_owner(&svc.db, &share.file_id)
        .await?
        .ok_or_else(errors::not_found)?;
    let size = u64::try_from(file.size).unwrap_or(0);
    // A resumed download (a range past the first byte) is the same download, not another.
    let starts_fresh = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(value) => match parse_range(value, size) {
            RangeAsk::Part(range) => range.start == 0,
            RangeAsk::Whole | RangeAsk::Unsatisfiable => true,
        },
        None => true,
    };
    if starts_fresh && !store::count_download(&svc.db, &share.id, ids::now_ms()).await? {
        return Err(errors::exhausted());
    }
    serve(&svc, &file, "", Caching::NoStore, true, &headers).await
}

async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(ApiError::internal)
    })
    .await
    .map_err(ApiError::internal)?
}

async fn verify_password(password: String, hash: String) -> ApiResult<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(ApiError::internal)?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal)?
}
