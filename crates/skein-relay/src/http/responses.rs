//! OpenAI's Responses API: `POST /v1/responses` relayed through the chat pipeline (converted
//! to and from the pivot for every kind of channel), and the stored state around it —
//! `previous_response_id`, `GET`/`DELETE /v1/responses/{id}`, `GET …/input_items`, and
//! background mode with `POST …/cancel` ([`crate::responses`] keeps the rows).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use skein_core::api::KeyInfo;
use skein_core::auth::ApiKeyCaller;
use skein_core::extract::ApiQuery;
use skein_core::i18n::Lang;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};
use tokio_util::sync::CancellationToken;

use super::reply::render;
use crate::RelayService;
use crate::errors;
use crate::pipeline::chat::{self, Format, KeepResponse, Native};
use crate::pipeline::input::parse_json;
use crate::pipeline::{Caller, ReplyBody};
use crate::responses::{self as kept, ChainError, NewResponse};
use crate::vendor::openai::responses as wire;

/// Relays a Responses API request. A request that continues a kept response
/// (`previous_response_id`) is sent with that conversation in front of its input; a kept
/// response (`store`, on unless the request or the configuration says otherwise) is written
/// before the client gets its end; a background one is answered at once as `queued` and run
/// on a task of the service's own.
pub(crate) async fn create(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    let request = parse_json(&body)?;
    let store = flag(&request, "store")?.unwrap_or(svc.tuning.responses_store_default);
    let background = flag(&request, "background")?.unwrap_or(false);
    let stream = flag(&request, "stream")?.unwrap_or(false);
    if background && !store {
        return Err(errors::invalid_responses_field(
            "background",
            "a background response must be stored: leave store unset or true.",
            "后台响应必须保存：store 不设置或设为 true。",
        ));
    }
    if background && stream {
        return Err(errors::invalid_responses_field(
            "background",
            "streaming a background response is not supported here: poll GET /v1/responses/{id} instead.",
            "此处不支持流式返回后台响应：请轮询 GET /v1/responses/{id}。",
        ));
    }
    let previous = match request.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
        Some(_) => {
            return Err(errors::invalid_responses_field(
                "previous_response_id",
                "must be the id of a response.",
                "必须是响应的 id。",
            ));
        }
    };
    let history = match &previous {
        Some(previous) => kept::history(&svc.db, &key.user_id, previous)
            .await
            .map_err(chain_error)?,
        None => Vec::new(),
    };
    // The input items are kept (and lead a continued conversation) only when stored or
    // continued; otherwise the request converts as it came.
    let items = if store || !history.is_empty() {
        wire::input_items(&request)
    } else {
        Vec::new()
    };
    let pivot = if history.is_empty() {
        wire::request_to_openai(&request)?
    } else {
        wire::request_to_openai(&wire::with_history(&request, history, &items))?
    };
    let response_id = wire::new_id("resp");
    // What the answer echoes: the request, with the id it is kept under and what was resolved.
    let mut echo = request;
    if let Some(obj) = echo.as_object_mut() {
        obj.insert("id".into(), json!(response_id));
        obj.insert("store".into(), json!(store));
        obj.insert("background".into(), json!(background));
        obj.insert("previous_response_id".into(), json!(previous));
    }
    let row = Row {
        id: response_id,
        user_id: key.user_id.clone(),
        key_id: key.key_id.clone(),
        previous_id: previous,
        input: items,
    };
    if background {
        return start_background(svc, key, id.into_string(), pivot, echo, row).await;
    }
    let keep = store.then(|| keep_new(svc.clone(), row));
    let reply = chat::for_client(
        svc,
        Caller::Key(key),
        id.into_string(),
        pivot,
        Format::Responses,
        Some(Native::responses(echo, keep)),
    )
    .await?;
    Ok(render(reply))
}

/// A boolean request field: `None` when absent or null, a 400 when not a boolean.
fn flag(request: &Value, field: &str) -> ApiResult<Option<bool>> {
    match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(errors::invalid_responses_field(
            field,
            "must be true or false.",
            "必须是 true 或 false。",
        )),
    }
}

/// The client's answer when a conversation cannot be continued.
fn chain_error(error: ChainError) -> ApiError {
    match error {
        ChainError::NotFound(id) => errors::response_not_found(&id),
        ChainError::Open(id) => errors::response_in_progress(&id),
        ChainError::TooLong => errors::conversation_too_long(kept::MAX_CHAIN),
        ChainError::Db(error) => error.into(),
    }
}

/// What a kept response's row says besides its response object.
struct Row {
    id: String,
    user_id: String,
    key_id: String,
    previous_id: Option<String>,
    input: Vec<Value>,
}

impl Row {
    /// The row's insert.
    fn new_response<'a>(&'a self, response: &'a Value, background: bool) -> NewResponse<'a> {
        NewResponse {
            id: &self.id,
            user_id: &self.user_id,
            key_id: &self.key_id,
            previous_id: self.previous_id.as_deref(),
            background,
            input: &self.input,
            response,
        }
    }
}

/// Keeps a (foreground) response once its final object is known. A write that fails is
/// logged: the client still gets its answer, which it has paid for.
fn keep_new(svc: Arc<RelayService>, row: Row) -> KeepResponse {
    Box::new(move |response: Value| {
        Box::pin(async move {
            if let Err(error) = kept::insert(&svc.db, row.new_response(&response, false)).await {
                tracing::warn!(%error, id = %row.id, "could not keep a response");
            }
        })
    })
}

/// Keeps a background response `queued`, answers with it, and runs it on a task of the
/// service's own.
async fn start_background(
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    mut pivot: Value,
    echo: Value,
    row: Row,
) -> ApiResult<Response> {
    let mut queued = wire::skeleton(&echo, echo["model"].as_str().unwrap_or_default());
    queued["status"] = json!("queued");
    kept::insert(&svc.db, row.new_response(&queued, true)).await?;
    // Streamed upstream, so a cancel can stop it and bill only what was made.
    if let Some(obj) = pivot.as_object_mut() {
        obj.insert("stream".into(), json!(true));
    }
    let tasks = svc.tasks.clone();
    tasks.spawn(run_background(svc, key, request_id, pivot, echo, row.id));
    Ok((StatusCode::OK, Json(queued)).into_response())
}

/// Runs a background response to its end (or its cancel), keeping its final object.
async fn run_background(
    svc: Arc<RelayService>,
    key: KeyInfo,
    request_id: String,
    pivot: Value,
    echo: Value,
    id: String,
) {
    let cancel = CancellationToken::new();
    let running = CancellationToken::new();
    // The heartbeat: keeps the row from looking abandoned, and stops the answer when a cancel
    // (through any instance) reached the row.
    let beat = {
        let (svc, id, cancel, running) = (svc.clone(), id.clone(), cancel.clone(), running.clone());
        tokio::spawn(async move {
            loop {
                match kept::heartbeat(&svc.db, &id).await {
                    Ok(Some(status)) if kept::is_open(&status) => {}
                    Ok(_) => {
                        cancel.cancel();
                        return;
                    }
                    Err(error) => tracing::warn!(%error, %id, "background response heartbeat"),
                }
                tokio::select! {
                    () = running.cancelled() => return,
                    () = tokio::time::sleep(kept::HEARTBEAT) => {}
                }
            }
        })
    };
    let mut started = wire::skeleton(&echo, echo["model"].as_str().unwrap_or_default());
    started["status"] = json!("in_progress");
    let _ = kept::settle_open(&svc.db, &id, &started).await;
    let keep: KeepResponse = {
        let (svc, id) = (svc.clone(), id.clone());
        Box::new(move |response: Value| {
            Box::pin(async move {
                if let Err(error) = kept::settle_open(&svc.db, &id, &response).await {
                    tracing::warn!(%error, %id, "could not keep a background response");
                }
            })
        })
    };
    let answer = chat::for_client_until(
        svc.clone(),
        Caller::Key(key),
        request_id,
        pivot,
        Format::Responses,
        Some(Native::responses(echo.clone(), Some(keep))),
        Some(cancel),
    )
    .await;
    let failure = match answer {
        Ok(reply) => match reply.body {
            // The stream's end keeps the final object; here it is only read to its end.
            ReplyBody::Stream(mut events) => {
                while events.recv().await.is_some() {}
                None
            }
            ReplyBody::Whole(bytes) if !reply.status.is_success() => {
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let error = &body["error"];
                Some(json!({
                    "code": error["code"].as_str().or(error["type"].as_str()).unwrap_or("upstream_error"),
                    "message": error["message"].as_str().unwrap_or("The model's provider refused the request."),
                }))
            }
            ReplyBody::Whole(_) => None,
        },
        Err(error) => Some(json!({"code": error.code(), "message": error.message(Lang::En)})),
    };
    if let Some(error) = failure {
        let mut failed = wire::skeleton(&echo, echo["model"].as_str().unwrap_or_default());
        failed["status"] = json!("failed");
        failed["error"] = error;
        if let Err(error) = kept::settle_open(&svc.db, &id, &failed).await {
            tracing::warn!(%error, %id, "could not keep a failed background response");
        }
    }
    running.cancel();
    let _ = beat.await;
}

/// `GET /v1/responses/{id}`: a kept response as it stands (a background one while it runs).
pub(crate) async fn retrieve(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let found = kept::get(&svc.db, &key.user_id, &id)
        .await?
        .ok_or_else(|| errors::response_not_found(&id))?;
    Ok(Json(found.response).into_response())
}

/// `DELETE /v1/responses/{id}`: forgets a kept response (a conversation continued from it
/// can no longer be).
pub(crate) async fn delete(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    if !kept::delete(&svc.db, &key.user_id, &id).await? {
        return Err(errors::response_not_found(&id));
    }
    Ok(Json(json!({"id": id, "object": "response", "deleted": true})).into_response())
}

/// `POST /v1/responses/{id}/cancel`: stops a background response (within a heartbeat on
/// whichever instance runs it); what was made until then is billed. A response that already
/// ended is returned as it is.
pub(crate) async fn cancel(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let found = kept::cancel(&svc.db, &key.user_id, &id)
        .await?
        .ok_or_else(|| errors::response_not_found(&id))?;
    if !found.background {
        return Err(errors::not_background());
    }
    Ok(Json(found.response).into_response())
}

/// The query of `GET /v1/responses/{id}/input_items`.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemsQuery {
    /// Items per page, 1–100 (20).
    limit: Option<i64>,
    /// `asc` or `desc` (the default: newest first).
    order: Option<String>,
    /// List after this item id (in the chosen order).
    after: Option<String>,
}

/// `GET /v1/responses/{id}/input_items`: the input items the response's request added, as
/// OpenAI pages them.
pub(crate) async fn input_items(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> ApiResult<Response> {
    let found = kept::get(&svc.db, &key.user_id, &id)
        .await?
        .ok_or_else(|| errors::response_not_found(&id))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(errors::invalid_responses_field(
            "limit",
            "must be between 1 and 100.",
            "必须在 1 到 100 之间。",
        ));
    }
    let mut items = found.input;
    match q.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(_) => {
            return Err(errors::invalid_responses_field(
                "order",
                "must be asc or desc.",
                "必须是 asc 或 desc。",
            ));
        }
    }
    if let Some(after) = &q.after {
        let at = items
            .iter()
            .position(|item| item["id"].as_str() == Some(after.as_str()))
            .ok_or_else(|| {
                errors::invalid_responses_field(
                    "after",
                    "names no input item of this response.",
                    "不是该响应的输入项。",
                )
            })?;
        items.drain(..=at);
    }
    let limit = usize::try_from(limit).unwrap_or(20);
    let has_more = items.len() > limit;
    items.truncate(limit);
    let first = items
        .first()
        .map(|i| i["id"].clone())
        .unwrap_or(Value::Null);
    let last = items.last().map(|i| i["id"].clone()).unwrap_or(Value::Null);
    Ok(Json(json!({
        "object": "list",
        "data": items,
        "first_id": first,
        "last_id": last,
        "has_more": has_more,
    }))
    .into_response())
}
