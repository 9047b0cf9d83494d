//! Export (Markdown, HTML, JSON; one conversation or all) and import (Skein JSON, ChatGPT).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery, JsonBytes};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::IntoParams;

use super::owned;
use crate::ChatService;
use crate::store::{self, ListFilter};

/// Largest import (ChatGPT's `conversations.json` of a long-time user is tens of MB).
pub(super) const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

/// Export format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `markdown`, `html` or `json` (default).
    pub format: Option<String>,
    /// Include the messages' images, embedded as `data:` URLs (default: yes for HTML and
    /// JSON, no for Markdown).
    pub attachments: Option<bool>,
}

/// Whether to include images in an archive of every conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArchiveQuery {
    /// Include the messages' images, embedded as `data:` URLs (default: no; an archive
    /// with them can be large).
    pub attachments: Option<bool>,
}

/// Export a conversation: Markdown or HTML (the branch on screen), or JSON (the whole tree).
#[utoipa::path(get, path = "/chat/conversations/{id}/export", tag = "chat", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, body = String), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn export_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let c = owned(&svc, &user, &id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let format = q.format.as_deref().unwrap_or("json");
    let markdown = matches!(format, "markdown" | "md");
    let attachments = if q.attachments.unwrap_or(!markdown) {
        crate::images::for_export(svc.files.as_ref(), &c.user_id, &rows).await
    } else {
        crate::export::Attachments::new()
    };
    let (body, content_type, extension) = match format {
        "markdown" | "md" => (
            crate::export::markdown(&c, &rows, &attachments),
            "text/markdown; charset=utf-8",
            "md",
        ),
        "html" => (
            crate::export::html(&c, &rows, &attachments),
            "text/html; charset=utf-8",
            "html",
        ),
        "json" => (
            crate::export::json(&c, &rows, &attachments).to_string(),
            "application/json",
            "json",
        ),
        _ => {
            return Err(ApiError::invalid_field(
                "format",
                "format is markdown, html or json.",
                "format 须为 markdown、html 或 json。",
            ));
        }
    };
    Ok(download(
        body,
        content_type,
        &format!("conversation-{}.{extension}", c.id),
    ))
}

fn download(body: String, content_type: &'static str, filename: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Export every conversation of the caller as one JSON archive.
#[utoipa::path(get, path = "/chat/export", tag = "chat", security(("bearer" = [])), params(ArchiveQuery),
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope)))]
pub async fn export_all(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ArchiveQuery>,
) -> ApiResult<Response> {
    let mut conversations = Vec::new();
    for archived in [false, true] {
        let filter = ListFilter {
            user_id: &user.user_id,
            archived,
            deleted: false,
            query: None,
        };
        for c in store::list_conversations(&svc.db, &filter, 100_000, 0).await? {
            let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
            let attachments = if q.attachments.unwrap_or(false) {
                crate::images::for_export(svc.files.as_ref(), &c.user_id, &rows).await
            } else {
                crate::export::Attachments::new()
            };
            conversations.push(crate::export::json(&c, &rows, &attachments));
        }
    }
    let archive = json!({
        "format": crate::export::ARCHIVE_FORMAT,
        "exported_at": ids::ms_to_rfc3339(ids::now_ms()),
        "conversations": conversations,
    });
    Ok(download(
        archive.to_string(),
        "application/json",
        "skein-conversations.json",
    ))
}

/// Import Skein's JSON (one conversation or an archive) or ChatGPT's `conversations.json`.
/// Images in a Skein export (`data:` URLs) become the user's files, as sent images do;
/// one the File service refuses is left out and counted in `images_skipped`.
/// Limits: 64 MB of body, 10,000 conversations, 20,000 messages per conversation, 200,000 in
/// all, 48 MB of text (413 `import_too_large`); a loop of messages is 422 `import_cycle`.
/// Rows are written in batches of at most 500 per transaction, shown all at once at the end.
#[utoipa::path(post, path = "/chat/import", tag = "chat", security(("bearer" = [])), request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn import(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    JsonBytes(body): JsonBytes,
) -> ApiResult<ApiJson<Value>> {
    // Parsing a big file is CPU work; keep it off the threads that serve requests.
    let parsed = tokio::task::spawn_blocking(move || crate::import::parse(&body))
        .await
        .map_err(ApiError::internal)??;
    let report =
        crate::import::store_import(&svc.db, svc.files.as_ref(), &user.user_id, parsed).await?;
    Ok(ApiJson(json!({
        "imported": report.ids.len(),
        "ids": report.ids,
        "images": report.images,
        "images_skipped": report.images_skipped,
    })))
}
