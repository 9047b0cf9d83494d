//! `POST /v1/completions`: OpenAI's legacy text completions, whole and streamed, relayed to
//! OpenAI-format channels and billed from the upstream's usage as chat is.
//!
//! For streams, `stream_options.include_usage` is switched on upstream so the bill comes from
//! the upstream's own count; a client that did not ask for usage never sees that chunk.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::request::RequestId;

use super::meter::{self, Charge, Upstream};
use crate::RelayService;
use crate::proxy::{Tokens, estimate_tokens, usage_of};

/// OpenAI's default `max_tokens` for this API (reserved when the client sets none).
const DEFAULT_MAX_TOKENS: i64 = 16;

/// Relays a text completion.
pub(crate) async fn completions(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    request_id: Option<axum::Extension<RequestId>>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut request = meter::parse_json(&body)?;
    let prompt_estimate = meter::input_tokens(&request["prompt"]).ok_or_else(|| {
        meter::invalid(
            "prompt",
            "must be a string, an array of strings, or an array of token arrays.",
            "必须是字符串、字符串数组或 token 数组的数组。",
        )
    })?;
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let client_wants_usage = request["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let max_tokens = request
        .get("max_tokens")
        .and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    let choices = ["n", "best_of"]
        .iter()
        .filter_map(|f| request.get(*f).and_then(Value::as_i64))
        .max()
        .unwrap_or(1)
        .clamp(1, 128);
    let request_id = request_id.map(|r| r.0.0).unwrap_or_default();
    let plan = meter::plan(&svc, &key, request["model"].as_str()).await?;
    let estimate = plan
        .rates
        .cost(prompt_estimate, max_tokens.saturating_mul(choices), 0);
    if stream && let Some(obj) = request.as_object_mut() {
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    }
    let upstream = Upstream {
        path: "/v1/completions",
        content_type: "application/json".into(),
        body: move |model: &str| meter::with_model(&request, model),
        stream,
    };
    meter::call(
        &svc,
        &key,
        &request_id,
        plan,
        estimate,
        upstream,
        move |resp, meter| async move {
            if stream {
                return meter::sse(
                    resp,
                    meter,
                    client_wants_usage,
                    text_len,
                    move |meter, tokens, delivered, broken| {
                        charge(meter, tokens, prompt_estimate, delivered, broken)
                    },
                );
            }
            meter::whole(resp, meter, move |meter, bytes| {
                let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
                let delivered = parsed.as_ref().map(text_len).unwrap_or(bytes.len());
                charge(
                    meter,
                    parsed.as_ref().and_then(usage_of),
                    prompt_estimate,
                    delivered,
                    false,
                )
            })
            .await
        },
    )
    .await
}

/// The charge from the upstream's usage, or (without one) the prompt estimate plus the text
/// delivered.
fn charge(
    meter: &meter::Meter,
    tokens: Option<Tokens>,
    prompt_estimate: i64,
    delivered: usize,
    broken: bool,
) -> Charge {
    let rates = meter.rates();
    let (tokens, status) = match tokens {
        Some(tokens) => (tokens, if broken { "partial" } else { "ok" }),
        None => (
            Tokens {
                prompt: prompt_estimate,
                completion: estimate_tokens(delivered),
                ..Tokens::default()
            },
            if broken { "partial" } else { "estimated" },
        ),
    };
    Charge::new(
        rates.cost(tokens.prompt, tokens.completion, tokens.cached),
        tokens.prompt,
        tokens.completion,
        status,
    )
}

/// Bytes of text in a completion or a completion chunk.
fn text_len(value: &Value) -> usize {
    value["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .map(str::len)
        .sum()
}
