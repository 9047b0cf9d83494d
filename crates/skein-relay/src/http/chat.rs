//! `POST /v1/chat/completions`, `POST /v1/messages` and Gemini's `generateContent`: each
//! client format is read here and relayed through the chat pipeline
//! ([`crate::pipeline::chat`]), which converts, routes, bills and answers in the client's
//! format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use super::reply::render;
use crate::RelayService;
use crate::pipeline::Caller;
use crate::pipeline::chat::{self, Format};
use crate::pipeline::input::parse_json;

/// Relays an OpenAI chat completion.
pub(crate) async fn chat_completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    let request = parse_json(&body)?;
    let reply = chat::for_client(
        svc,
        Caller::Key(key),
        id.into_string(),
        request,
        Format::OpenAi,
        None,
    )
    .await?;
    Ok(render(reply))
}

/// Relays an Anthropic Messages request: converted to the OpenAI format for the upstream, and
/// the answer (whole or streamed) converted back, so the Anthropic SDK works unchanged.
pub(crate) async fn messages(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let anthropic = parse_json(&body)?;
    // Beta features a client turned on travel with its body to Anthropic channels.
    let betas: Vec<(String, String)> = headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| ("anthropic-beta".to_string(), v.to_string()))
        .collect();
    let stream = anthropic["stream"].as_bool() == Some(true);
    let model = anthropic["model"].as_str().unwrap_or("").to_string();
    let (request, mut native) = chat::with_native(
        crate::vendor::anthropic::request_to_openai(&anthropic),
        anthropic,
        &model,
        stream,
        chat::anthropic_max_tokens,
    );
    native.headers = betas;
    let reply = chat::for_client(
        svc,
        Caller::Key(key),
        id.into_string(),
        request?,
        Format::Anthropic,
        Some(native),
    )
    .await?;
    Ok(render(reply))
}

/// Relays an OpenAI Responses API request (`POST /v1/responses`): converted to the pivot
/// for any kind of channel, and the answer (a `response` object, or the Responses stream's
/// events) converted back. Nothing is stored: `previous_response_id` and `store: true` are
/// refused with a 400.
pub(crate) async fn responses(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    body: Bytes,
) -> ApiResult<Response> {
    let request = parse_json(&body)?;
    let pivot = crate::vendor::openai::responses::request_to_openai(&request)?;
    let reply = chat::for_client(
        svc,
        Caller::Key(key),
        id.into_string(),
        pivot,
        Format::Responses,
        Some(chat::Native::responses(request)),
    )
    .await?;
    Ok(render(reply))
}

/// Relays a Gemini `generateContent` or `streamGenerateContent` call (`?alt=sse` for server-sent
/// events; otherwise the stream is one JSON array whose items arrive as they are made).
pub(crate) async fn gemini(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    axum::extract::Path(model_action): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let (model, action) = model_action.rsplit_once(':').ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "Use models/{model}:generateContent.",
            "请使用 models/{model}:generateContent。",
        )
    })?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("The method {action} is not supported."),
                format!("不支持方法 {action}。"),
            ));
        }
    };
    let sse = query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    let gemini = parse_json(&body)?;
    let (request, native) = chat::with_native(
        crate::vendor::gemini::request_to_openai(&gemini, model, stream),
        gemini,
        model,
        stream,
        chat::gemini_max_tokens,
    );
    let reply = chat::for_client(
        svc,
        Caller::Key(key),
        id.into_string(),
        request?,
        Format::Gemini { sse },
        Some(native),
    )
    .await?;
    Ok(render(reply))
}
