//! A whole (unstreamed) chat answer in the client's format, and the upstream's refusal in it.

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use serde_json::Value;
use skein_core::ApiResult;

use super::Format;
use super::stream::Bill;
use crate::errors;
use crate::pipeline::Reply;
use crate::pipeline::SpawnInSpan;
use crate::pipeline::input::usage_in;
use crate::proxy::{Tokens, estimate_tokens, usage_of};
use crate::upstream;
use crate::vendor::{self, Upstream};

/// The upstream's own refusal (a 4xx), in the client's format.
pub(super) fn refused(
    status: StatusCode,
    body: Bytes,
    format: Format,
    adapter: &dyn Upstream,
    native: bool,
) -> Reply {
    let json = HeaderValue::from_static("application/json");
    if native {
        // The client speaks this vendor's format: its error as the vendor wrote it.
        return Reply::whole(status, json, body);
    }
    let body = adapter.error_to_openai(body);
    let body = match format {
        Format::OpenAi | Format::Events | Format::Responses => body,
        Format::Anthropic => vendor::anthropic::errors::refusal_from_openai(&body),
        Format::Gemini { .. } => {
            vendor::gemini::errors::refusal_from_openai(status.as_u16(), &body)
        }
    };
    Reply::whole(status, json, body)
}

/// Reads a whole answer, bills it (on a task of its own: the answer does not wait for the
/// ledger) and converts it to the client's format.
pub(super) async fn relay_whole(
    resp: reqwest::Response,
    bill: Bill,
    format: Format,
    adapter: &dyn Upstream,
    upstream_model: &str,
    native: bool,
    responses: Option<super::ResponsesEcho<'_>>,
) -> ApiResult<Reply> {
    let status = resp.status();
    let bytes = match upstream::read_body(resp, bill.meter.idle).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let tokens = Tokens {
                prompt: bill.prompt_estimate,
                ..Tokens::default()
            };
            tracing::warn!(%error, "upstream body broke off");
            bill.settle(tokens, "error", None).await;
            return Err(errors::broken_off());
        }
    };
    // An OpenAI answer for an OpenAI client goes out as the upstream wrote it: only its usage
    // is read (skipping the rest as it is parsed). Any other answer, or one without usage, is
    // parsed whole.
    let passthrough = !native && format == Format::OpenAi && adapter.speaks_pivot();
    let quick = passthrough
        .then(|| usage_in(&bytes))
        .flatten()
        .and_then(|u| crate::proxy::usage_tokens(&u));
    let parsed: Option<Value> = if quick.is_some() {
        None
    } else {
        serde_json::from_slice::<Value>(&bytes)
            .ok()
            .map(|v| adapter.response(v, upstream_model))
    };
    let (tokens, outcome) = match quick.or_else(|| parsed.as_ref().and_then(usage_of)) {
        Some(tokens) => (tokens, "ok"),
        None => {
            // No usage from the upstream: bill the prompt estimate and the text delivered.
            let text_len = parsed
                .as_ref()
                .map(|v| v["choices"].to_string().len())
                .unwrap_or(bytes.len());
            (
                Tokens {
                    prompt: bill.prompt_estimate,
                    completion: estimate_tokens(text_len),
                    ..Tokens::default()
                },
                "estimated",
            )
        }
    };
    let ttft = bill.meter.started.elapsed();
    let model = bill.meter.model.clone();
    // The answer does not wait for the ledger: the charge is settled right after, by a task of
    // its own (the reservation already bounds what the request can cost), unless the ledger
    // is that far behind (`settle_slot`).
    let slot = bill.meter.svc.settle_slot().await;
    let tasks = bill.meter.svc.tasks.clone();
    tasks.spawn_in_current_span(async move {
        bill.settle(tokens, outcome, Some(ttft)).await;
        drop(slot);
    });
    let bytes = match (format, parsed) {
        // The client speaks the vendor's format: the answer as the vendor wrote it.
        _ if native => bytes,
        (Format::Anthropic, Some(value)) => {
            Bytes::from(crate::vendor::anthropic::response_from_openai(&value, &model).to_string())
        }
        (Format::Gemini { .. }, Some(value)) => {
            Bytes::from(crate::vendor::gemini::response_from_openai(&value, &model).to_string())
        }
        (Format::Responses, Some(value)) => {
            let (request, keep) = match responses {
                Some(echo) => (echo.request, echo.keep),
                None => (&Value::Null, None),
            };
            let response =
                crate::vendor::openai::responses::response_from_openai(&value, request, &model);
            let bytes = Bytes::from(response.to_string());
            if let Some(keep) = keep {
                keep(response).await;
            }
            bytes
        }
        (Format::OpenAi | Format::Events, Some(value)) if !adapter.speaks_pivot() => {
            Bytes::from(value.to_string())
        }
        _ => bytes,
    };
    Ok(Reply::whole(
        status,
        HeaderValue::from_static("application/json"),
        bytes,
    ))
}
