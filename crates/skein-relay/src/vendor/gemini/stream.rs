//! Gemini streams ⇄ pivot chunks: each OpenAI chunk becomes one `GenerateContentResponse`
//! item (client side), and Gemini's items become OpenAI chunks (upstream side).

use serde_json::{Value, json};

use super::response::{
    call_prefix, finish_reason, finish_to_openai, split_parts, usage_metadata, usage_to_openai,
};
use crate::vendor::pivot;

/// One OpenAI stream chunk as a Gemini stream item; `None` when it carries nothing a Gemini
/// client would see. Tool-call arguments arrive in pieces, so calls are sent whole when the
/// chunk that finishes them arrives (`pending` collects them).
pub fn chunk_from_openai(
    chunk: &Value,
    model: &str,
    pending: &mut Vec<(String, String)>,
) -> Option<Value> {
    let mut parts = Vec::new();
    let mut finish = None;
    for choice in chunk["choices"].as_array().into_iter().flatten() {
        let delta = &choice["delta"];
        if let Some(thought) = delta["reasoning_content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            parts.push(json!({"text": thought, "thought": true}));
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            parts.push(json!({"text": text}));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            if let Some(name) = call["function"]["name"].as_str() {
                pending.push((name.to_string(), String::new()));
            }
            if let (Some(args), Some(last)) =
                (call["function"]["arguments"].as_str(), pending.last_mut())
            {
                last.1.push_str(args);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(finish_reason(reason));
            for (name, args) in pending.drain(..) {
                let args: Value = serde_json::from_str(&args).unwrap_or(json!({}));
                parts.push(json!({"functionCall": {"name": name, "args": args}}));
            }
        }
    }
    let usage = chunk.get("usage").filter(|u| u.is_object());
    if parts.is_empty() && finish.is_none() && usage.is_none() {
        return None;
    }
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(reason) = finish {
        candidate["finishReason"] = json!(reason);
    }
    let mut item = json!({"candidates": [candidate], "modelVersion": model});
    if let Some(usage) = usage {
        item["usageMetadata"] = usage_metadata(usage);
    }
    Some(item)
}

/// Turns Gemini stream items into OpenAI chunks. Each item's `usageMetadata` is a running
/// total, so only the last one counts: it is sent as the usage chunk when the stream ends.
/// Function calls arrive whole, each as one tool-call delta carrying all its arguments.
pub struct UpstreamStream {
    id: String,
    model: String,
    created: i64,
    started: bool,
    calls: usize,
    call_prefix: String,
    usage: Option<Value>,
}

impl UpstreamStream {
    /// A decoder for a stream answering `model`.
    pub fn new(model: &str) -> Self {
        UpstreamStream {
            id: "chatcmpl-gemini".into(),
            model: model.to_string(),
            created: pivot::now_secs(),
            started: false,
            calls: 0,
            call_prefix: call_prefix(),
            usage: None,
        }
    }

    fn chunk(&self, delta: Value, finish: Value) -> Value {
        pivot::openai_chunk(&self.id, &self.model, self.created, delta, finish)
    }

    /// The OpenAI chunks for one Gemini stream item; an item that carries an `error` is `Err`.
    pub fn item(&mut self, item: &Value) -> Result<Vec<Value>, String> {
        if let Some(error) = item.get("error") {
            return Err(error["message"]
                .as_str()
                .unwrap_or("the upstream stream failed")
                .to_string());
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            if let Some(id) = item["responseId"].as_str() {
                self.id = format!("chatcmpl-{id}");
            }
            if let Some(version) = item["modelVersion"].as_str() {
                self.model = version.to_string();
            }
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        }
        if let Some(meta) = item.get("usageMetadata").filter(|m| m.is_object()) {
            self.usage = Some(usage_to_openai(meta));
        }
        let candidate = &item["candidates"][0];
        let (text, thoughts, calls) = split_parts(
            &candidate["content"]["parts"],
            self.calls,
            &self.call_prefix,
        );
        self.calls += calls.len();
        if !thoughts.is_empty() {
            out.push(self.chunk(json!({"reasoning_content": thoughts}), Value::Null));
        }
        if !text.is_empty() {
            out.push(self.chunk(json!({"content": text}), Value::Null));
        }
        if !calls.is_empty() {
            out.push(self.chunk(json!({"tool_calls": calls}), Value::Null));
        }
        let blocked = item["promptFeedback"]["blockReason"].is_string();
        if let Some(reason) = candidate["finishReason"].as_str() {
            out.push(self.chunk(json!({}), json!(finish_to_openai(reason, self.calls > 0))));
        } else if blocked {
            out.push(self.chunk(json!({}), json!("content_filter")));
        }
        Ok(out)
    }

    /// The usage chunk, once the stream has ended cleanly.
    pub fn finish(&mut self) -> Option<Value> {
        self.usage
            .take()
            .map(|usage| pivot::openai_usage_chunk(&self.id, &self.model, self.created, usage))
    }
}
