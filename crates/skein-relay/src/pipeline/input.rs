//! Reading a request's fields: the JSON body, field errors, token estimates of inputs, and
//! the body sent upstream with its model mapped. Shared by every route and by in-process
//! callers, so each rule is written once.

use bytes::Bytes;
use serde_json::Value;
use skein_core::{ApiError, ApiResult};

use crate::proxy;

/// Parses a JSON body, or 400 `invalid_json`.
pub(crate) fn parse_json(body: &[u8]) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("The body is not valid JSON: {e}"),
            format!("请求体不是合法的 JSON：{e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The body must be a JSON object.",
            "请求体必须是 JSON 对象。",
        ));
    }
    Ok(value)
}

/// The `usage` object of a JSON answer, if it has one. Only that field is built; the rest is
/// skipped as it is read.
pub(crate) fn usage_in(bytes: &[u8]) -> Option<Value> {
    #[derive(serde::Deserialize)]
    struct UsageOnly {
        #[serde(default)]
        usage: Option<Value>,
    }
    serde_json::from_slice::<UsageOnly>(bytes)
        .ok()?
        .usage
        .filter(Value::is_object)
}

/// The tokens of an embeddings `input` or a completions `prompt`, counted with the o200k
/// tokenizer and the OpenAI-compatible safety factor (token arrays count exactly), or `None`
/// if it is not one of the shapes OpenAI accepts: a string, or a non-empty array of strings,
/// of token ids, or of non-empty token arrays. A large input is counted off the async
/// workers' hot loop (`block_in_place`), so one megabyte of text does not stall the others.
pub(crate) fn input_tokens(input: &Value) -> Option<i64> {
    let large = proxy::json_len(input) > crate::estimate::BLOCKING_ABOVE;
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if large && multi_thread {
        tokio::task::block_in_place(|| counted_input(input))
    } else {
        counted_input(input)
    }
}

fn text_tokens(text: &str) -> i64 {
    crate::estimate::scaled(
        crate::estimate::tokens(text),
        crate::estimate::safety_permille(crate::channels::ChannelKind::OpenAi),
    )
}

fn counted_input(input: &Value) -> Option<i64> {
    match input {
        Value::String(text) => Some(text_tokens(text)),
        Value::Array(items) if !items.is_empty() => {
            if items.iter().all(Value::is_i64) {
                return i64::try_from(items.len()).ok();
            }
            items.iter().try_fold(0i64, |sum, item| {
                let tokens = match item {
                    Value::String(text) => text_tokens(text),
                    Value::Array(ids) if !ids.is_empty() && ids.iter().all(Value::is_i64) => {
                        i64::try_from(ids.len()).ok()?
                    }
                    _ => return None,
                };
                Some(sum.saturating_add(tokens))
            })
        }
        _ => None,
    }
}

/// `request` as bytes with its model set to `upstream_model`.
pub(crate) fn with_model(request: &Value, upstream_model: &str) -> Bytes {
    let mut request = request.clone();
    if let Some(obj) = request.as_object_mut() {
        obj.insert("model".into(), Value::String(upstream_model.to_string()));
    }
    Bytes::from(request.to_string())
}

#[cfg(test)]
mod tests {
    use super::input_tokens;
    use serde_json::json;

    #[test]
    fn input_shapes() {
        assert_eq!(input_tokens(&json!([1, 2, 3])), Some(3));
        assert_eq!(input_tokens(&json!([[1, 2], [3]])), Some(3));
        // Text counts with the tokenizer, plus a tenth for other vendors' tokenizers: one-letter
        // words are a token each (bytes / 3 would say 6,667).
        // (The tokenizer sees text in slices, which may add a token per slice.)
        let counted = input_tokens(&json!("a ".repeat(10_000))).unwrap_or(0);
        assert!((11_000..=11_050).contains(&counted), "{counted}");
        // Short texts are held at their length in bytes (an upper bound), plus the tenth.
        assert_eq!(input_tokens(&json!(["hello", "hello"])), Some(12));
        for bad in [
            json!(null),
            json!(5),
            json!([]),
            json!([{}]),
            json!([[]]),
            json!([["a"]]),
        ] {
            assert_eq!(input_tokens(&bad), None, "{bad}");
        }
    }
}
