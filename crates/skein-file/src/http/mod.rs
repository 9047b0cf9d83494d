//! The File service's HTTP routes (`/api/v1/files/...`, `/api/v1/shares/...`), one file per
//! area; every route is listed here, grouped by who calls it.

mod content;
mod files;
pub(crate) mod internal;
mod shares;
mod uploads;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use skein_core::ApiError;
use skein_core::auth::{AuthState, AuthUser};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::FileService;

use content::*;
use files::*;
use shares::*;
use uploads::*;

/// Every File route. Uploads take bodies up to the largest upload (each purpose's own limit
/// is enforced while streaming); everything else keeps the server's body limit.
pub(crate) fn routes(service: Arc<FileService>) -> OpenApiRouter {
    let upload_limit = usize::try_from(service.config.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    OpenApiRouter::new()
        // Signed-in owners.
        .merge(
            OpenApiRouter::new()
                .routes(routes!(list_files, upload))
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .routes(routes!(usage))
        .routes(routes!(get_file, rename_file, delete_file))
        .routes(routes!(signed_url))
        .routes(routes!(preview))
        .routes(routes!(list_shares, create_share))
        .routes(routes!(revoke_share))
        // Upload sessions (parts are streamed, never buffered, and checked for their size).
        .routes(routes!(create_upload, list_uploads))
        .routes(routes!(get_upload, abort_upload))
        .routes(routes!(part_urls))
        .routes(routes!(put_part))
        .routes(routes!(complete_upload))
        // Owners, or anyone with a signed URL.
        .routes(routes!(download))
        // Anyone with a share link.
        .routes(routes!(share_info))
        .routes(routes!(share_access))
        .routes(routes!(share_download))
        .with_state(service)
}

/// The signed-in user when there is one: routes that also serve signed URLs answer
/// anonymous callers too.
pub(crate) struct MaybeUser(pub Option<AuthUser>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<AuthState>() {
            Some(AuthState::User(user)) => Ok(MaybeUser(Some(user.clone()))),
            _ => Ok(MaybeUser(None)),
        }
    }
}
