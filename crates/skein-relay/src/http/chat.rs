//! `POST /v1/chat/completions`, `POST /v1/messages` and Gemini's `generateContent` (the
//! Responses API is in [`super::responses`]): each client format is read here and relayed through the chat pipeline
//! ([`crate::pipeline::chat`]), which converts, routes, bills and answers in the client's
//! format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult};

use super::reply::render;
use crate::RelayService;
use crate::errors;
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
    // The group's response cache, for a request that asks for a deterministic whole answer.
    let policy = svc.cache_policy(&key.group);
    let cache_key = (policy.enabled && crate::cache::cacheable(&request))
        .then(|| crate::cache::key(&policy, &key.group, &key.user_id, &request));
    if let Some(k) = &cache_key
        && let Some(entry) = svc.response_cache.get(k, std::time::Instant::now())
    {
        let asked = request["model"].as_str().unwrap_or_default();
        // A streamed ask gets the kept answer as chunks, the usage last when it asked for it.
        let delivery = crate::cache::streamed(&request)
            .then(|| request["stream_options"]["include_usage"].as_bool() == Some(true));
        return cache_hit(
            &svc,
            &key,
            asked,
            &policy,
            &entry,
            id.into_string(),
            delivery,
        )
        .await;
    }
    // Only a whole answer is kept; a streamed miss is relayed as usual.
    let cache_key = cache_key.filter(|_| !crate::cache::streamed(&request));
    let reply = chat::for_client(
        svc.clone(),
        Caller::Key(key),
        id.into_string(),
        request,
        Format::OpenAi,
        None,
    )
    .await?;
    let mut stored = false;
    if let (Some(k), StatusCode::OK, Some(bytes)) = (cache_key, reply.status, reply.bytes()) {
        let answer: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
        // Only a finished answer is kept: one cut at its output limit or refused by a
        // content filter is not what the next identical request should get forever.
        let finished = answer["choices"].as_array().is_some_and(|c| {
            !c.is_empty()
                && c.iter()
                    .all(|c| c["finish_reason"] == "stop" || c["finish_reason"] == "tool_calls")
        });
        if finished {
            svc.response_cache.put(
                k,
                crate::cache::Entry {
                    body: bytes.clone(),
                    model: answer["model"].as_str().unwrap_or_default().to_string(),
                    tokens: crate::cache::usage_of(&answer),
                    expires: std::time::Instant::now()
                        + std::time::Duration::from_secs(policy.ttl_secs.max(1) as u64),
                },
            );
            crate::metrics::CACHE.inc(&["miss"]);
            stored = true;
        }
    }
    let mut response = render(reply);
    if stored {
        response
            .headers_mut()
            .insert("x-skein-cache", HeaderValue::from_static("miss"));
    }
    Ok(response)
}

/// Answers a cache hit: the kept answer, billed at the group's share of its price (a hit
/// that costs nothing writes no usage record), with `x-skein-cache: hit`. `stream` is
/// `Some(include_usage)` for a streamed ask, which gets the answer as server-sent chunks.
async fn cache_hit(
    svc: &RelayService,
    key: &skein_core::api::KeyInfo,
    asked: &str,
    policy: &crate::cache::CachePolicy,
    entry: &crate::cache::Entry,
    request_id: String,
    stream: Option<bool>,
) -> ApiResult<Response> {
    // The key's own model list still applies, as it changes after an answer was kept.
    if !key.allows_model(asked) {
        return Err(errors::model_not_allowed(asked));
    }
    // A hit is a request like any other for the key's limits: the gateway counted it against
    // the key's requests per minute before it got here, and its tokens count against the
    // key's tokens per minute (a spent budget refuses it), so a cache never lifts a limit.
    crate::pipeline::plan::check_tpm(svc, key).await?;
    // And so do the owner's plans.
    let plans = svc.entitlements(&key.user_id).await?;
    if !plans.allows_model(asked) {
        return Err(errors::not_in_plan(asked, &plans));
    }
    // An alias is priced as the model it serves as.
    let routes = svc.model_routes();
    let served = routes.resolve(asked);
    let price = svc
        .price_for(&key.group, served)
        .ok_or_else(|| errors::not_priced(served))?;
    let (prompt, completion, cached) = entry.tokens;
    let full = price.cost(prompt, completion, cached);
    // Rounded up, so a discounted hit never costs nothing by rounding alone.
    let cost = (full.saturating_mul(policy.price_percent) + 99) / 100;
    if cost > 0 {
        let hold = svc
            .billing
            .reserve(skein_core::api::ReserveRequest {
                user_id: key.user_id.clone(),
                key: Some(skein_core::api::KeyLimit {
                    key_id: key.key_id.clone(),
                    limit: key.quota_limit,
                }),
                amount: cost,
                min_amount: cost,
                reference: request_id.clone(),
            })
            .await?;
        let usage = skein_core::api::Usage {
            cost,
            model: served.to_string(),
            channel_id: None,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
            status: "cache_hit".into(),
            request_id,
            pricing: price.record(),
            ..Default::default()
        };
        svc.billing.settle(&hold.id, usage).await?;
    }
    crate::pipeline::plan::count_tpm(
        svc,
        &Caller::Key(key.clone()),
        prompt.saturating_add(completion),
    )
    .await;
    crate::metrics::CACHE.inc(&["hit"]);
    let mut response = match stream {
        None => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            entry.body.clone(),
        )
            .into_response(),
        Some(include_usage) => {
            let answer: serde_json::Value =
                serde_json::from_slice(&entry.body).map_err(ApiError::internal)?;
            (
                StatusCode::OK,
                [
                    (axum::http::header::CONTENT_TYPE, "text/event-stream"),
                    (axum::http::header::CACHE_CONTROL, "no-cache"),
                ],
                crate::cache::replay_as_stream(&answer, include_usage),
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert("x-skein-cache", HeaderValue::from_static("hit"));
    Ok(response)
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
    let (model, action) = model_action
        .rsplit_once(':')
        .ok_or_else(errors::gemini_route_not_found)?;
    let stream = match action {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return Err(errors::gemini_method_not_supported(action));
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
