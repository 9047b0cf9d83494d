//! The Chat service's HTTP routes (`/api/v1/chat/...`). See `docs/CHAT-API.md`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use skein_core::api::PricedModel;
use skein_core::auth::AuthUser;
use skein_core::error::ErrorEnvelope;
use skein_core::extract::{ApiJson, ApiQuery, JsonBytes};
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult, ids};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::context::{self, Turn};
use crate::generate::{self, Event, Generation, Plan, Registry, Slot, sse};
use crate::store::{self, ConversationRow, Field, ListFilter, MessageRow};
use crate::tree::Tree;
use crate::{ChatService, Summarize, active_path, view};

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
                .layer(axum::extract::DefaultBodyLimit::max(SEND_LIMIT)),
        )
        .routes(routes!(switch_branch))
        .routes(routes!(regenerate))
        .routes(routes!(stop))
        .routes(routes!(attach))
        .routes(routes!(inspect_context))
        .routes(routes!(export_conversation))
        .routes(routes!(export_all))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import))
                .layer(axum::extract::DefaultBodyLimit::max(IMPORT_LIMIT)),
        )
        .routes(routes!(models))
        .merge(OpenApiRouter::new().routes(routes!(transcribe)).layer(
            axum::extract::DefaultBodyLimit::max(AUDIO_LIMIT + 64 * 1024),
        ))
        .with_state(service)
}

/// Largest message body: four images of 5 MB as data URLs and the text.
const SEND_LIMIT: usize = MAX_IMAGES * MAX_IMAGE_URL + 1024 * 1024;
/// Largest import (ChatGPT's `conversations.json` of a long-time user is tens of MB).
const IMPORT_LIMIT: usize = 64 * 1024 * 1024;

/// Largest recording voice input takes.
const AUDIO_LIMIT: usize = 25 * 1024 * 1024;

/// Audio formats voice input takes, by MIME type and by file extension.
const AUDIO_TYPES: &[(&str, &str)] = &[
    ("audio/webm", "webm"),
    ("audio/ogg", "ogg"),
    ("audio/wav", "wav"),
    ("audio/x-wav", "wav"),
    ("audio/wave", "wav"),
    ("audio/mpeg", "mp3"),
    ("audio/mp3", "mp3"),
    ("audio/mp4", "m4a"),
    ("video/webm", "webm"),
];

fn audio_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "audio_too_large",
        "A recording may be at most 25 MB.",
        "录音最大 25 MB。",
    )
}

/// Transcribe a recording (multipart `file`: webm, ogg, wav or mp3, at most 25 MB; optional
/// `language`) through the relay's speech-to-text route, billed like any call.
#[utoipa::path(post, path = "/chat/transcriptions", tag = "chat", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String),
    responses((status = 200, body = Object), (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
pub async fn transcribe(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    request_id: Option<axum::Extension<RequestId>>,
    form: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<ApiJson<Value>> {
    let mut form = form.map_err(|_| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the recording as multipart/form-data with a file field.",
            "请以 multipart/form-data 上传录音（file 字段）。",
        )
    })?;
    let mut file = None;
    let mut language = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(audio_too_large());
            }
            Err(error) => {
                return Err(ApiError::bad_request(
                    "invalid_form",
                    format!("The form could not be read: {error}"),
                    format!("无法读取表单：{error}"),
                ));
            }
        };
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("audio").to_string();
                let mime = field.content_type().unwrap_or("").to_ascii_lowercase();
                let bytes = field.bytes().await.map_err(|error| {
                    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        audio_too_large()
                    } else {
                        ApiError::bad_request(
                            "invalid_form",
                            "The recording could not be read.",
                            "无法读取录音。",
                        )
                    }
                })?;
                file = Some((name, mime, bytes));
            }
            Some("language") => {
                let text = field.text().await.unwrap_or_default();
                let text = text.trim();
                if !text.is_empty() {
                    if text.len() > 8 || !text.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
                    {
                        return Err(ApiError::invalid_field(
                            "language",
                            "language is an ISO-639-1 code such as en or zh.",
                            "language 须为 ISO-639-1 语言代码，如 en 或 zh。",
                        ));
                    }
                    language = Some(text.to_string());
                }
            }
            _ => {}
        }
    }
    let Some((name, mime, bytes)) = file else {
        return Err(ApiError::invalid_field(
            "file",
            "Attach the recording as the file field.",
            "请在 file 字段上传录音。",
        ));
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid_field(
            "file",
            "The recording is empty.",
            "录音为空。",
        ));
    }
    if bytes.len() > AUDIO_LIMIT {
        return Err(audio_too_large());
    }
    let base_mime = mime.split(';').next().unwrap_or("").trim().to_string();
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    let known = AUDIO_TYPES
        .iter()
        .find(|(m, e)| *m == base_mime || extension.as_deref() == Some(*e));
    let Some((known_mime, known_extension)) = known else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_audio",
            "Record as webm, ogg, wav or mp3.",
            "请使用 webm、ogg、wav 或 mp3 格式的录音。",
        ));
    };
    let upload = skein_core::api::AudioUpload {
        model: svc.config.transcription_model.clone(),
        file_name: format!("recording.{known_extension}"),
        content_type: (*known_mime).to_string(),
        bytes,
        language,
    };
    let caller = skein_core::api::RelayCaller {
        user_id: user.user_id.clone(),
        group: svc.group.clone(),
        request_id: request_id.map(|r| r.0.0).unwrap_or_default(),
        conversation_id: None,
        cancel: None,
    };
    let text = svc.relay.transcribe(caller, upload).await?.text;
    Ok(ApiJson(json!({ "text": text })))
}

/// Most images on one message.
const MAX_IMAGES: usize = 4;
/// Largest image kept with a message as a data URL (bytes of the URL).
const MAX_IMAGE_URL: usize = 7 * 1024 * 1024;
/// How often an idle SSE stream sends a comment so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// A JSON body that may be left out (an empty body means the defaults).
fn optional_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<Option<T>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("The body does not fit: {e}"),
            format!("请求体格式不符：{e}"),
        )
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("Conversation", "对话")
}

fn message_not_found() -> ApiError {
    ApiError::not_found("Message", "消息")
}

fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::deserialize(d)?))
}

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

async fn owned(svc: &ChatService, user: &AuthUser, id: &str) -> ApiResult<ConversationRow> {
    store::conversation(&svc.db, &user.user_id, id)
        .await?
        .filter(|c| c.deleted_at.is_none())
        .ok_or_else(not_found)
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
    let mut row = ConversationRow {
        id: ids::new_id(),
        user_id: user.user_id.clone(),
        title: String::new(),
        pinned: 0,
        archived: 0,
        model: None,
        system_prompt: None,
        temperature: None,
        top_p: None,
        max_tokens: None,
        history_limit: None,
        active_leaf_id: None,
        summary: None,
        summary_upto: None,
        created_at: now,
        updated_at: now,
        deleted_at: None,
    };
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

/// The caller's conversations: pinned first, then by latest activity.
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
    let items: Vec<Value> = rows
        .iter()
        .take(usize::try_from(limit).unwrap_or(50))
        .map(conversation_view)
        .collect();
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
        return Err(not_found());
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
        return Err(not_found());
    }
    if let Some(running) = svc.running.by_conversation(&id) {
        running.stop();
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
    let row = owned(&svc, &user, &id).await.map_err(
        |error| {
            if restored { error } else { not_found() }
        },
    )?;
    Ok(ApiJson(conversation_view(&row)))
}

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

/// An SSE response: `first` frames, then the answer's events until it ends.
fn sse_response(
    first: Vec<Bytes>,
    receiver: broadcast::Receiver<Event>,
    generation: Option<Arc<Generation>>,
) -> Response {
    let head = futures::stream::iter(first.into_iter().map(Ok::<_, std::convert::Infallible>));
    let tail = futures::stream::unfold(Some((receiver, generation)), |state| async move {
        let (mut receiver, generation) = state?;
        loop {
            let frame = match tokio::time::timeout(HEARTBEAT, receiver.recv()).await {
                Err(_) => Bytes::from_static(b": keep-alive\n\n"),
                Ok(Ok(Event::End)) | Ok(Err(broadcast::error::RecvError::Closed)) => return None,
                Ok(Ok(event)) => match event.frame() {
                    Some(frame) => frame,
                    None => continue,
                },
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    // This reader fell behind and lost deltas: send the whole text so far, and
                    // the client replaces what it has.
                    tracing::warn!(missed, "a chat stream reader fell behind");
                    let Some(generation) = &generation else {
                        continue;
                    };
                    let (content, reasoning) = generation.text();
                    sse(
                        "replace",
                        &json!({ "content": content, "reasoning": reasoning }),
                    )
                }
            };
            return Some((Ok(frame), Some((receiver, generation))));
        }
    });
    let mut response = Response::new(Body::from_stream(futures::StreamExt::chain(head, tail)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Options of a regeneration.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    /// Model for the new answer (default: the conversation's).
    pub model: Option<String>,
}

async fn owned_message(svc: &ChatService, user: &AuthUser, id: &str) -> ApiResult<MessageRow> {
    store::message(&svc.db, &user.user_id, id)
        .await?
        .ok_or_else(message_not_found)
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

/// Export format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `markdown`, `html` or `json` (default).
    pub format: Option<String>,
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
    let (body, content_type, extension) = match q.format.as_deref().unwrap_or("json") {
        "markdown" | "md" => (
            crate::export::markdown(&c, &rows),
            "text/markdown; charset=utf-8",
            "md",
        ),
        "html" => (
            crate::export::html(&c, &rows),
            "text/html; charset=utf-8",
            "html",
        ),
        "json" => (
            crate::export::json(&c, &rows).to_string(),
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
#[utoipa::path(get, path = "/chat/export", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 401, body = ErrorEnvelope)))]
pub async fn export_all(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
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
            conversations.push(crate::export::json(&c, &rows));
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
    let ids_made = crate::import::store_import(&svc.db, &user.user_id, parsed).await?;
    Ok(ApiJson(
        json!({ "imported": ids_made.len(), "ids": ids_made }),
    ))
}

/// A model the caller may chat with.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ChatModel {
    /// Model name.
    pub id: String,
    /// Context window, tokens.
    pub context_window: u32,
    /// Quota units per million prompt tokens.
    pub input_price: i64,
    /// Quota units per million completion tokens.
    pub output_price: i64,
}

/// The models the caller may chat with, and their prices.
#[utoipa::path(get, path = "/chat/models", tag = "chat", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatModel>), (status = 401, body = ErrorEnvelope)))]
pub async fn models(
    State(svc): State<Arc<ChatService>>,
    _user: AuthUser,
) -> ApiResult<ApiJson<Vec<ChatModel>>> {
    let models = svc.relay.priced_models(&svc.group).await?;
    Ok(ApiJson(
        models
            .into_iter()
            .filter(crate::is_chat_model)
            .map(|m| ChatModel {
                context_window: context::window(&svc.config, &m.id),
                id: m.id,
                input_price: m.input_price,
                output_price: m.output_price,
            })
            .collect(),
    ))
}
