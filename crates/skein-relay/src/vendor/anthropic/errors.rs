//! Anthropic's error shape (`{"type": "error", "error": {"type", "message"}}`): what its
//! errors mean for routing, their message in the pivot's shape, and Skein's errors as
//! Anthropic's SDKs read them.

use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiError;
use skein_core::i18n::Lang;

use crate::vendor::{Attempt, classify, error_object, openai};

/// An Anthropic error body of `type` with `message`.
pub fn error_value(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// What an Anthropic error answer means for routing: Anthropic answers an unpaid account with
/// a 400 whose message starts by saying so.
pub fn classify_answer(status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
    let error = error_object(&body);
    let out_of_credit = status == 402
        || (status == 400
            && error["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Your credit balance is too low")));
    classify(status, retry_after, body, out_of_credit)
}

/// An Anthropic error body in OpenAI's shape, keeping its message and type.
pub fn to_openai(body: Bytes) -> Bytes {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("The upstream refused the request.");
    let kind = v["error"]["type"]
        .as_str()
        .unwrap_or("invalid_request_error");
    openai::errors::error_body(message, kind)
}

/// An upstream's refusal, already in OpenAI's shape, as an Anthropic client reads it.
pub fn refusal_from_openai(openai_body: &[u8]) -> Bytes {
    let upstream: Value = serde_json::from_slice(openai_body).unwrap_or_default();
    let message = upstream["error"]["message"]
        .as_str()
        .unwrap_or("The upstream refused the request.");
    Bytes::from(error_value("invalid_request_error", message).to_string())
}

/// A Skein error (the gateway's or a handler's) as Anthropic's SDKs read it: the status picks
/// the `type`.
pub fn api_error(error: &ApiError, lang: Lang) -> Value {
    let kind = match error.status().as_u16() {
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 | 503 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    };
    error_value(kind, error.message(lang))
}
