//! Conversations: create, list and search, read, change settings, delete and restore.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery};
use skein_core::{ApiError, ApiResult, ids};
use utoipa::{IntoParams, ToSchema};

use super::{nullable, optional_json, owned};
use crate::ChatService;
use crate::errors;
use crate::store::{self, ConversationRow, Field, ListFilter};

/// Settings of a conversation (`null` clears one in an update).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationInput {
    /// Title (at most 200 characters).
    pub title: Option<String>,
    /// Pinned conversations are listed first.
    pub pinned: Option<bool>,
    /// Archived conversations are listed only when asked for.
    pub archived: Option<bool>,
    /// Model name.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    /// System prompt.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub system_prompt: Option<Option<String>>,
    /// 0–2.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub temperature: Option<Option<f64>>,
    /// 0–1.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub top_p: Option<Option<f64>>,
    /// Longest answer, in tokens.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub max_tokens: Option<Option<i64>>,
    /// Most earlier messages sent with a new one.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub history_limit: Option<Option<i64>>,
}

impl ConversationInput {
    fn apply(self, c: &mut ConversationRow, max_chars: usize) -> ApiResult<()> {
        if let Some(title) = self.title {
            let title = title.trim();
            if title.chars().count() > 200 || title.contains('\0') {
                return Err(ApiError::invalid_field(
                    "title",
                    "A title has at most 200 characters.",
                    "标题最多 200 个字符。",
                ));
            }
            c.title = title.to_string();
        }
        if let Some(pinned) = self.pinned {
            c.pinned = i64::from(pinned);
        }
        if let Some(archived) = self.archived {
            c.archived = i64::from(archived);
        }
        if let Some(model) = self.model {
            if model
                .as_deref()
                .is_some_and(|m| m.is_empty() || m.len() > 128 || m.contains('\0'))
            {
                return Err(ApiError::invalid_field(
                    "model",
                    "Name a model (at most 128 characters).",
                    "请填写模型名称（最多 128 个字符）。",
                ));
            }
            c.model = model;
        }
        if let Some(prompt) = self.system_prompt {
            if prompt
                .as_deref()
                .is_some_and(|p| p.chars().count() > max_chars || p.contains('\0'))
            {
                return Err(ApiError::invalid_field(
                    "system_prompt",
                    format!("A system prompt has at most {max_chars} characters."),
                    format!("系统提示词最多 {max_chars} 个字符。"),
                ));
            }
            c.system_prompt = prompt.filter(|p| !p.trim().is_empty());
        }
        if let Some(t) = self.temperature {
            if t.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
                return Err(ApiError::invalid_field(
                    "temperature",
                    "temperature is between 0 and 2.",
                    "temperature 须在 0 到 2 之间。",
                ));
            }
            c.temperature = t;
        }
        if let Some(p) = self.top_p {
            if p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
                return Err(ApiError::invalid_field(
                    "top_p",
                    "top_p is between 0 and 1.",
                    "top_p 须在 0 到 1 之间。",
                ));
            }
            c.top_p = p;
        }
        if let Some(n) = self.max_tokens {
            if n.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
                return Err(ApiError::invalid_field(
                    "max_tokens",
                    "max_tokens is between 1 and 1,000,000.",
                    "max_tokens 须在 1 到 1,000,000 之间。",
                ));
            }
            c.max_tokens = n;
        }
        if let Some(n) = self.history_limit {
            if n.is_some_and(|n| !(1..=10_000).contains(&n)) {
                return Err(ApiError::invalid_field(
                    "history_limit",
                    "history_limit is between 1 and 10,000.",
                    "history_limit 须在 1 到 10,000 之间。",
                ));
            }
            c.history_limit = n;
        }
        Ok(())
    }
}

fn conversation_view(c: &ConversationRow) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "pinned": c.pinned != 0,
        "archived": c.archived != 0,
        "deleted_at": c.deleted_at.map(ids::ms_to_rfc3339),
        "model": c.model,
        "system_prompt": c.system_prompt,
        "temperature": c.temperature,
        "top_p": c.top_p,
        "max_tokens": c.max_tokens,
        "history_limit": c.history_limit,
        "active_leaf_id": c.active_leaf_id,
        "created_at": ids::ms_to_rfc3339(c.created_at),
        "updated_at": ids::ms_to_rfc3339(c.updated_at),
    })
}

/// Start a conversation.
#[utoipa::path(post, path = "/chat/conversations", tag = "chat", security(("bearer" = [])), request_body = ConversationInput,
    responses((status = 201, body = Object), (status = 401, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn create_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let now = ids::now_ms();
    let mut row = ConversationRow::new(ids::new_id(), user.user_id.clone(), "", now);
    if let Some(input) = optional_json::<ConversationInput>(&body)? {
        input.apply(&mut row, svc.config.max_message_chars)?;
    }
    store::insert_conversation(svc.db.pool(), &row).await?;
    Ok((StatusCode::CREATED, ApiJson(conversation_view(&row))))
}

/// Filters of the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// List archived conversations instead.
    pub archived: Option<bool>,
    /// List deleted (restorable) conversations instead.
    pub deleted: Option<bool>,
    /// Words to find in titles and message text.
    pub q: Option<String>,
}

/// The caller's conversations: pinned first, then by latest activity. With `q`, each item
/// has a `snippet`: where its message text matched, or null when only its title did.
#[utoipa::path(get, path = "/chat/conversations", tag = "chat", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope)))]
pub async fn list_conversations(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<ApiJson<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 100);
    let offset = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => cursor
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                ApiError::invalid_field("cursor", "Unknown cursor.", "无效的分页游标。")
            })?,
        None => 0,
    };
    let query = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if query.is_some_and(|s| s.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "q",
            "Search for at most 200 characters.",
            "搜索内容最多 200 个字符。",
        ));
    }
    let filter = ListFilter {
        user_id: &user.user_id,
        archived: q.archived.unwrap_or(false),
        deleted: q.deleted.unwrap_or(false),
        query,
    };
    let rows = store::list_conversations(&svc.db, &filter, limit + 1, offset).await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(usize::try_from(limit).unwrap_or(50))];
    let mut items: Vec<Value> = page.iter().map(conversation_view).collect();
    if let Some(query) = query {
        // A search shows where each hit matched: a snippet of its first matching message
        // (none when only the title matched).
        let ids: Vec<&str> = page.iter().map(|c| c.id.as_str()).collect();
        let matches = store::first_matches(&svc.db, &user.user_id, &ids, query).await?;
        for (item, c) in items.iter_mut().zip(page) {
            let snippet = matches
                .iter()
                .find(|(id, _)| *id == c.id)
                .map(|(_, text)| store::snippet(text, query));
            item["snippet"] = json!(snippet);
        }
    }
    Ok(ApiJson(json!({
        "items": items,
        "next_cursor": more.then(|| (offset + limit).to_string()),
    })))
}

/// One conversation.
#[utoipa::path(get, path = "/chat/conversations/{id}", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn get_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    Ok(ApiJson(conversation_view(&owned(&svc, &user, &id).await?)))
}

/// Rename, pin, archive, or change the settings of a conversation.
#[utoipa::path(patch, path = "/chat/conversations/{id}", tag = "chat", security(("bearer" = [])), request_body = ConversationInput,
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn update_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ConversationInput>,
) -> ApiResult<ApiJson<Value>> {
    let before = owned(&svc, &user, &id).await?;
    let mut after = before.clone();
    input.apply(&mut after, svc.config.max_message_chars)?;
    if !store::update_fields(&svc.db, &user.user_id, &id, &changes(&before, &after)).await? {
        return Err(errors::not_found());
    }
    Ok(ApiJson(conversation_view(&owned(&svc, &user, &id).await?)))
}

/// The columns a PATCH changed.
fn changes(before: &ConversationRow, after: &ConversationRow) -> Vec<(&'static str, Field)> {
    let candidates = [
        (
            "title",
            Field::Text(Some(before.title.clone())),
            Field::Text(Some(after.title.clone())),
        ),
        (
            "pinned",
            Field::Int(Some(before.pinned)),
            Field::Int(Some(after.pinned)),
        ),
        (
            "archived",
            Field::Int(Some(before.archived)),
            Field::Int(Some(after.archived)),
        ),
        (
            "model",
            Field::Text(before.model.clone()),
            Field::Text(after.model.clone()),
        ),
        (
            "system_prompt",
            Field::Text(before.system_prompt.clone()),
            Field::Text(after.system_prompt.clone()),
        ),
        (
            "temperature",
            Field::Float(before.temperature),
            Field::Float(after.temperature),
        ),
        (
            "top_p",
            Field::Float(before.top_p),
            Field::Float(after.top_p),
        ),
        (
            "max_tokens",
            Field::Int(before.max_tokens),
            Field::Int(after.max_tokens),
        ),
        (
            "history_limit",
            Field::Int(before.history_limit),
            Field::Int(after.history_limit),
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(column, _, new)| (column, new))
        .collect()
}

/// Delete a conversation; it can be restored for 30 days.
#[utoipa::path(delete, path = "/chat/conversations/{id}", tag = "chat", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if !store::soft_delete(&svc.db, &user.user_id, &id, ids::now_ms()).await? {
        return Err(errors::not_found());
    }
    match svc.running.by_conversation(&id) {
        Some(running) => running.stop(),
        // Maybe written by another instance: it stops what it writes there.
        None => {
            svc.tell(&crate::live::Control::StopConversation(id.clone()))
                .await;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a deleted conversation.
#[utoipa::path(post, path = "/chat/conversations/{id}/restore", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn restore_conversation(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    let restored = store::restore(&svc.db, &user.user_id, &id, ids::now_ms()).await?;
    // Restoring one that is not deleted answers it as it is; past the window it is gone.
    let row = owned(&svc, &user, &id)
        .await
        .map_err(|error| if restored { error } else { errors::not_found() })?;
    Ok(ApiJson(conversation_view(&row)))
}
