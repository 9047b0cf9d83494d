//! The knowledge bases attached to a chat conversation, which chat's retrieval searches.

use std::sync::Arc;

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use crate::{KnowledgeService, store};

/// The bases attached to a conversation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationBases {
    /// Base ids, each one the caller may read (at most 10).
    pub base_ids: Vec<String>,
}

fn conversation_id(id: &str) -> ApiResult<&str> {
    if ids::looks_like_id(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found("Conversation", "对话"))
    }
}

/// The knowledge bases the caller attached to one of their conversations (those they may
/// still read).
#[utoipa::path(get, path = "/knowledge/conversations/{conversation_id}/bases", tag = "knowledge", security(("bearer" = [])),
    params(("conversation_id" = String, Path, description = "Chat conversation id")),
    responses((status = 200, body = ConversationBases), (status = 404, body = ErrorEnvelope)))]
pub async fn get_conversation_bases(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<ConversationBases>> {
    let id = conversation_id(&id)?;
    let base_ids =
        skein_core::api::KnowledgeApi::conversation_bases(svc.as_ref(), &user.user_id, id).await?;
    Ok(ApiJson(ConversationBases { base_ids }))
}

/// Attach knowledge bases to one of the caller's conversations (replacing those attached);
/// each answer then searches them. A base the caller may not read is a 404.
#[utoipa::path(put, path = "/knowledge/conversations/{conversation_id}/bases", tag = "knowledge", security(("bearer" = [])),
    params(("conversation_id" = String, Path, description = "Chat conversation id")), request_body = ConversationBases,
    responses((status = 200, body = ConversationBases), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn set_conversation_bases(
    State(svc): State<Arc<KnowledgeService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ConversationBases>,
) -> ApiResult<ApiJson<ConversationBases>> {
    let id = conversation_id(&id)?;
    if body.base_ids.len() > 10 {
        return Err(ApiError::invalid_field(
            "base_ids",
            "At most 10 knowledge bases per conversation.",
            "每个对话最多关联 10 个知识库。",
        ));
    }
    let mut base_ids: Vec<String> = Vec::with_capacity(body.base_ids.len());
    for base_id in &body.base_ids {
        svc.access(&user.user_id, base_id).await?;
        if !base_ids.contains(base_id) {
            base_ids.push(base_id.clone());
        }
    }
    store::set_conversation_bases(&svc.db, &user.user_id, id, &base_ids, ids::now_ms()).await?;
    Ok(ApiJson(ConversationBases { base_ids }))
}
