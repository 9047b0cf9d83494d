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
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult, ids};
use tokio::sync::broadcast;
use utoipa::ToSchema;

use super::sse::sse_response;
use super::{nullable, optional_json, owned, owned_message};
use crate::answer::{NewAnswer, Question, Started};
use crate::context;
use crate::errors;
use crate::generate::{Event, Registry, sse};
use crate::store::{self, ConversationRow, MessageRow};
use crate::tree::Tree;
use crate::{ChatService, active_path, view};

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

/// The history as JSON bytes, serialized straight from the rows, with the reader's verdicts.
pub(super) async fn history_view(
    svc: &ChatService,
    c: &ConversationRow,
    rows: &[MessageRow],
) -> ApiResult<Response> {
    let tree = Tree::new(rows);
    let path = active_path(&tree, c.active_leaf_id.as_deref());
    let mut verdicts: std::collections::HashMap<String, String> =
        store::feedback_of(&svc.db, &c.user_id, &c.id)
            .await?
            .into_iter()
            .collect();
    let history = HistoryView {
        conversation_id: &c.id,
        active_leaf_id: path.last().map(|m| m.id.as_str()),
        messages: path
            .iter()
            .map(|m| {
                let mut v = view(m, &tree, svc.files.as_ref());
                v.feedback = verdicts.remove(&m.id);
                v
            })
            .collect(),
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
    history_view(&svc, &c, &rows).await
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
        .ok_or_else(errors::message_not_found)?;
    let leaf = tree.newest_leaf(start).to_string();
    store::set_active_leaf(svc.db.pool(), &c.id, &leaf, ids::now_ms()).await?;
    c.active_leaf_id = Some(leaf);
    history_view(&svc, &c, &rows).await
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
    /// Images: `file:<id>` of an uploaded image (`POST /files?purpose=chat`),
    /// `data:image/...;base64,` URLs (stored as files on arrival) or `https://` URLs.
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
    request_id: RequestId,
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
    // Before the conversation is locked: storing a few MB must not hold it.
    let images = crate::images::store_images(svc.files.as_ref(), &user.user_id, req.images).await?;
    let settings = svc.settings(&c, req.model.as_deref()).await?;
    let assistant_id = ids::new_id();
    let slot = Registry::begin(&svc, &c.id, &assistant_id).await?;
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
    let conversation_id = c.id.clone();
    let started = svc
        .start_answer(NewAnswer {
            slot,
            assistant_id,
            user_id: user.user_id,
            request_id: request_id.into_string(),
            conversation: c,
            rows,
            parent,
            question: Some(Question { content, images }),
            continues: None,
            settings,
        })
        .await?;
    Ok(answer_stream(&conversation_id, started))
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
        let file = crate::images::file_id(url).is_some();
        if !(data || https || file) {
            return Err(ApiError::invalid_field(
                "images",
                "An image is file:<id>, a data:image/...;base64 URL or an https:// URL.",
                "图片须为 file:<id>、data:image/...;base64 或 https:// 地址。",
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

/// The first event of an answer's stream, then its events as they are written.
fn answer_stream(conversation_id: &str, started: Started) -> Response {
    let start = sse(
        "start",
        &json!({
            "conversation_id": conversation_id,
            "user_message_id": started.user_message_id,
            "assistant_message_id": started.generation.message_id,
        }),
    );
    sse_response(vec![start], started.receiver, Some(started.generation))
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
    request_id: RequestId,
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
    let settings = svc.settings(&c, asked.as_deref()).await?;
    let assistant_id = ids::new_id();
    let slot = Registry::begin(&svc, &c.id, &assistant_id).await?;
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let conversation_id = c.id.clone();
    let started = svc
        .start_answer(NewAnswer {
            slot,
            assistant_id,
            user_id: user.user_id,
            request_id: request_id.into_string(),
            conversation: c,
            rows,
            parent: answer.parent_id,
            question: None,
            continues: None,
            settings,
        })
        .await?;
    Ok(answer_stream(&conversation_id, started))
}

/// Write more of a finished answer — one cut at its length limit (`finish_reason: length`),
/// or stopped — from where it ends: the model is sent the conversation up to the question
/// with the answer so far as its last message, and what it writes is appended to the same
/// message. Only the newest answer of its branch can be continued. The continuation is billed
/// on its own; the message then shows what the whole answer cost. Streams back as SSE.
#[utoipa::path(post, path = "/chat/messages/{id}/continue", tag = "chat", security(("bearer" = [])), request_body = RegenerateRequest,
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn continue_answer(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: RequestId,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let answer = owned_message(&svc, &user, &id).await?;
    if answer.role != "assistant" {
        return Err(ApiError::invalid_field(
            "id",
            "Only an answer can be continued.",
            "只能继续生成回答。",
        ));
    }
    if answer.content.trim().is_empty() {
        return Err(ApiError::invalid_field(
            "id",
            "This answer has no text to continue; regenerate it instead.",
            "该回答没有可继续的内容，请重新生成。",
        ));
    }
    let c = owned(&svc, &user, &answer.conversation_id).await?;
    // The model that wrote the answer writes on, unless another is asked for.
    let asked = optional_json::<RegenerateRequest>(&body)?
        .and_then(|b| b.model)
        .or_else(|| answer.model.clone());
    let settings = svc.settings(&c, asked.as_deref()).await?;
    let slot = Registry::begin(&svc, &c.id, &answer.id).await?;
    // Read again under the conversation's slot: the answer may have changed meanwhile.
    let rows = store::messages(&svc.db, &c.user_id, &c.id).await?;
    let answer = rows
        .iter()
        .find(|m| m.id == id)
        .cloned()
        .ok_or_else(errors::message_not_found)?;
    if rows
        .iter()
        .any(|m| m.parent_id.as_deref() == Some(answer.id.as_str()))
    {
        return Err(ApiError::invalid_field(
            "id",
            "Only the newest answer of a branch can be continued: messages follow this one.",
            "只能继续分支中最新的回答：此回答之后已有消息。",
        ));
    }
    let conversation_id = c.id.clone();
    let started = svc
        .start_answer(NewAnswer {
            slot,
            assistant_id: answer.id.clone(),
            user_id: user.user_id,
            request_id: request_id.into_string(),
            conversation: c,
            rows,
            parent: answer.parent_id.clone(),
            question: None,
            continues: Some(answer),
            settings,
        })
        .await?;
    Ok(answer_stream(&conversation_id, started))
}

/// Approve a tool call that waits for you in an answer being written: it runs, and the
/// answer goes on.
#[utoipa::path(post, path = "/chat/messages/{id}/tool-calls/{call_id}/approve", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path), ("call_id" = String, Path)),
    responses((status = 202, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn approve_tool_call(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path((id, call_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    decide_tool_call(&svc, &user, &id, &call_id, true).await
}

/// Deny a tool call that waits for you: it does not run, and the model hears so.
#[utoipa::path(post, path = "/chat/messages/{id}/tool-calls/{call_id}/deny", tag = "chat", security(("bearer" = [])),
    params(("id" = String, Path), ("call_id" = String, Path)),
    responses((status = 202, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn deny_tool_call(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    Path((id, call_id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    decide_tool_call(&svc, &user, &id, &call_id, false).await
}

/// Hands your decision to the answer writing message `id` (here, or over the bus to the
/// instance writing it); a call that does not wait (any more) is not found.
async fn decide_tool_call(
    svc: &Arc<ChatService>,
    user: &AuthUser,
    id: &str,
    call_id: &str,
    approve: bool,
) -> ApiResult<(StatusCode, ApiJson<Value>)> {
    let message = owned_message(svc, user, id).await?;
    let decided = match svc.running.by_message(&message.id) {
        Some(generation) => generation.decide(call_id, approve),
        None if !call_id.contains('/') && svc.written_elsewhere(&message.id).await? => {
            let both = format!("{}/{call_id}", message.id);
            svc.tell(&if approve {
                crate::live::Control::Approve(both)
            } else {
                crate::live::Control::Deny(both)
            })
            .await
        }
        None => false,
    };
    if !decided {
        return Err(ApiError::not_found(
            "Tool call waiting for approval",
            "待批准的工具调用",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "message_id": message.id, "call_id": call_id, "approved": approve })),
    ))
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
        // Written by another instance: the stop goes to it over the bus.
        None if svc.written_elsewhere(&message.id).await? => {
            svc.tell(&crate::live::Control::Stop(message.id.clone()))
                .await
        }
        None => false,
    };
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(json!({ "message_id": message.id, "stopping": stopping })),
    ))
}

/// Attach to an answer: the text so far and its tool steps so far (calls, results, a call
/// still waiting for approval), then the rest as it is written (SSE). A finished answer
/// answers at once with `done`.
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
            first.extend(attached.tools.iter().filter_map(Event::frame));
            return Ok(sse_response(first, attached.receiver, Some(generation)));
        }
    } else if svc.written_elsewhere(&message.id).await?
        && let Some(response) = svc.attach_remote(&message.id, start.clone()).await
    {
        return Ok(response);
    }
    let view = crate::message_view(
        &svc,
        &message.user_id,
        &message.conversation_id,
        &message.id,
    )
    .await?
    .ok_or_else(errors::message_not_found)?;
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
        .ok_or_else(errors::message_not_found)?;
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
