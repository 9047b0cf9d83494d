//! The Chat service's HTTP routes (`/api/v1/chat/...`), one file per area; every route is
//! listed here. See `docs/CHAT-API.md`.

mod actions;
mod conversations;
pub(crate) mod internal;
mod messages;
mod models;
mod preferences;
mod prompts;
mod shares;
pub(crate) mod socket;
mod sse;
mod transfer;
mod voice;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use serde::{Deserialize, Deserializer};
use skein_core::ApiResult;
use skein_core::auth::AuthUser;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ChatService;
use crate::errors;
use crate::store::{self, ConversationRow, MessageRow};

use actions::*;
use conversations::*;
use messages::*;
use models::*;
use preferences::*;
use prompts::*;
use shares::*;
use socket::{__path_socket, socket};
use transfer::*;
use voice::*;

/// Every Chat route, with the body limits of the routes that take large bodies.
pub(crate) fn routes(service: Arc<ChatService>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(
            get_conversation,
            update_conversation,
            delete_conversation
        ))
        .routes(routes!(restore_conversation))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(history, send))
                .layer(DefaultBodyLimit::max(SEND_LIMIT)),
        )
        .routes(routes!(switch_branch))
        .routes(routes!(delete_branch))
        .routes(routes!(feedback))
        .routes(routes!(create_share, list_shares))
        .routes(routes!(revoke_share))
        .routes(routes!(read_share))
        .routes(routes!(get_preferences, update_preferences))
        .routes(routes!(list_prompts, create_prompt))
        .routes(routes!(update_prompt, delete_prompt))
        .routes(routes!(regenerate))
        .routes(routes!(continue_answer))
        .routes(routes!(stop))
        .routes(routes!(approve_tool_call))
        .routes(routes!(deny_tool_call))
        .routes(routes!(attach))
        .routes(routes!(socket))
        .routes(routes!(inspect_context))
        .routes(routes!(export_conversation))
        .routes(routes!(export_all))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import))
                .layer(DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .routes(routes!(models))
        .routes(routes!(speak))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(transcribe))
                .layer(DefaultBodyLimit::max(AUDIO_LIMIT + 64 * 1024)),
        )
        .with_state(service)
}

/// A JSON body that may be left out (an empty body means the defaults).
pub(super) fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(errors::body_does_not_fit)
}

/// Deserializes a field that may be `null` (to clear it) as `Some(None)`.
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

/// The caller's conversation, unless deleted.
pub(super) async fn owned(
    svc: &ChatService,
    user: &AuthUser,
    id: &str,
) -> ApiResult<ConversationRow> {
    store::conversation(&svc.db, &user.user_id, id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(errors::not_found)
}

/// The caller's message.
pub(super) async fn owned_message(
    svc: &ChatService,
    user: &AuthUser,
    id: &str,
) -> ApiResult<MessageRow> {
    store::message(&svc.db, &user.user_id, id)
        .await?
        .ok_or_else(errors::message_not_found)
}
