//! What a reader does to a message after it is written: delete a branch (the message and
//! everything under it) and give an answer a thumbs up or down.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use super::messages::history_view;
use super::{owned, owned_message};
use crate::errors;
use crate::store::{self, MessageRow};
use crate::tree::Tree;
use crate::{ChatService, active_path};

/// The ids of `root` and every message under it.
fn subtree<'a>(tree: &Tree<'a, MessageRow>, root: &'a str) -> Vec<&'a str> {
    let mut ids = vec![root];
    let mut at = 0;
    while at < ids.len() {
        let children = tree.children(Some(ids[at]));
        ids.extend(children.iter().map(|m| m.id.as_str()));
        at += 1;
    }
    ids
}

/// Where the conversation shows after `gone` is deleted, when the branch on screen ran through
/// it: the newest leaf of the sibling before it (else after it), else its parent (now a leaf),
/// else nothing.
fn leaf_after_delete<'a>(tree: &Tree<'a, MessageRow>, gone: &MessageRow) -> Option<&'a str> {
    let siblings = tree.children(gone.parent_id.as_deref());
    let at = siblings.iter().position(|m| m.id == gone.id)?;
    let neighbour = at
        .checked_sub(1)
        .and_then(|i| siblings.get(i))
        .or_else(|| siblings.get(at + 1));
    match neighbour {
        Some(n) => Some(tree.newest_leaf(&n.id)),
        None => gone
            .parent_id
            .as_deref()
            .and_then(|p| tree.get(p))
            .map(|p| p.id.as_str()),
    }
}

/// Delete a message and every message under it (one version of an edit or a regeneration,
/// with its follow-ups). The branch on screen moves to the version beside it. Refused while an
/// answer in that branch is being written. Answers the branch now on screen.
#[utoipa::path(delete, path = "/chat/messages/{id}", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn delete_branch(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let message = owned_message(&svc, &user, &id).await?;
    let mut c = owned(&svc, &user, &message.conversation_id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let tree = Tree::new(&rows);
    let root = tree.get(&id).ok_or_else(errors::message_not_found)?;
    let doomed = subtree(&tree, &root.id);
    if doomed
        .iter()
        .filter_map(|id| tree.get(id))
        .any(|m| m.status == crate::store::MessageStatus::Streaming)
    {
        return Err(ApiError::conflict(
            "generation_in_progress",
            "An answer in this branch is still being written. Stop it first.",
            "该分支中仍有回答在生成，请先停止。",
        ));
    }
    let on_screen = active_path(&tree, c.active_leaf_id.as_deref())
        .iter()
        .any(|m| m.id == root.id);
    let active = if on_screen {
        leaf_after_delete(&tree, root).map(str::to_string)
    } else {
        c.active_leaf_id.clone()
    };
    store::delete_branch(
        &svc.db,
        &c.user_id,
        &c.id,
        &doomed,
        active.as_deref(),
        ids::now_ms(),
    )
    .await?;
    c.active_leaf_id = active;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    history_view(&svc, &c, &rows).await
}

/// A verdict on an answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackInput {
    /// `up`, `down`, or `null` to take the verdict back.
    pub rating: Option<String>,
    /// Why, up to 2,000 characters (optional).
    #[serde(default)]
    pub comment: Option<String>,
}

/// Give an answer a thumbs up or down (or take it back with `rating: null`). The history
/// shows it as the message's `feedback`.
#[utoipa::path(put, path = "/chat/messages/{id}/feedback", tag = "chat", security(("bearer" = [])), request_body = FeedbackInput,
    responses((status = 204), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn feedback(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<FeedbackInput>,
) -> ApiResult<StatusCode> {
    let message = owned_message(&svc, &user, &id).await?;
    owned(&svc, &user, &message.conversation_id).await?;
    if message.role != "assistant" {
        return Err(ApiError::invalid_field(
            "id",
            "Only an answer takes feedback.",
            "只能对回答进行评价。",
        ));
    }
    let comment = input
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > 2000) {
        return Err(ApiError::invalid_field(
            "comment",
            "comment is at most 2,000 characters.",
            "comment 最多 2000 个字符。",
        ));
    }
    match input.rating.as_deref() {
        None => store::clear_feedback(&svc.db, &user.user_id, &id).await?,
        Some(rating @ ("up" | "down")) => {
            store::set_feedback(
                &svc.db,
                &user.user_id,
                &message.conversation_id,
                &id,
                rating,
                comment,
                ids::now_ms(),
            )
            .await?;
        }
        Some(_) => {
            return Err(ApiError::invalid_field(
                "rating",
                "rating is up, down or null.",
                "rating 须为 up、down 或 null。",
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
