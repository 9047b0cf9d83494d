//! `POST /v1/messages/count_tokens` (Anthropic): how many input tokens a Messages request
//! would use — an **estimate**, counted without calling an upstream with OpenAI's o200k
//! tokenizer (Claude's own differs by some percent), plus a flat amount per image or
//! document. It is free, so it has a limit of its own per key ([`PER_MINUTE`], like
//! Anthropic's own rate limit on it), and a large request is counted on the blocking pool: a
//! free route must not be a way to spend the server's CPU.

use std::sync::Arc;

use axum::extract::State;
use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::auth::ApiKeyCaller;
use skein_core::extract::ApiJson;
use skein_core::{ApiError, ApiResult};

use crate::RelayService;
use crate::errors;
use crate::pipeline::{input, plan};

/// What one image or document block is counted as (Anthropic's ~1,600 tokens for an image of
/// about 1.15 megapixels, the largest it keeps unscaled).
const TOKENS_PER_ATTACHMENT: i64 = 1_600;
/// Added per message for its role and framing.
const TOKENS_PER_MESSAGE: i64 = 4;
/// Counts one API key may ask for per minute.
pub const PER_MINUTE: u32 = 100;

/// Answers `{"input_tokens": n}` for a Messages request, without calling an upstream.
pub(crate) async fn count_tokens(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    body: Bytes,
) -> ApiResult<ApiJson<Value>> {
    let request = input::parse_json(&body)?;
    let model = request["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing_model", "Say which model to use.", "请指定模型。")
        })?;
    if !request["messages"].is_array() {
        return Err(ApiError::bad_request(
            "missing_messages",
            "messages must be an array.",
            "messages 必须是数组。",
        ));
    }
    // The same model rules as the relayed routes, without a price: counting is free.
    if !key.allows_model(model) {
        return Err(errors::model_not_allowed(model));
    }
    if svc.table().candidates(&key.group, model).is_empty() {
        return Err(errors::model_not_found(model));
    }
    let bucket = format!("count_tokens:key:{}", key.key_id);
    let quota = skein_core::limit::Quota::per_minute(PER_MINUTE);
    if let Some(wait) = plan::limited(&svc, &bucket, quota, 1).await {
        return Err(errors::count_tokens_limited(PER_MINUTE, wait));
    }
    let tokens = if body.len() > crate::estimate::BLOCKING_ABOVE {
        tokio::task::spawn_blocking(move || input_tokens(&request))
            .await
            .map_err(ApiError::internal)?
    } else {
        input_tokens(&request)
    };
    Ok(ApiJson(json!({ "input_tokens": tokens })))
}

/// The estimate for a Messages request whose `messages` is an array.
fn input_tokens(request: &Value) -> i64 {
    let mut tokens = text_tokens(&request["system"]);
    for message in request["messages"].as_array().into_iter().flatten() {
        tokens = tokens
            .saturating_add(TOKENS_PER_MESSAGE)
            .saturating_add(text_tokens(&message["content"]));
    }
    if let Some(tools) = request.get("tools").filter(|t| t.is_array()) {
        // Tool definitions reach the model as their JSON.
        tokens = tokens.saturating_add(count(&tools.to_string()));
    }
    tokens
}

/// Estimated tokens of a content value: a string, or blocks of text, images, documents, tool
/// calls and tool results.
fn text_tokens(content: &Value) -> i64 {
    match content {
        Value::Null => 0,
        Value::String(text) => count(text),
        Value::Array(blocks) => blocks
            .iter()
            .map(|block| match block["type"].as_str() {
                Some("image" | "document") => TOKENS_PER_ATTACHMENT,
                Some("text") => text_tokens(&block["text"]),
                Some("tool_use") => count(&block["input"].to_string()),
                Some("tool_result") => text_tokens(&block["content"]),
                _ => count(&block.to_string()),
            })
            .fold(0i64, i64::saturating_add),
        other => count(&other.to_string()),
    }
}

fn count(text: &str) -> i64 {
    i64::try_from(skein_text::tokens::count_tokens(text)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_text_with_the_tokenizer_and_attachments_flat() {
        assert_eq!(text_tokens(&json!("hello world")), 2);
        let blocks = json!([{"type": "text", "text": "hello world"}, {"type": "image", "source": {"data": "x".repeat(100_000)}}]);
        // The image's data is not text: it counts as one attachment, however large.
        assert_eq!(text_tokens(&blocks), 2 + TOKENS_PER_ATTACHMENT);
        let zh = text_tokens(&json!("你好世界"));
        assert!((1..=4).contains(&zh), "{zh}");
    }
}
