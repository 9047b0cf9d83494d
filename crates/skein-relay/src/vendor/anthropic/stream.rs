//! Anthropic streams ⇄ pivot chunks: OpenAI chunks in, Anthropic's `message_start` …
//! `message_stop` events out (client side), and Anthropic's events in, OpenAI chunks out
//! (upstream side).

use serde_json::{Map, Value, json};

use super::response::{chat_id, finish_reason, message_id, stop_reason, usage, usage_to_openai};
use crate::vendor::pivot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thinking,
    Text,
    Tool,
}

/// Turns a stream of OpenAI chunks into Anthropic stream events.
pub struct StreamConverter {
    model: String,
    started: bool,
    index: i64,
    open: Open,
    stop: &'static str,
    usage: Value,
}

impl StreamConverter {
    /// A converter for a stream answering `model`.
    pub fn new(model: &str) -> Self {
        StreamConverter {
            model: model.to_string(),
            started: false,
            index: -1,
            open: Open::None,
            stop: "end_turn",
            usage: json!({"output_tokens": 0}),
        }
    }

    fn event(kind: &str, data: Value) -> String {
        format!("event: {kind}\ndata: {data}\n\n")
    }

    fn close_block(&mut self, out: &mut String) {
        if self.open != Open::None {
            out.push_str(&Self::event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.index}),
            ));
            self.open = Open::None;
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut String) {
        if !self.started {
            self.started = true;
            let message = json!({"id": message_id(chunk["id"].as_str().unwrap_or("")), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}});
            out.push_str(&Self::event(
                "message_start",
                json!({"type": "message_start", "message": message}),
            ));
        }
    }

    /// The events for one OpenAI chunk.
    pub fn chunk(&mut self, chunk: &Value) -> String {
        let mut out = String::new();
        self.start(chunk, &mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(u);
        }
        for choice in chunk["choices"].as_array().into_iter().flatten() {
            let delta = &choice["delta"];
            // Reasoning (DeepSeek's `reasoning_content`, Gemini's thoughts) becomes a thinking
            // block; it has no signature, as it was not made by Anthropic.
            if let Some(thinking) = delta["reasoning_content"]
                .as_str()
                .filter(|t| !t.is_empty())
            {
                if self.open != Open::Thinking {
                    self.close_block(&mut out);
                    self.index += 1;
                    self.open = Open::Thinking;
                    out.push_str(&Self::event(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": self.index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
                    ));
                }
                out.push_str(&Self::event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": self.index,
                    "delta": {"type": "thinking_delta", "thinking": thinking}}),
                ));
            }
            if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                if self.open != Open::Text {
                    self.close_block(&mut out);
                    self.index += 1;
                    self.open = Open::Text;
                    out.push_str(&Self::event(
                        "content_block_start",
                        json!({"type": "content_block_start", "index": self.index,
                        "content_block": {"type": "text", "text": ""}}),
                    ));
                }
                out.push_str(&Self::event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": self.index,
                    "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                if call.get("id").is_some_and(|id| id.is_string()) {
                    self.close_block(&mut out);
                    self.index += 1;
                    self.open = Open::Tool;
                    out.push_str(&Self::event("content_block_start", json!({"type": "content_block_start", "index": self.index,
                        "content_block": {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": {}}})));
                }
                if let Some(args) = call["function"]["arguments"]
                    .as_str()
                    .filter(|a| !a.is_empty())
                {
                    out.push_str(&Self::event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": self.index,
                        "delta": {"type": "input_json_delta", "partial_json": args}}),
                    ));
                }
            }
            if let Some(finish) = choice["finish_reason"].as_str() {
                self.stop = stop_reason(finish);
            }
        }
        out
    }

    /// The closing events once the upstream is done.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        if !self.started {
            self.start(&json!({}), &mut out);
        }
        self.close_block(&mut out);
        out.push_str(&Self::event(
            "message_delta",
            json!({"type": "message_delta",
            "delta": {"stop_reason": self.stop, "stop_sequence": null}, "usage": self.usage}),
        ));
        out.push_str(&Self::event(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
        out
    }

    /// An error event, for an upstream that broke off.
    pub fn error(message: &str) -> String {
        Self::event(
            "error",
            json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        )
    }
}

/// Turns Anthropic stream events into OpenAI chunks: `message_start` gives the id and the
/// prompt's usage, block deltas become content, reasoning and tool-call argument deltas,
/// `message_delta` the finish reason and output tokens, `message_stop` the usage chunk.
pub struct UpstreamStream {
    id: String,
    model: String,
    created: i64,
    usage: Map<String, Value>,
    /// Which pivot tool-call index each Anthropic block index is, for `input_json_delta`.
    tool_of_block: std::collections::HashMap<i64, i64>,
    tools: i64,
}

impl Default for UpstreamStream {
    fn default() -> Self {
        UpstreamStream {
            id: "chatcmpl-".into(),
            model: String::new(),
            created: pivot::now_secs(),
            usage: Map::new(),
            tool_of_block: Default::default(),
            tools: 0,
        }
    }
}

impl UpstreamStream {
    fn chunk(&self, delta: Value, finish: Value) -> Value {
        pivot::openai_chunk(&self.id, &self.model, self.created, delta, finish)
    }

    /// The OpenAI chunks for one Anthropic event's data, `[DONE]` as `None` last; an `error`
    /// event is `Err` with its message (the stream broke).
    pub fn event(&mut self, data: &Value) -> Result<Vec<Option<Value>>, String> {
        let mut out = Vec::new();
        match data["type"].as_str().unwrap_or("") {
            "message_start" => {
                let message = &data["message"];
                self.id = chat_id(message["id"].as_str().unwrap_or(""));
                self.model = message["model"].as_str().unwrap_or("").to_string();
                if let Some(usage) = message["usage"].as_object() {
                    self.usage.extend(usage.clone());
                }
                out.push(Some(
                    self.chunk(json!({"role": "assistant", "content": ""}), Value::Null),
                ));
            }
            "content_block_start" => {
                let block = &data["content_block"];
                let index = data["index"].as_i64().unwrap_or(0);
                match block["type"].as_str() {
                    Some("tool_use") => {
                        let n = self.tools;
                        self.tools += 1;
                        self.tool_of_block.insert(index, n);
                        out.push(Some(self.chunk(json!({"tool_calls": [{"index": n, "id": block["id"], "type": "function",
                            "function": {"name": block["name"], "arguments": ""}}]}), Value::Null)));
                    }
                    Some("text") => {
                        if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(Some(self.chunk(json!({"content": t}), Value::Null)));
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = &data["delta"];
                let index = data["index"].as_i64().unwrap_or(0);
                match delta["type"].as_str() {
                    Some("text_delta") => out.push(Some(
                        self.chunk(json!({"content": delta["text"]}), Value::Null),
                    )),
                    Some("thinking_delta") => out.push(Some(
                        self.chunk(json!({"reasoning_content": delta["thinking"]}), Value::Null),
                    )),
                    Some("input_json_delta") => {
                        let n = self.tool_of_block.get(&index).copied().unwrap_or(0);
                        out.push(Some(self.chunk(
                            json!({"tool_calls": [{"index": n,
                            "function": {"arguments": delta["partial_json"]}}]}),
                            Value::Null,
                        )));
                    }
                    // Signatures and citations have no place in the pivot format.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = data["usage"].as_object() {
                    // message_delta's counts are cumulative: they replace earlier ones.
                    self.usage.extend(usage.clone());
                }
                if let Some(stop) = data["delta"]["stop_reason"].as_str() {
                    out.push(Some(self.chunk(json!({}), json!(finish_reason(stop)))));
                }
            }
            "message_stop" => {
                let usage = usage_to_openai(&Value::Object(self.usage.clone()));
                out.push(Some(pivot::openai_usage_chunk(
                    &self.id,
                    &self.model,
                    self.created,
                    usage,
                )));
                out.push(None);
            }
            "error" => {
                return Err(data["error"]["message"]
                    .as_str()
                    .unwrap_or("the upstream stream failed")
                    .to_string());
            }
            // `ping` and event types added later carry nothing the pivot needs.
            _ => {}
        }
        Ok(out)
    }
}
