//! Messages: the branch on screen, switching branches, sending (and editing), regenerating,
//! stopping, re-attaching to an answer being written, and what was sent upstream.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use skein_core::api::PricedModel;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult, ids};
use tokio::sync::broadcast;
use utoipa::ToSchema;

use super::sse::sse_response;
use super::{message_not_found, nullable, optional_json, owned, owned_message};
use crate::context::{self, Turn};
use crate::generate::{self, Event, Plan, Registry, Slot, sse};
use crate::store::{self, ConversationRow, MessageRow};
use crate::tree::Tree;
use crate::{ChatService, Summarize, active_path, view};

/// Largest message body: four images of 5 MB as data URLs and the text.
pub(super) const SEND_LIMIT: usize = MAX_IMAGES * MAX_IMAGE_URL + 1024 * 1024;
/// Most images on one message.
const MAX_IMAGES: usize = 4;
/// Largest image kept with a message as a data URL (bytes of the URL).
const MAX_IMAGE_URL: usize = 7 * 1024 * 1024;

/// The branch on screen.
#[derive(serde::Serialize)]
struct HistoryView<'a> {
    conversation_id: &'a str,
    active_leaf_id: Option<&'a str>,
    messages: Vec<crate::MessageView<'a>>,
}

/// The history as JSON bytes, serialized straight from the rows.
fn history_view(c: &ConversationRow, rows: &[MessageRow]) -> ApiResult<Response> {
    let tree = Tree::new(rows);
    let path = active_path(&tree, c.active_leaf_id.as_deref());
    let history = HistoryView {
        conversation_id: &c.id,
        active_leaf_id: path.last().map(|m| m.id.as_str()),
        messages: path.iter().map(|m| view(m, &tree)).collect(),
    };
    let body = serde_json::to_vec(&history).map_err(ApiError::internal)?;
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The branch on screen, root first, with each message's siblings ("2 / 3").
#[utoipa::path(get, path = "/chat/conversations/{id}/messages", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn history(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let c = owned(&svc, &user, &id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    history_view(&c, &rows)
}

/// Which branch to show.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchRequest {
    /// A message of the branch; its newest leaf becomes active.
    pub message_id: String,
}

/// Switch to the branch through a message.
#[utoipa::path(post, path = "/chat/conversations/{id}/switch", tag = "chat", security(("bearer" = [])), request_body = SwitchRequest,
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn switch_branch(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SwitchRequest>,
) -> ApiResult<Response> {
    let mut c = owned(&svc, &user, &id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let tree = Tree::new(&rows);
    let start = tree
        .get(&req.message_id)
        .map(|m| m.id.as_str())
        .ok_or_else(message_not_found)?;
    let leaf = tree.newest_leaf(start).to_string();
    store::set_active_leaf(svc.db.pool(), &c.id, &leaf, ids::now_ms()).await?;
    c.active_leaf_id = Some(leaf);
    history_view(&c, &rows)
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The text.
    pub content: String,
    /// The message it answers: absent = the active leaf, `null` = none (a new first
    /// message). Editing a message = sending with that message's parent.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    /// Model for this answer (default: the conversation's).
    pub model: Option<String>,
    /// Images: `data:image/...;base64,` URLs or `https://` URLs.
    #[serde(default)]
    pub images: Vec<String>,
}

/// Send a message; the answer streams back as server-sent events.
#[utoipa::path(post, path = "/chat/conversations/{id}/messages", tag = "chat", security(("bearer" = [])), request_body = SendRequest,
    responses(
        (status = 200, description = "SSE: start, delta, reasoning, usage, done, title, error", content_type = "text/event-stream", body = String),
        (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn send(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendRequest>,
) -> ApiResult<Response> {
    let content = req.content.trim_end().to_string();
    if content.trim().is_empty() && req.images.is_empty() {
        return Err(ApiError::invalid_field(
            "content",
            "Write a message.",
            "请输入消息内容。",
        ));
    }
    let max = svc.config.max_message_chars;
    if content.chars().count() > max || content.contains('\0') {
        return Err(ApiError::invalid_field(
            "content",
            format!("A message has at most {max} characters."),
            format!("消息最多 {max} 个字符。"),
        ));
    }
    check_images(&req.images)?;
    let c = owned(&svc, &user, &id).await?;
    let model = choose_model(&svc, req.model.as_deref(), &c).await?;
    let assistant_id = ids::new_id();
    let slot = Registry::begin(&svc, &c.id, &assistant_id)?;
    // Read the conversation again now that no other answer can be written into it: an answer
    // that finished meanwhile moved the active leaf.
    let c = owned(&svc, &user, &id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let parent = match req.parent_id {
        Some(None) => None,
        Some(Some(parent)) => {
            let row = rows.iter().find(|m| m.id == parent).ok_or_else(|| {
                ApiError::invalid_field(
                    "parent_id",
                    "parent_id is not a message of this conversation.",
                    "parent_id 不是该对话中的消息。",
                )
            })?;
            if row.role == "user" {
                return Err(ApiError::invalid_field(
                    "parent_id",
                    "A message follows an answer: to edit a message, send with its parent_id.",
                    "消息须接在回答之后：编辑消息时请使用它的 parent_id。",
                ));
            }
            Some(row.id.clone())
        }
        None => {
            let tree = Tree::new(&rows);
            active_path(&tree, c.active_leaf_id.as_deref())
                .last()
                .map(|m| m.id.clone())
        }
    };
    let question = NewQuestion {
        content,
        images: req.images,
    };
    begin(
        svc,
        slot,
        assistant_id,
        &user,
        c,
        rows,
        parent,
        Some(question),
        model,
        request_id.map(|r| r.0.0).unwrap_or_default(),
    )
    .await
}

fn check_images(images: &[String]) -> ApiResult<()> {
    if images.len() > MAX_IMAGES {
        return Err(ApiError::invalid_field(
            "images",
            format!("Attach at most {MAX_IMAGES} images."),
            format!("最多附加 {MAX_IMAGES} 张图片。"),
        ));
    }
    for url in images {
        let data = url.starts_with("data:image/") && url.contains(";base64,");
        let https = url.starts_with("https://") && url.len() <= 2048;
        if !(data || https) {
            return Err(ApiError::invalid_field(
                "images",
                "An image is a data:image/...;base64 URL or an https:// URL.",
                "图片须为 data:image/...;base64 或 https:// 地址。",
            ));
        }
        if url.len() > MAX_IMAGE_URL {
            return Err(ApiError::invalid_field(
                "images",
                "An image may be at most 5 MB.",
                "单张图片最大 5 MB。",
            ));
        }
    }
    Ok(())
}

/// The model an answer uses: asked for, else the conversation's, else the configured
/// default, else the first the caller may use. It must be priced and routed.
async fn choose_model(
    svc: &ChatService,
    asked: Option<&str>,
    c: &ConversationRow,
) -> ApiResult<String> {
    let available: Vec<PricedModel> = svc
        .relay
        .priced_models(&svc.group)
        .await?
        .into_iter()
        .filter(crate::is_chat_model)
        .collect();
    let wanted = asked
        .or(c.model.as_deref())
        .or(svc.config.default_model.as_deref());
    let chosen = match wanted {
        Some(name) => available
            .into_iter()
            .find(|m| m.id == name)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "model_not_available",
                    format!("{name} is not available for chat (no channel or no price)."),
                    format!("{name} 不可用于对话（没有渠道或未定价）。"),
                )
            })?,
        None => available.into_iter().next().ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "model_not_available",
                "No model is available yet: an administrator must add a channel and a price.",
                "暂无可用模型：需要管理员添加渠道并设置价格。",
            )
        })?,
    };
    Ok(chosen.id)
}

struct NewQuestion {
    content: String,
    images: Vec<String>,
}

/// Records the new messages, starts the answer, and streams it.
#[allow(clippy::too_many_arguments)]
async fn begin(
    svc: Arc<ChatService>,
    slot: Slot,
    assistant_id: String,
    user: &AuthUser,
    c: ConversationRow,
    mut rows: Vec<MessageRow>,
    parent: Option<String>,
    question: Option<NewQuestion>,
    model: String,
    request_id: String,
) -> ApiResult<Response> {
    let now = ids::now_ms();
    let user_row = question.as_ref().map(|q| MessageRow {
        id: ids::new_id(),
        conversation_id: c.id.clone(),
        user_id: user.user_id.clone(),
        parent_id: parent.clone(),
        role: "user".into(),
        content: q.content.clone(),
        reasoning: None,
        images: (!q.images.is_empty())
            .then(|| serde_json::to_string(&q.images).unwrap_or_default()),
        status: "done".into(),
        model: None,
        error: None,
        prompt_tokens: None,
        completion_tokens: None,
        cost: None,
        created_at: now,
        updated_at: now,
    });
    let answers = user_row.as_ref().map(|u| u.id.clone()).or(parent.clone());
    let assistant_row = MessageRow {
        id: assistant_id.clone(),
        conversation_id: c.id.clone(),
        user_id: user.user_id.clone(),
        parent_id: answers.clone(),
        role: "assistant".into(),
        content: String::new(),
        reasoning: None,
        images: None,
        status: "streaming".into(),
        model: Some(model.clone()),
        error: None,
        prompt_tokens: None,
        completion_tokens: None,
        cost: None,
        created_at: now,
        updated_at: now,
    };
    let saved = async {
        let mut tx = svc.db.begin_write().await?;
        if let Some(row) = &user_row {
            store::insert_message(&mut *tx, row).await?;
        }
        store::insert_message(&mut *tx, &assistant_row).await?;
        store::set_active_leaf(&mut *tx, &c.id, &assistant_id, now).await?;
        tx.commit().await?;
        Ok::<_, skein_db::DbError>(())
    }
    .await;
    // On failure the slot is dropped with this request, which frees the conversation.
    saved?;
    if let Some(row) = user_row.clone() {
        rows.push(row);
    }
    let tree = Tree::new(&rows);
    let path = answers
        .as_deref()
        .map(|leaf| tree.path_to(leaf))
        .unwrap_or_default();
    let first_answer = !path.iter().any(|m| m.role == "assistant");
    let (request, summarize, trimmed) = build_request(&svc, &c, &path, &model);
    let title_from = (c.title.is_empty() && first_answer)
        .then(|| question.as_ref().map(|q| q.content.clone()))
        .flatten();
    let start = sse(
        "start",
        &json!({
            "conversation_id": c.id,
            "user_message_id": answers,
            "assistant_message_id": assistant_id,
        }),
    );
    let generation = slot.generation().clone();
    let receiver = generation.attach().receiver;
    let plan = Plan {
        user_id: user.user_id.clone(),
        request_id,
        request,
        title_from,
        summarize,
        trimmed,
    };
    svc.tasks.spawn(generate::run(slot, plan));
    Ok(sse_response(vec![start], receiver, Some(generation)))
}

/// The OpenAI request for an answer to `path` (root first, ending with the message being
/// answered): the system prompt, the summary of dropped turns, and the newest turns that fit.
fn build_request(
    svc: &ChatService,
    c: &ConversationRow,
    path: &[&MessageRow],
    model: &str,
) -> (Value, Option<Summarize>, usize) {
    let turns: Vec<&MessageRow> = path
        .iter()
        .copied()
        .filter(|m| m.role == "user" || (m.role == "assistant" && !m.content.is_empty()))
        .collect();
    let images_of = |m: &MessageRow| -> Vec<String> {
        m.images
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default()
    };
    let window = context::window(&svc.config, model) as usize;
    let reserve = c
        .max_tokens
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(svc.config.output_reserve as usize);
    let system_tokens = c
        .system_prompt
        .as_deref()
        .map(|p| context::count_tokens(p) + 4)
        .unwrap_or(0);
    let summary_room = if svc.config.summary_model.is_some() {
        crate::SUMMARY_TOKENS
    } else {
        0
    };
    let budget = window.saturating_sub(reserve);
    let counted: Vec<Turn<'_>> = turns
        .iter()
        .map(|m| Turn {
            role: &m.role,
            content: &m.content,
            images: images_of(m).len(),
        })
        .collect();
    let limit = c
        .history_limit
        .and_then(|n| usize::try_from(n).ok())
        .map(|n| n + 1);
    let fixed = system_tokens + summary_room;
    let mut dropped = context::trim(&counted, fixed, budget, limit);
    let mut messages = Vec::new();
    if let Some(prompt) = &c.system_prompt {
        messages.push(json!({"role": "system", "content": prompt}));
    }
    let mut summarize = None;
    if dropped > 0
        && let Some(summary_model) = svc.config.summary_model.clone()
    {
        // Where the stored summary ends on this branch (a summary made on another branch
        // does not count).
        let covered = c
            .summary
            .as_ref()
            .and(c.summary_upto.as_deref())
            .and_then(|id| turns.iter().position(|m| m.id == id));
        match (covered, &c.summary) {
            // It covers at least what must go: leave out everything it covers, and no model
            // call is needed.
            (Some(at), Some(summary)) if at + 1 >= dropped && at + 1 < turns.len() => {
                dropped = at + 1;
                messages.push(json!({"role": "system", "content": format!("Summary of the earlier conversation:\n{summary}")}));
            }
            (covered, previous) => {
                // Fold in enough turns to get down to three fifths of the budget, so the next
                // several answers reuse this summary instead of paying for a new one each.
                dropped = dropped.max(context::trim(&counted, fixed, budget * 3 / 5, limit));
                let from = covered
                    .filter(|at| *at < dropped)
                    .map(|at| at + 1)
                    .unwrap_or(0);
                summarize = Some(Summarize {
                    conversation_id: c.id.clone(),
                    previous: if from > 0 { previous.clone() } else { None },
                    turns: turns[from..dropped]
                        .iter()
                        .map(|m| (m.role.clone(), m.content.clone()))
                        .collect(),
                    upto: turns[dropped - 1].id.clone(),
                    model: summary_model,
                });
            }
        }
    }
    for m in &turns[dropped..] {
        let images = images_of(m);
        let content = if images.is_empty() {
            json!(m.content)
        } else {
            let mut parts = vec![json!({"type": "text", "text": m.content})];
            parts.extend(
                images
                    .iter()
                    .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
            );
            Value::Array(parts)
        };
        messages.push(json!({"role": m.role, "content": content}));
    }
    let mut request = json!({ "model": model, "messages": messages, "stream": true });
    if let Some(t) = c.temperature {
        request["temperature"] = json!(t);
    }
    if let Some(p) = c.top_p {
        request["top_p"] = json!(p);
    }
    if let Some(n) = c.max_tokens {
        request["max_tokens"] = json!(n);
    }
    (request, summarize, dropped)
}

/// Options of a regeneration.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    /// Model for the new answer (default: the conversation's).
    pub model: Option<String>,
}

/// Write a new answer beside an answer (a sibling); the answer streams back as SSE.
#[utoipa::path(post, path = "/chat/messages/{id}/regenerate", tag = "chat", security(("bearer" = [])), request_body = RegenerateRequest,
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn regenerate(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let answer = owned_message(&svc, &user, &id).await?;
    if answer.role != "assistant" {
        return Err(ApiError::invalid_field(
            "id",
            "Only an answer can be regenerated; to change a message, edit it.",
            "只能重新生成回答；修改消息请使用编辑。",
        ));
    }
    if answer.parent_id.is_none() {
        return Err(ApiError::invalid_field(
            "id",
            "This answer follows no message, so there is nothing to answer again.",
            "该回答之前没有消息，无法重新生成。",
        ));
    }
    let c = owned(&svc, &user, &answer.conversation_id).await?;
    let asked = optional_json::<RegenerateRequest>(&body)?.and_then(|b| b.model);
    let model = choose_model(&svc, asked.as_deref(), &c).await?;
    let assistant_id = ids::new_id();
    let slot = Registry::begin(&svc, &c.id, &assistant_id)?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    begin(
        svc,
        slot,
        assistant_id,
        &user,
        c,
        rows,
        answer.parent_id,
        None,
        model,
        request_id.map(|r| r.0.0).unwrap_or_default(),
    )
    .await
}

/// Stop an answer being written; what was written is kept.
#[utoipa::path(post, path = "/chat/messages/{id}/stop", tag = "chat", security(("bearer" = [])),
    responses((status = 202, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn stop(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let message = owned_message(&svc, &user, &id).await?;
    let stopping = match svc.running.by_message(&message.id) {
        Some(generation) => {
            generation.stop();
            true
        }
        None => false,
    };
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "message_id": message.id, "stopping": stopping })),
    ))
}

/// Attach to an answer: the text so far, then the rest as it is written (SSE). A finished
/// answer answers at once with `done`.
#[utoipa::path(get, path = "/chat/messages/{id}/stream", tag = "chat", security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = ErrorEnvelope)))]
pub async fn attach(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let message = owned_message(&svc, &user, &id).await?;
    let start = sse(
        "start",
        &json!({
            "conversation_id": message.conversation_id,
            "user_message_id": message.parent_id,
            "assistant_message_id": message.id,
        }),
    );
    if let Some(generation) = svc.running.by_message(&message.id) {
        let attached = generation.attach();
        if attached.done.is_none() && !attached.ended {
            let mut first = vec![start];
            if !attached.reasoning.is_empty() {
                first.push(sse("reasoning", &json!({ "content": attached.reasoning })));
            }
            if !attached.content.is_empty() {
                first.push(sse("delta", &json!({ "content": attached.content })));
            }
            return Ok(sse_response(first, attached.receiver, Some(generation)));
        }
    }
    let view = crate::message_view(
        &svc,
        &message.user_id,
        &message.conversation_id,
        &message.id,
    )
    .await?
    .ok_or_else(message_not_found)?;
    let (sender, receiver) = broadcast::channel(2);
    let _ = sender.send(Event::Done(view));
    let _ = sender.send(Event::End);
    Ok(sse_response(vec![start], receiver, None))
}

/// What was sent upstream for an answer: the trimmed history, the summary, the settings.
#[utoipa::path(get, path = "/chat/messages/{id}/context", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn inspect_context(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<ApiJson<Value>> {
    let stored = store::context(&svc.db, &user.user_id, &id)
        .await?
        .ok_or_else(message_not_found)?;
    let record: Value = stored
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let request = &record["request"];
    let tokens: usize = request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| 4 + context::count_tokens(&m["content"].to_string()))
                .sum()
        })
        .unwrap_or(0);
    Ok(ApiJson(json!({
        "message_id": id,
        "request": request,
        "trimmed_turns": record["trimmed_turns"],
        "estimated_prompt_tokens": tokens,
    })))
}
