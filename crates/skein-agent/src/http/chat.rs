//! Chatting with an assistant: a conversation started here is pinned to the assistant's
//! current version for its whole life; the chat asks which assistant and version it speaks
//! with.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult, ids};
use utoipa::ToSchema;

use crate::store::{self, BindingRow};
use crate::{AgentService, day_of};

/// A new conversation with an assistant.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartInput {
    /// Another model, where the assistant allows it.
    pub model: Option<String>,
}

/// A conversation's assistant: which one, which version, and how it opens.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationAgent {
    /// The chat conversation.
    pub conversation_id: String,
    /// The assistant.
    pub agent_id: String,
    /// The version it is pinned to; 0 for a preview of the draft (the owner's).
    pub version: i64,
    /// A preview: each answer uses the draft as it is saved then.
    pub preview: bool,
    /// The assistant's name in that version.
    pub name: String,
    /// Its avatar in that version.
    pub avatar: String,
    /// Where a browser loads an uploaded avatar (a signed URL).
    pub avatar_url: Option<String>,
    /// The model used: the one picked, where allowed, else the version's.
    pub model: Option<String>,
    /// Whether the model may be changed.
    pub allow_model_override: bool,
    /// The opening message.
    pub opening_message: String,
    /// Questions to start with.
    pub suggested_questions: Vec<String>,
    /// Plugins the version binds: on in the conversation unless the user switches them off
    /// (and only those the user may use are ever offered).
    pub plugin_ids: Vec<String>,
    /// Whether the assistant was deleted since (the conversation goes on with its version).
    pub agent_deleted: bool,
}

async fn conversation_agent(svc: &AgentService, pin: BindingRow) -> ApiResult<ConversationAgent> {
    let spec = svc
        .pinned_spec(&pin)
        .await?
        .ok_or_else(|| ApiError::not_found("Assistant conversation", "助手对话"))?;
    let deleted = store::agent(&svc.db, &pin.agent_id).await?.is_none();
    Ok(ConversationAgent {
        conversation_id: pin.conversation_id,
        agent_id: pin.agent_id,
        version: pin.version,
        preview: pin.version == store::DRAFT,
        name: spec.name,
        avatar_url: svc.peers.avatar_url(&spec.avatar),
        avatar: spec.avatar,
        plugin_ids: spec.plugin_ids,
        model: pin
            .model
            .filter(|_| spec.allow_model_override)
            .or(spec.model),
        allow_model_override: spec.allow_model_override,
        opening_message: spec.opening_message,
        suggested_questions: spec.suggested_questions,
        agent_deleted: deleted,
    })
}

/// Start a conversation with an assistant, pinned to its current version.
#[utoipa::path(post, path = "/agents/{id}/conversations", tag = "agents", security(("bearer" = [])), request_body = StartInput,
    responses((status = 201, body = ConversationAgent), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn start_conversation(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<StartInput>,
) -> ApiResult<(StatusCode, ApiJson<ConversationAgent>)> {
    let row = svc.visible(&id, Some(&user.user_id)).await?;
    let Some(version) = row.current_version else {
        return Err(ApiError::conflict(
            "agent_unpublished",
            "Publish the assistant before chatting with it.",
            "请先发布助手，再与其对话。",
        ));
    };
    let spec = svc.version_spec(&id, version).await?;
    let model = input
        .model
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    if model.is_some() && !spec.allow_model_override {
        return Err(ApiError::invalid_field(
            "model",
            "This assistant does not allow another model.",
            "该助手不允许更换模型。",
        ));
    }
    if model
        .as_ref()
        .is_some_and(|m| m.chars().count() > crate::spec::MAX_MODEL)
    {
        return Err(ApiError::invalid_field(
            "model",
            "The model name is too long.",
            "模型名称过长。",
        ));
    }
    let opener = svc
        .peers
        .opener
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("chat"))?;
    // Untitled: chat titles it from the first question, as any conversation.
    let conversation_id = opener.open(&user.user_id, "").await?;
    let now = ids::now_ms();
    let pin = BindingRow {
        conversation_id,
        agent_id: id,
        version,
        user_id: user.user_id.clone(),
        model,
        created_at: now,
    };
    store::bind(&svc.db, &pin, &day_of(now)).await?;
    svc.market_changed(&pin.agent_id).await;
    Ok((
        StatusCode::CREATED,
        ApiJson(conversation_agent(&svc, pin).await?),
    ))
}

/// Which assistant and version a conversation of mine speaks with (404 when it was not
/// started from one).
#[utoipa::path(get, path = "/agents/conversations/{conversation_id}", tag = "agents", security(("bearer" = [])),
    responses((status = 200, body = ConversationAgent), (status = 404, body = ErrorEnvelope)))]
pub async fn get_conversation_agent(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(conversation_id): Path<String>,
) -> ApiResult<ApiJson<ConversationAgent>> {
    let pin = store::binding(&svc.db, &conversation_id, &user.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Assistant conversation", "助手对话"))?;
    Ok(ApiJson(conversation_agent(&svc, pin).await?))
}

/// Try the draft: a conversation of the owner's that answers with the draft as it is saved at
/// each message (prompt, model, parameters, bindings), so an edit shows in the next answer.
/// Nothing is published and no statistics are counted.
#[utoipa::path(post, path = "/agents/{id}/preview", tag = "agents", security(("bearer" = [])),
    responses((status = 201, body = ConversationAgent), (status = 404, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn start_preview(
    State(svc): State<Arc<AgentService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<ConversationAgent>)> {
    let row = svc.owned(&id, &user.user_id).await?;
    let spec = crate::parse_spec(&row.draft)?;
    let opener = svc
        .peers
        .opener
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("chat"))?;
    let title = format!("{} · preview", spec.name);
    let conversation_id = opener.open(&user.user_id, &title).await?;
    let pin = BindingRow {
        conversation_id,
        agent_id: id,
        version: store::DRAFT,
        user_id: user.user_id.clone(),
        model: None,
        created_at: ids::now_ms(),
    };
    store::bind_preview(&svc.db, &pin).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(conversation_agent(&svc, pin).await?),
    ))
}
