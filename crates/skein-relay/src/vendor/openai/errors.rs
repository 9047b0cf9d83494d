//! OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`), which OpenAI's
//! SDKs parse and the pivot's conversions read.

use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::ApiError;
use skein_core::i18n::Lang;

/// An OpenAI error with `message`, `type` and `code`.
pub fn error_value(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// An OpenAI-shaped error body with `message` and `type`.
pub fn error_body(message: &str, kind: &str) -> Bytes {
    Bytes::from(error_value(message, kind, None).to_string())
}

/// The error event that ends an OpenAI stream whose upstream broke off.
pub fn stream_broke() -> Value {
    error_value(
        "The upstream stream broke off.",
        "server_error",
        Some("upstream_error"),
    )
}

/// A Skein error (the gateway's or a handler's) as OpenAI's SDKs read it: the status picks
/// the `type`, Skein's code goes in `code`, and the request field it is about (if any) in
/// `param`, where OpenAI names the offending parameter.
pub fn api_error(error: &ApiError, lang: Lang) -> Value {
    let kind = match error.status().as_u16() {
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    };
    let mut value = error_value(error.message(lang), kind, Some(error.code()));
    if let Some(field) = error
        .details()
        .and_then(|d| d.get("field"))
        .and_then(Value::as_str)
    {
        value["error"]["param"] = json!(field);
    }
    value
}
