//! Google's error shape (`{"error": {"code", "message", "status"}}`, sometimes a one-item
//! array): what its errors mean for routing, their message in the pivot's shape, and Skein's
//! errors as Gemini's SDKs read them.

use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiError;
use skein_core::i18n::Lang;

use crate::vendor::{Attempt, KEY_REJECTED, classify, error_object, openai};

/// A Google error body with HTTP `code`, `message` and the RPC `status`.
pub fn error_value(code: u16, message: &str, status: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// What a Gemini error answer means for routing. Google answers a bad key with 400 and reason
/// `API_KEY_INVALID`, and an account that must enable billing with 400
/// `FAILED_PRECONDITION`: neither request will work on this channel.
pub fn classify_answer(status: u16, retry_after: Option<&str>, body: Bytes) -> Attempt {
    let error = error_object(&body);
    let bad_key = status == 400
        && error["details"].as_array().is_some_and(|d| {
            d.iter()
                .any(|i| i["reason"].as_str() == Some("API_KEY_INVALID"))
        });
    if bad_key {
        return Attempt::Dead(format!("upstream {status}: {KEY_REJECTED}"));
    }
    let out_of_credit = status == 400 && error["status"].as_str() == Some("FAILED_PRECONDITION");
    classify(status, retry_after, body, out_of_credit)
}

/// A Gemini error body in OpenAI's shape, keeping its message.
pub fn to_openai(body: Bytes) -> Bytes {
    let message = error_object(&body)["message"]
        .as_str()
        .unwrap_or("The upstream refused the request.")
        .to_string();
    openai::errors::error_body(&message, "invalid_request_error")
}

/// An upstream's refusal, already in OpenAI's shape, as a Gemini client reads it.
pub fn refusal_from_openai(status: u16, openai_body: &[u8]) -> Bytes {
    let upstream: Value = serde_json::from_slice(openai_body).unwrap_or_default();
    let message = upstream["error"]["message"]
        .as_str()
        .unwrap_or("The upstream refused the request.");
    Bytes::from(error_value(status, message, "INVALID_ARGUMENT").to_string())
}

/// The error item that ends a Gemini stream whose upstream broke off.
pub fn stream_broke() -> Value {
    error_value(502, "The upstream stream broke off.", "UNAVAILABLE")
}

/// A Skein error (the gateway's or a handler's) as Gemini's SDKs read it: the status picks
/// the RPC `status`.
pub fn api_error(error: &ApiError, lang: Lang) -> Value {
    let status = error.status().as_u16();
    let rpc = match status {
        401 => "UNAUTHENTICATED",
        402 | 403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    };
    error_value(status, error.message(lang), rpc)
}
