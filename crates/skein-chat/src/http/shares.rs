//! Read-only links to a conversation: the owner makes and revokes them; anyone with the link
//! reads the branch as it was when shared (no sign-in, no costs, no sources, no settings).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;
use serde_json::{Value, json};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::owned;
use crate::errors;
use crate::store::{self, ShareRow};
use crate::tree::Tree;
use crate::{ChatService, active_path, images};

/// A share link as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatShareView {
    /// Id (to revoke it).
    pub id: String,
    /// The link's secret.
    pub token: String,
    /// The web page that shows it, e.g. `/share/abc…` (on this server).
    pub path: String,
    /// The last message it shows.
    pub leaf_id: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

fn share_view(s: &ShareRow) -> ChatShareView {
    ChatShareView {
        id: s.id.clone(),
        token: s.token.clone(),
        path: format!("/share/{}", s.token),
        leaf_id: s.leaf_id.clone(),
        created_at: ids::ms_to_rfc3339(s.created_at),
    }
}

/// Share the branch on screen as a read-only link. Messages added later are not shown by it;
/// share again to show them.
#[utoipa::path(post, path = "/chat/conversations/{id}/shares", tag = "chat", security(("bearer" = [])),
    responses((status = 201, body = ChatShareView), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_share(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<ChatShareView>)> {
    let c = owned(&svc, &user, &id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let tree = Tree::new(&rows);
    let path = active_path(&tree, c.active_leaf_id.as_deref());
    let Some(leaf) = path.last() else {
        return Err(ApiError::invalid_field(
            "id",
            "An empty conversation cannot be shared.",
            "空对话无法分享。",
        ));
    };
    if path
        .iter()
        .any(|m| m.status == crate::store::MessageStatus::Streaming)
    {
        return Err(ApiError::conflict(
            "generation_in_progress",
            "An answer is still being written. Share once it is done.",
            "仍在生成回答，完成后再分享。",
        ));
    }
    let mut secret = [0u8; 18];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let share = ShareRow {
        id: ids::new_id(),
        token: URL_SAFE_NO_PAD.encode(secret),
        conversation_id: c.id.clone(),
        user_id: c.user_id.clone(),
        leaf_id: leaf.id.clone(),
        created_at: ids::now_ms(),
        revoked_at: None,
    };
    store::insert_share(&svc.db, &share).await?;
    Ok((StatusCode::CREATED, ApiJson(share_view(&share))))
}

/// The conversation's live share links, newest first.
#[utoipa::path(get, path = "/chat/conversations/{id}/shares", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatShareView>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_shares(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Vec<ChatShareView>>> {
    let c = owned(&svc, &user, &id).await?;
    let shares = store::shares_of(&svc.db, &c.user_id, &c.id).await?;
    Ok(ApiJson(shares.iter().map(share_view).collect()))
}

/// Revoke a share link: it shows nothing from now on.
#[utoipa::path(delete, path = "/chat/shares/{id}", tag = "chat", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn revoke_share(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if store::revoke_share(&svc.db, &user.user_id, &id, ids::now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(errors::share_not_found())
    }
}

/// A shared conversation, read without signing in: its title and the shared branch's
/// messages (text, reasoning, images and the answering model; no costs, sources or settings).
/// A revoked link, a deleted conversation or a deleted branch is 404.
#[utoipa::path(get, path = "/chat/shared/{token}", tag = "chat",
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn read_share(
    State(svc): State<Arc<ChatService>>,
    Path(token): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    if token.is_empty() || token.len() > 64 {
        return Err(errors::share_not_found());
    }
    let share = store::share_by_token(&svc.db, &token)
        .await?
        .ok_or_else(errors::share_not_found)?;
    let c = store::conversation(&svc.db, &share.user_id, &share.conversation_id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(errors::share_not_found)?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let tree = Tree::new(&rows);
    let path = tree.path_to(&share.leaf_id);
    if path.is_empty() {
        return Err(errors::share_not_found());
    }
    let messages: Vec<Value> = path
        .iter()
        .filter(|m| m.role != "system")
        .map(|m| {
            let stored: Value = m
                .images
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| json!([]));
            json!({
                "id": m.id,
                "role": m.role,
                "content": m.content,
                "reasoning": m.reasoning,
                "model": m.model,
                "status": m.status,
                "image_urls": images::shown_urls(svc.files.as_ref(), &stored),
                "created_at": ids::ms_to_rfc3339(m.created_at),
            })
        })
        .collect();
    Ok(ApiJson(json!({
        "title": c.title,
        "shared_at": ids::ms_to_rfc3339(share.created_at),
        "messages": messages,
    })))
}
