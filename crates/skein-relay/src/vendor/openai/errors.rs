//! OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`), which OpenAI's
//! SDKs parse and the pivot's conversions read.

use bytes::Bytes;
use serde_json::json;

/// An OpenAI-shaped error body with `message` and `type`.
pub fn error_body(message: &str, kind: &str) -> Bytes {
    Bytes::from(
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            .to_string(),
    )
}
