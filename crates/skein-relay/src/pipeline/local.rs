//! `/v1/embeddings` for the built-in model ([`skein_embed::MODEL_NAME`]): computed in this
//! process in OpenAI's answer shape, with no channel, no upstream and no charge (it costs the
//! instance microseconds a text).

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use skein_core::{ApiError, ApiResult};
use skein_embed::StaticModel;

use super::Reply;
use super::calls::Answer;
use crate::errors;

/// The most inputs one request may carry (OpenAI's own limit).
const MAX_INPUTS: usize = 2048;

/// Embeds the request's `input` (a string or an array of strings) with `model`.
pub(crate) async fn embeddings(model: Arc<StaticModel>, request: &Value) -> ApiResult<Answer> {
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) if !items.is_empty() && items.len() <= MAX_INPUTS => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                errors::invalid_input(
                    "input",
                    "must be text for the built-in model skein-local-embed (token arrays are not accepted).",
                    "对内置模型 skein-local-embed 必须是文本（不接受 token 数组）。",
                )
            })?,
        _ => {
            return Err(errors::invalid_input(
                "input",
                "must be a string or an array of 1 to 2048 strings.",
                "必须是字符串，或 1 到 2048 个字符串的数组。",
            ));
        }
    };
    if let Some(d) = request.get("dimensions").and_then(Value::as_u64)
        && usize::try_from(d).ok() != Some(model.dimensions())
    {
        return Err(errors::invalid_input(
            "dimensions",
            &format!(
                "must be {} for the built-in model skein-local-embed (or left out).",
                model.dimensions()
            ),
            &format!(
                "对内置模型 skein-local-embed 必须为 {}（或不填）。",
                model.dimensions()
            ),
        ));
    }
    let base64 = request["encoding_format"] == "base64";
    let (vectors, tokens) = tokio::task::spawn_blocking(move || {
        let tokens: usize = inputs.iter().map(|t| model.count_tokens(t)).sum();
        (model.embed_all(&inputs), tokens)
    })
    .await
    .map_err(ApiError::internal)?;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": skein_embed::MODEL_NAME,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    Ok(Answer::Replied(Reply::whole(
        StatusCode::OK,
        HeaderValue::from_static("application/json"),
        Bytes::from(bytes),
    )))
}
