//! Ollama's native API (docs/api.md of github.com/ollama/ollama): `POST /api/chat`, answered
//! whole or as newline-delimited JSON, and `GET /api/tags` for the models pulled. Its wire
//! format differs from OpenAI's where it matters: sampling settings go under `options`
//! (`num_predict` is the output limit), images are base64 strings beside the text, tool-call
//! arguments are JSON objects rather than text, reasoning is `thinking` (switched by `think`),
//! and the usage is `prompt_eval_count` / `eval_count` on the last line.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use skein_core::ApiResult;

use super::pivot;
use super::{StreamDecoder, Upstream};
use crate::channels::{ChannelKind, LiveChannel};
use crate::errors;

const VENDOR: &str = "Ollama";

/// The Ollama adapter.
pub struct Ollama;

/// Pivot sampling fields and their names under Ollama's `options`.
const OPTIONS: &[(&str, &str)] = &[
    ("max_tokens", "num_predict"),
    ("max_completion_tokens", "num_predict"),
    ("temperature", "temperature"),
    ("top_p", "top_p"),
    ("top_k", "top_k"),
    ("min_p", "min_p"),
    ("seed", "seed"),
    ("stop", "stop"),
    ("presence_penalty", "presence_penalty"),
    ("frequency_penalty", "frequency_penalty"),
    ("repetition_penalty", "repeat_penalty"),
];

/// Ollama's `/api/chat` body for a pivot request.
pub fn request_body(req: &Value) -> ApiResult<Value> {
    let carry = |field: &str| errors::cannot_carry(field, VENDOR);
    let mut body = Map::new();
    let mut options = Map::new();
    for (field, value) in req.as_object().into_iter().flatten() {
        if let Some((_, name)) = OPTIONS.iter().find(|(f, _)| *f == field.as_str()) {
            if !value.is_null() {
                let value = match (*name, value) {
                    ("stop", Value::String(s)) => json!([s]),
                    _ => value.clone(),
                };
                options.insert((*name).into(), value);
            }
            continue;
        }
        match field.as_str() {
            "model" | "stream" => {
                body.insert(field.clone(), value.clone());
            }
            // Ollama always reports its counts; the end-user id changes nothing it does.
            "messages" | "stream_options" | "user" => {}
            "n" if value.as_i64().unwrap_or(1) == 1 => {}
            "parallel_tool_calls" if value.as_bool() != Some(false) => {}
            "tools" => {
                body.insert("tools".into(), value.clone());
            }
            "tool_choice" => match value {
                Value::Null => {}
                Value::String(s) if s == "auto" || s == "none" => {}
                _ => return Err(carry("tool_choice")),
            },
            "response_format" => match value["type"].as_str() {
                Some("text") => {}
                Some("json_object") => {
                    body.insert("format".into(), json!("json"));
                }
                Some("json_schema") => {
                    body.insert("format".into(), value["json_schema"]["schema"].clone());
                }
                _ => return Err(carry("response_format")),
            },
            "reasoning_effort" => {
                if let Some(effort) = value.as_str() {
                    let budget = pivot::budget_for_effort(effort)
                        .ok_or_else(|| carry("reasoning_effort"))?;
                    body.insert("think".into(), Value::Bool(budget > 0));
                }
            }
            other => return Err(carry(other)),
        }
    }
    if req["tool_choice"] == "none" {
        body.remove("tools");
    }
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    body.insert("messages".into(), Value::Array(messages(&req["messages"])?));
    body.entry("stream").or_insert(Value::Bool(false));
    Ok(Value::Object(body))
}

/// The pivot's messages in Ollama's terms.
fn messages(pivot_messages: &Value) -> ApiResult<Vec<Value>> {
    let list = pivot_messages.as_array().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(list.len());
    for m in &list {
        let role = m["role"].as_str().unwrap_or("user");
        let role = if role == "developer" { "system" } else { role };
        let mut message = Map::new();
        message.insert("role".into(), json!(role));
        let (text, images) = content(&m["content"])?;
        message.insert("content".into(), json!(text));
        if !images.is_empty() {
            message.insert("images".into(), json!(images));
        }
        if let Some(thinking) = m["reasoning_content"].as_str() {
            message.insert("thinking".into(), json!(thinking));
        }
        if let Some(calls) = m["tool_calls"].as_array() {
            let calls: Vec<Value> = calls
                .iter()
                .map(|c| {
                    let arguments = match &c["function"]["arguments"] {
                        Value::String(s) => serde_json::from_str(s).unwrap_or(json!({})),
                        other => other.clone(),
                    };
                    json!({"function": {"name": c["function"]["name"], "arguments": arguments}})
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        if role == "tool" {
            // Ollama names the tool a result answers; the pivot names the call.
            let id = m["tool_call_id"].as_str().unwrap_or("");
            let name = list.iter().find_map(|earlier| {
                earlier["tool_calls"]
                    .as_array()?
                    .iter()
                    .find(|c| c["id"] == id)
                    .and_then(|c| c["function"]["name"].as_str())
            });
            if let Some(name) = name {
                message.insert("tool_name".into(), json!(name));
            }
        }
        out.push(Value::Object(message));
    }
    Ok(out)
}

/// A pivot content's text and its images as base64.
fn content(content: &Value) -> ApiResult<(String, Vec<String>)> {
    let Some(parts) = content.as_array() else {
        return Ok((content.as_str().unwrap_or("").to_string(), Vec::new()));
    };
    let mut text = Vec::new();
    let mut images = Vec::new();
    for part in parts {
        match part["type"].as_str() {
            Some("text") => text.push(part["text"].as_str().unwrap_or("").to_string()),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().unwrap_or("");
                let (_, data) = pivot::parse_data_url(url)
                    .ok_or_else(|| errors::cannot_carry("image_url", VENDOR))?;
                images.push(data.to_string());
            }
            _ => return Err(errors::cannot_carry("messages[].content", VENDOR)),
        }
    }
    Ok((text.join("\n"), images))
}

/// Ollama's tool calls as the pivot's (arguments as JSON text, ids made up by position:
/// Ollama gives none).
fn tool_calls(calls: &[Value], stream: bool) -> Vec<Value> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let arguments = match &c["function"]["arguments"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut call = json!({"id": format!("call_{i}"), "type": "function",
                "function": {"name": c["function"]["name"], "arguments": arguments}});
            if stream {
                call["index"] = json!(i);
            }
            call
        })
        .collect()
}

fn finish_reason(line: &Value, called: bool) -> &'static str {
    if called {
        "tool_calls"
    } else if line["done_reason"] == "length" {
        "length"
    } else {
        "stop"
    }
}

fn usage(line: &Value) -> Value {
    pivot::openai_usage(
        line["prompt_eval_count"].as_i64().unwrap_or(0),
        line["eval_count"].as_i64().unwrap_or(0),
        0,
        0,
    )
}

impl Upstream for Ollama {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Ollama
    }

    fn default_base_url(&self) -> Option<&'static str> {
        Some("http://localhost:11434")
    }

    fn tokenizer_safety_permille(&self) -> i64 {
        // Local models bring their own tokenizers (Llama, Qwen, Gemma...).
        1_200
    }

    fn inlines_images(&self) -> bool {
        true
    }

    fn request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
        pivot: &Value,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let body = request_body(pivot)?;
        let mut req = http
            .post(format!("{}/api/chat", channel.base_url))
            .header("content-type", "application/json")
            .body(body.to_string());
        // Ollama itself takes no key; one set is for a proxy in front of it (or Ollama's
        // cloud), which takes it as a bearer token.
        if !channel.key().is_empty() {
            req = req.bearer_auth(channel.key());
        }
        Ok(req)
    }

    fn response(&self, body: Value, model: &str) -> Value {
        let message = &body["message"];
        let calls = message["tool_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut out =
            json!({"role": "assistant", "content": message["content"].as_str().unwrap_or("")});
        if let Some(thinking) = message["thinking"].as_str().filter(|t| !t.is_empty()) {
            out["reasoning_content"] = json!(thinking);
        }
        if !calls.is_empty() {
            out["tool_calls"] = Value::Array(tool_calls(&calls, false));
        }
        let created = pivot::now_secs();
        json!({"id": format!("chatcmpl-ollama-{created}"), "object": "chat.completion", "created": created,
            "model": model, "choices": [{"index": 0, "message": out, "logprobs": null,
            "finish_reason": finish_reason(&body, !calls.is_empty())}], "usage": usage(&body)})
    }

    fn decoder(&self, model: &str) -> Box<dyn StreamDecoder> {
        Box::new(Decoder {
            model: model.to_string(),
            created: pivot::now_secs(),
            started: false,
            calls: 0,
        })
    }

    fn error_to_openai(&self, body: Bytes) -> Bytes {
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = v["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        Bytes::from(
            super::openai::errors::error_value(&message, "invalid_request_error", None).to_string(),
        )
    }

    fn models_request(
        &self,
        http: &reqwest::Client,
        channel: &LiveChannel,
    ) -> ApiResult<reqwest::RequestBuilder> {
        let req = http.get(format!("{}/api/tags", channel.base_url));
        Ok(if channel.key().is_empty() {
            req
        } else {
            req.bearer_auth(channel.key())
        })
    }

    fn models(&self, body: &Value) -> Vec<String> {
        super::openai::ids(&body["models"], "name")
    }
}

/// Pulls `model` onto the channel's Ollama server (`POST /api/pull`, not streamed, so the
/// answer comes once the model is there): Ollama's final status, or why it failed.
pub async fn pull(
    http: &reqwest::Client,
    channel: &LiveChannel,
    model: &str,
) -> Result<String, String> {
    let mut req = http
        .post(format!("{}/api/pull", channel.base_url))
        .json(&json!({"model": model, "stream": false}))
        // Large models take a while to download; the wait is bounded all the same.
        .timeout(std::time::Duration::from_secs(3600));
    if !channel.key().is_empty() {
        req = req.bearer_auth(channel.key());
    }
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            "Ollama timed out".to_string()
        } else {
            "Ollama unreachable".to_string()
        }
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    match body["status"].as_str() {
        Some(done) if status.is_success() => Ok(done.to_string()),
        _ => Err(format!(
            "{} {}",
            status.as_u16(),
            body["error"].as_str().unwrap_or("no status")
        )),
    }
}

/// Ollama's NDJSON lines as pivot chunks.
struct Decoder {
    model: String,
    created: i64,
    started: bool,
    calls: usize,
}

impl Decoder {
    fn chunk(&self, delta: Value, finish: Value) -> Bytes {
        let id = format!("chatcmpl-ollama-{}", self.created);
        pivot::data_event(&pivot::openai_chunk(
            &id,
            &self.model,
            self.created,
            delta,
            finish,
        ))
    }
}

impl StreamDecoder for Decoder {
    fn event(&mut self, event: Bytes) -> Result<Vec<Bytes>, String> {
        let Ok(line) = serde_json::from_slice::<Value>(&event) else {
            return Ok(Vec::new());
        };
        if let Some(error) = line["error"].as_str() {
            return Err(error.to_string());
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), Value::Null));
        }
        let message = &line["message"];
        if let Some(thinking) = message["thinking"].as_str().filter(|t| !t.is_empty()) {
            out.push(self.chunk(json!({"reasoning_content": thinking}), Value::Null));
        }
        if let Some(text) = message["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(self.chunk(json!({"content": text}), Value::Null));
        }
        if let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty()) {
            // Ollama sends each call whole; numbered on from the calls already sent.
            let mut converted = tool_calls(calls, true);
            for call in &mut converted {
                let i = self.calls + call["index"].as_u64().unwrap_or(0) as usize;
                call["index"] = json!(i);
                call["id"] = json!(format!("call_{i}"));
            }
            self.calls += calls.len();
            out.push(self.chunk(json!({"tool_calls": converted}), Value::Null));
        }
        if line["done"].as_bool() == Some(true) {
            out.push(self.chunk(json!({}), json!(finish_reason(&line, self.calls > 0))));
            let id = format!("chatcmpl-ollama-{}", self.created);
            out.push(pivot::data_event(&pivot::openai_usage_chunk(
                &id,
                &self.model,
                self.created,
                usage(&line),
            )));
            out.push(pivot::done_event());
        }
        Ok(out)
    }

    fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }

    fn ndjson(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pivot_request_becomes_ollamas_chat() {
        let pivot = json!({"model": "qwen3", "stream": true, "max_tokens": 20, "temperature": 0.2,
            "stop": "END", "reasoning_effort": "high", "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "reasoning_content": "hmm",
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]});
        let body = request_body(&pivot).unwrap_or_default();
        assert_eq!(body["think"], true);
        assert_eq!(
            body["options"],
            json!({"num_predict": 20, "temperature": 0.2, "stop": ["END"]})
        );
        assert_eq!(body["messages"][1]["images"], json!(["AAAA"]));
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris"})
        );
        assert_eq!(body["messages"][2]["thinking"], "hmm");
        assert_eq!(body["messages"][3]["tool_name"], "weather");
        let refused = request_body(&json!({"model": "m", "messages": [], "logprobs": true}));
        assert!(refused.is_err());
    }

    #[test]
    fn ndjson_lines_become_pivot_chunks_with_reasoning_and_usage() {
        let mut d = Ollama.decoder("m");
        let mut events = Vec::new();
        for line in [
            r#"{"model":"m","message":{"role":"assistant","content":"","thinking":"let me "},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}"#,
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":3}"#,
        ] {
            events.extend(d.event(Bytes::from(line)).unwrap_or_default());
        }
        let items: Vec<Value> = events.iter().filter_map(|e| pivot::event_json(e)).collect();
        assert_eq!(
            items[1]["choices"][0]["delta"]["reasoning_content"],
            "let me "
        );
        assert_eq!(items[2]["choices"][0]["delta"]["content"], "hi");
        assert_eq!(items[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(items[4]["usage"]["prompt_tokens"], 7);
        assert_eq!(items[4]["usage"]["completion_tokens"], 3);
        assert!(
            d.event(Bytes::from(r#"{"error":"model not found"}"#))
                .is_err()
        );
    }
}
