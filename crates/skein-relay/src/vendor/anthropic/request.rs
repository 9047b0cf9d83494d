//! Anthropic Messages API ⇄ OpenAI chat completions: requests, whole responses, and streams
//! (OpenAI chunks in, Anthropic's `message_start` … `message_stop` events out).

use serde_json::{Map, Value, json};
use skein_core::{ApiError, ApiResult};

use crate::vendor::pivot;

fn unsupported(what: &str) -> ApiError {
    ApiError::bad_request(
        "unsupported_content",
        format!("{what} cannot be carried to this model's upstream."),
        format!("{what} 无法转发到该模型的上游。"),
    )
}

/// An Anthropic `/v1/messages` request as an OpenAI chat-completions request.
pub fn request_to_openai(req: &Value) -> ApiResult<Value> {
    let mut out = Map::new();
    // Top-level fields the pivot has no place for are refused by name (an Anthropic channel
    // still gets them, passed through); `cache_control` inside blocks is a caching hint that
    // does not change the answer, and is left out for other upstreams.
    for (field, value) in req.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "model" | "max_tokens" | "messages" | "system" | "temperature" | "top_p" | "stream"
            | "stop_sequences" | "tools" | "tool_choice" | "top_k" => {}
            "metadata" => {
                if let Some(user) = value["user_id"].as_str() {
                    out.insert("user".into(), json!(user));
                }
            }
            "thinking" if value["type"] == "disabled" => {}
            // Carried as an effort; an Anthropic channel gets the exact budget, passed through.
            "thinking" if value["type"] == "enabled" => {
                let budget = value["budget_tokens"].as_i64().unwrap_or(0);
                out.insert(
                    "reasoning_effort".into(),
                    json!(pivot::effort_for_budget(budget)),
                );
            }
            "service_tier" if value == "auto" => {}
            _ => return Err(pivot::only_native(field, "Anthropic")),
        }
    }
    out.insert("model".into(), req["model"].clone());
    let max_tokens = req["max_tokens"]
        .as_i64()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_max_tokens",
                "max_tokens is required and must be positive.",
                "max_tokens 为必填项且必须为正数。",
            )
        })?;
    out.insert("max_tokens".into(), json!(max_tokens));
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
    ] {
        if let Some(v) = req.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = req.get("stop_sequences").filter(|v| v.is_array()) {
        out.insert("stop".into(), stop.clone());
    }
    if req.get("top_k").is_some_and(|v| !v.is_null()) {
        return Err(unsupported("top_k"));
    }

    let mut messages = Vec::new();
    match &req["system"] {
        Value::Null => {}
        Value::String(text) => messages.push(json!({"role": "system", "content": text})),
        Value::Array(blocks) => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            messages.push(json!({"role": "system", "content": text.join("\n\n")}));
        }
        _ => {
            return Err(ApiError::bad_request(
                "invalid_system",
                "system must be a string or text blocks.",
                "system 必须是字符串或文本块。",
            ));
        }
    }
    let Some(input) = req["messages"].as_array() else {
        return Err(ApiError::bad_request(
            "missing_messages",
            "messages must be an array.",
            "messages 必须是数组。",
        ));
    };
    for message in input {
        let role = message["role"].as_str().unwrap_or("");
        match (&message["content"], role) {
            (Value::String(text), "user" | "assistant") => {
                messages.push(json!({"role": role, "content": text}))
            }
            (Value::Array(blocks), "user") => user_blocks(blocks, &mut messages)?,
            (Value::Array(blocks), "assistant") => messages.push(assistant_blocks(blocks)?),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_message",
                    "Each message needs role user or assistant and string or block content.",
                    "每条消息的 role 须为 user 或 assistant，content 须为字符串或内容块。",
                ));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(tools) = req["tools"].as_array() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                if t.get("type").and_then(Value::as_str).is_some_and(|k| k != "custom") {
                    return Err(unsupported(&format!("The server tool {}", t["type"])));
                }
                Ok(json!({"type": "function", "function": {
                    "name": t["name"], "description": t.get("description").cloned().unwrap_or(Value::Null),
                    "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"}))}}))
            })
            .collect::<ApiResult<_>>()?;
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = req.get("tool_choice").filter(|v| v.is_object()) {
        let mapped = match choice["type"].as_str() {
            Some("auto") => json!("auto"),
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": choice["name"]}}),
            _ => return Err(unsupported("This tool_choice")),
        };
        out.insert("tool_choice".into(), mapped);
        if choice["disable_parallel_tool_use"].as_bool() == Some(true) {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(Value::Object(out))
}

fn image_url(block: &Value) -> ApiResult<Value> {
    let source = &block["source"];
    let url = match source["type"].as_str() {
        Some("base64") => format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str().unwrap_or("")
        ),
        Some("url") => source["url"].as_str().unwrap_or("").to_string(),
        _ => return Err(unsupported("This image source")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn user_blocks(blocks: &[Value], messages: &mut Vec<Value>) -> ApiResult<()> {
    let mut parts = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": block["text"]})),
            Some("image") => parts.push(image_url(block)?),
            Some("tool_result") => {
                let content = match &block["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items
                        .iter()
                        .filter_map(|i| i["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                let content = if block["is_error"].as_bool() == Some(true) {
                    format!("Error: {content}")
                } else {
                    content
                };
                messages.push(json!({"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}));
            }
            Some(other) => return Err(unsupported(&format!("A {other} block"))),
            None => return Err(unsupported("A block without a type")),
        }
    }
    if !parts.is_empty() {
        messages.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn assistant_blocks(blocks: &[Value]) -> ApiResult<Value> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()}})),
            // Earlier turns' reasoning belongs to the vendor that produced it; no other
            // upstream accepts it back, and it does not change what the next turn means.
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => return Err(unsupported(&format!("A {other} block"))),
            None => return Err(unsupported("A block without a type")),
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// OpenAI's `finish_reason` as Anthropic's `stop_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn usage(value: &Value) -> Value {
    let prompt = value["prompt_tokens"].as_i64().unwrap_or(0);
    let details = &value["prompt_tokens_details"];
    let cached = details["cached_tokens"].as_i64().unwrap_or(0);
    let written = details[crate::proxy::CACHE_WRITE].as_i64().unwrap_or(0)
        + details[crate::proxy::CACHE_WRITE_1H].as_i64().unwrap_or(0);
    json!({"input_tokens": prompt - cached - written, "output_tokens": value["completion_tokens"].as_i64().unwrap_or(0),
        "cache_read_input_tokens": cached, "cache_creation_input_tokens": written})
}

fn message_id(openai_id: &str) -> String {
    format!("msg_{}", openai_id.trim_start_matches("chatcmpl-"))
}

/// A whole OpenAI response as an Anthropic message.
pub fn response_from_openai(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    let mut content = Vec::new();
    if let Some(thinking) = choice["message"]["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": ""}));
    }
    if let Some(text) = choice["message"]["content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in choice["message"]["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let input: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                .unwrap_or(json!({}));
        content.push(json!({"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": input}));
    }
    json!({
        "id": message_id(resp["id"].as_str().unwrap_or("")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
        "stop_sequence": null,
        "usage": usage(&resp["usage"]),
    })
}

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

// ---------------------------------------------------------------------------------------------
// Upstream direction: the pivot (OpenAI chat) request to an Anthropic Messages request, and
// Anthropic's answers (whole and streamed) back to the pivot.

/// Output tokens asked for when the client sets no limit (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: i64 = 4096;

const UPSTREAM: &str = "anthropic";

fn carry(field: &str) -> ApiError {
    pivot::cannot_carry(field, UPSTREAM)
}

/// An OpenAI image part as an Anthropic image block (base64 from a `data:` URL, else by URL).
fn image_block(part: &Value, field: &str) -> ApiResult<Value> {
    let url = part["image_url"]["url"]
        .as_str()
        .ok_or_else(|| carry(&format!("{field}.image_url")))?;
    if let Some((mime, data)) = pivot::parse_data_url(url) {
        return Ok(
            json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}),
        );
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(carry(&format!("{field}.image_url.url")))
}

/// The content blocks of an OpenAI user or system message.
fn openai_content_blocks(content: &Value, field: &str) -> ApiResult<Vec<Value>> {
    match content {
        Value::String(text) => Ok(vec![json!({"type": "text", "text": text})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part["type"].as_str() {
                Some("text") => Ok(json!({"type": "text", "text": part["text"]})),
                Some("image_url") => image_block(part, &format!("{field}[{j}]")),
                _ => Err(carry(&format!("{field}[{j}].type"))),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err(carry(field)),
    }
}

fn push_turn(messages: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    // Anthropic wants user and assistant turns to alternate: consecutive turns of one role
    // (several tool results, say) become one turn.
    if let Some(last) = messages.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    messages.push(json!({"role": role, "content": blocks}));
}

/// An OpenAI chat-completions request (the pivot) as an Anthropic `/v1/messages` request.
/// Fields Anthropic cannot express are refused with a 400 naming them.
pub fn request_from_openai(req: &Value) -> ApiResult<Value> {
    let Some(fields) = req.as_object() else {
        return Err(carry("body"));
    };
    let mut out = Map::new();
    let mut metadata = Map::new();
    let mut parallel = true;
    for (field, value) in fields {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            // Handled below or by the adapter (routing, streaming, usage).
            "model"
            | "messages"
            | "stream"
            | "stream_options"
            | "tool_choice"
            | "parallel_tool_calls"
            | "tools" => {}
            "max_tokens" | "max_completion_tokens" => {
                out.insert("max_tokens".into(), value.clone());
            }
            "temperature" | "top_p" => {
                out.insert(field.clone(), value.clone());
            }
            "stop" => {
                let stops = match value {
                    Value::String(s) => json!([s]),
                    Value::Array(_) => value.clone(),
                    _ => return Err(carry("stop")),
                };
                out.insert("stop_sequences".into(), stops);
            }
            "user" => {
                metadata.insert("user_id".into(), value.clone());
            }
            "n" if value.as_i64() == Some(1) => {}
            "response_format" if value["type"] == "text" => {}
            "reasoning_effort" => {}
            _ => return Err(carry(field)),
        }
    }
    out.insert("model".into(), req["model"].clone());
    out.entry("max_tokens")
        .or_insert_with(|| json!(DEFAULT_MAX_TOKENS));
    if let Some(effort) = req["reasoning_effort"].as_str() {
        let budget = pivot::budget_for_effort(effort).ok_or_else(|| carry("reasoning_effort"))?;
        let max_tokens = out["max_tokens"].as_i64().unwrap_or(DEFAULT_MAX_TOKENS);
        // Anthropic thinks within max_tokens, at least 1,024 tokens of it.
        let budget = budget.min(max_tokens - 1);
        if budget >= 1024 {
            out.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        } else if budget > 0 {
            return Err(carry(
                "reasoning_effort (max_tokens leaves no room to think)",
            ));
        }
    }
    if req["stream"].as_bool() == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    if !metadata.is_empty() {
        out.insert("metadata".into(), Value::Object(metadata));
    }
    if req["parallel_tool_calls"].as_bool() == Some(false) {
        parallel = false;
    }

    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let Some(input) = req["messages"].as_array() else {
        return Err(carry("messages"));
    };
    for (i, message) in input.iter().enumerate() {
        let field = format!("messages[{i}]");
        if message.get("name").is_some_and(|n| !n.is_null()) {
            return Err(carry(&format!("{field}.name")));
        }
        match message["role"].as_str().unwrap_or("") {
            "system" | "developer" => {
                // Anthropic's system prompt takes text blocks only.
                let text = pivot::plain_text(&message["content"])
                    .ok_or_else(|| carry(&format!("{field}.content")))?;
                system.push(json!({"type": "text", "text": text}));
            }
            "user" => {
                let blocks =
                    openai_content_blocks(&message["content"], &format!("{field}.content"))?;
                push_turn(&mut messages, "user", blocks);
            }
            "assistant" => {
                let mut blocks = Vec::new();
                match &message["content"] {
                    Value::Null => {}
                    content => {
                        let text = pivot::plain_text(content)
                            .ok_or_else(|| carry(&format!("{field}.content")))?;
                        if !text.is_empty() {
                            blocks.push(json!({"type": "text", "text": text}));
                        }
                    }
                }
                for (j, call) in message["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let input: Value =
                        serde_json::from_str(if args.is_empty() { "{}" } else { args }).map_err(
                            |_| {
                                carry(&format!(
                                    "{field}.tool_calls[{j}].function.arguments (not JSON)"
                                ))
                            },
                        )?;
                    blocks.push(json!({"type": "tool_use", "id": call["id"],
                        "name": call["function"]["name"], "input": input}));
                }
                if message.get("function_call").is_some_and(|f| !f.is_null()) {
                    return Err(carry(&format!("{field}.function_call")));
                }
                // An earlier turn's `reasoning_content` came from some vendor's model; Anthropic
                // accepts back only its own signed thinking, and it does not change what the
                // next turn means, so it is left out.
                push_turn(&mut messages, "assistant", blocks);
            }
            "tool" => {
                let text = pivot::plain_text(&message["content"])
                    .ok_or_else(|| carry(&format!("{field}.content")))?;
                push_turn(
                    &mut messages,
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": message["tool_call_id"], "content": text}),
                    ],
                );
            }
            _ => return Err(carry(&format!("{field}.role"))),
        }
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));

    if let Some(tools) = req["tools"].as_array() {
        let tools = tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                if tool["type"] != "function" {
                    return Err(carry(&format!("tools[{i}].type")));
                }
                let f = &tool["function"];
                if f["strict"].as_bool() == Some(true) {
                    return Err(carry(&format!("tools[{i}].function.strict")));
                }
                let mut t = json!({"name": f["name"],
                    "input_schema": f.get("parameters").filter(|p| !p.is_null()).cloned().unwrap_or(json!({"type": "object"}))});
                if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                    t["description"] = d.clone();
                }
                Ok(t)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        out.insert("tools".into(), Value::Array(tools));
    }
    let choice = match &req["tool_choice"] {
        Value::Null => None,
        Value::String(s) if s == "auto" => Some(json!({"type": "auto"})),
        Value::String(s) if s == "none" => Some(json!({"type": "none"})),
        Value::String(s) if s == "required" => Some(json!({"type": "any"})),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
            Some(json!({"type": "tool", "name": req["tool_choice"]["function"]["name"]}))
        }
        _ => return Err(carry("tool_choice")),
    };
    let choice = match (choice, parallel) {
        (Some(c), true) => Some(c),
        (c, false) => {
            let mut c = c.unwrap_or(json!({"type": "auto"}));
            c["disable_parallel_tool_use"] = json!(true);
            Some(c)
        }
        (None, true) => None,
    };
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(out))
}

/// Anthropic's `stop_reason` as OpenAI's `finish_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's usage as OpenAI's: Anthropic counts cache reads and writes apart from
/// `input_tokens`; OpenAI's `prompt_tokens` includes them (and bills reads as cached).
pub fn usage_to_openai(usage: &Value) -> Value {
    let int = |k: &str| usage[k].as_i64().unwrap_or(0);
    let cached = int("cache_read_input_tokens");
    let written = int("cache_creation_input_tokens");
    // The split by lifetime, when Anthropic gives it; otherwise every write is a 5-minute one.
    let written_1h = usage["cache_creation"]["ephemeral_1h_input_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, written.max(0));
    let prompt = int("input_tokens") + cached + written;
    let mut out = pivot::openai_usage(prompt, int("output_tokens"), cached, 0);
    if written > 0 {
        out["prompt_tokens_details"][crate::proxy::CACHE_WRITE] = json!(written - written_1h);
        out["prompt_tokens_details"][crate::proxy::CACHE_WRITE_1H] = json!(written_1h);
    }
    out
}

fn chat_id(message_id: &str) -> String {
    format!("chatcmpl-{}", message_id.trim_start_matches("msg_"))
}

/// A whole Anthropic message as an OpenAI chat completion.
pub fn response_to_openai(resp: &Value) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in resp["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or("")),
            Some("thinking") => reasoning.push_str(block["thinking"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": block["input"].to_string()}})),
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": chat_id(resp["id"].as_str().unwrap_or("")),
        "object": "chat.completion",
        "created": pivot::now_secs(),
        "model": resp["model"],
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(resp["stop_reason"].as_str().unwrap_or("end_turn"))}],
        "usage": usage_to_openai(&resp["usage"]),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_system_images_tools_and_tool_results() {
        let req = json!({
            "model": "claude-x", "max_tokens": 100, "system": [{"type": "text", "text": "be brief"}],
            "tools": [{"name": "weather", "description": "d", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
            "tool_choice": {"type": "any"},
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}}]},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]}
            ]
        });
        let out = request_to_openai(&req).expect("convert");
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            out["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/jpeg;base64,AAAA"
        );
        assert_eq!(
            out["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(out["messages"][2]["content"], Value::Null);
        assert_eq!(
            out["messages"][3],
            json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"})
        );
        assert_eq!(
            out["tools"][0]["function"]["parameters"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["max_tokens"], 100);
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let base = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]});
        assert!(request_to_openai(&base).is_err());
        assert!(
            request_to_openai(&json!({"model": "m", "messages": []})).is_err(),
            "max_tokens is required"
        );
        assert!(
            request_to_openai(&json!({"model": "m", "max_tokens": 5, "top_k": 3, "messages": []}))
                .is_err()
        );
    }

    #[test]
    fn responses_become_messages() {
        let resp = json!({"id": "chatcmpl-abc", "choices": [{"message": {"content": "hi", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}});
        let msg = response_from_openai(&resp, "claude-x");
        assert_eq!(msg["id"], "msg_abc");
        assert_eq!(msg["content"][0], json!({"type": "text", "text": "hi"}));
        assert_eq!(msg["content"][1]["input"], json!({"a": 1}));
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(msg["usage"]["input_tokens"], 6);
        assert_eq!(msg["usage"]["cache_read_input_tokens"], 4);
    }

    #[test]
    fn streams_become_anthropic_events() {
        let mut c = StreamConverter::new("claude-x");
        let mut out = String::new();
        out += &c.chunk(&json!({"id": "chatcmpl-1", "choices": [{"delta": {"role": "assistant", "content": ""}}]}));
        out += &c.chunk(&json!({"choices": [{"delta": {"content": "Hel"}}]}));
        out += &c.chunk(&json!({"choices": [{"delta": {"content": "lo"}}]}));
        out += &c.chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]}));
        out += &c.chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}));
        out += &c.chunk(&json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}));
        out += &c
            .chunk(&json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}));
        out += &c.finish();
        let kinds: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            kinds,
            vec![
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(out.contains("\"stop_reason\":\"tool_use\""));
        assert!(out.contains("\"output_tokens\":4"));
        assert!(out.contains("\"partial_json\":\"{\\\"a\\\":\""));
        // Every event has both its event line and its data line.
        assert_eq!(
            out.matches("event: ").count(),
            out.matches("data: ").count()
        );
    }

    #[test]
    fn pivot_requests_become_anthropic_requests() {
        let pivot = json!({
            "model": "claude-up", "max_completion_tokens": 300, "temperature": 0.5, "stop": "END",
            "stream": true, "stream_options": {"include_usage": true}, "user": "u-1",
            "parallel_tool_calls": false, "tool_choice": "required",
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "use metric"}]},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]},
                {"role": "assistant", "content": "checking", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "and tomorrow?"}
            ]
        });
        let out = request_from_openai(&pivot).expect("convert");
        assert_eq!(
            out,
            json!({
                "model": "claude-up", "max_tokens": 300, "temperature": 0.5, "stop_sequences": ["END"],
                "stream": true, "metadata": {"user_id": "u-1"},
                "system": [{"type": "text", "text": "be brief"}, {"type": "text", "text": "use metric"}],
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "look"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
                        {"type": "text", "text": "and tomorrow?"}]}
                ],
                "tools": [{"name": "weather", "description": "d",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
            })
        );
    }

    #[test]
    fn pivot_fields_anthropic_cannot_carry_are_refused_by_name() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for (field, value, named) in [
            ("n", json!(2), "n"),
            ("logprobs", json!(true), "logprobs"),
            (
                "response_format",
                json!({"type": "json_object"}),
                "response_format",
            ),
            ("seed", json!(1), "seed"),
        ] {
            let mut req = base.clone();
            req[field] = value;
            let err = request_from_openai(&req).expect_err(field);
            assert_eq!(err.code(), "unsupported_field");
            assert_eq!(
                err.details().map(|d| d["field"].clone()),
                Some(json!(named))
            );
        }
        let audio = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]});
        let err = request_from_openai(&audio).expect_err("audio");
        assert_eq!(
            err.details().map(|d| d["field"].clone()),
            Some(json!("messages[0].content[0].type"))
        );
        let strict = json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "f", "strict": true}}]});
        assert!(request_from_openai(&strict).is_err());
        // Without a limit, Anthropic's required max_tokens gets the default.
        assert_eq!(
            request_from_openai(&base).expect("ok")["max_tokens"],
            DEFAULT_MAX_TOKENS
        );
        let image_system = json!({"model": "m", "messages": [{"role": "system", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}, {"role": "user", "content": "hi"}]});
        let err = request_from_openai(&image_system).expect_err("an image in the system prompt");
        assert_eq!(
            err.details().map(|d| d["field"].clone()),
            Some(json!("messages[0].content"))
        );
    }

    #[test]
    fn anthropic_messages_become_pivot_completions() {
        let resp = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2, "output_tokens": 7}});
        let mut out = response_to_openai(&resp);
        out["created"] = json!(0);
        assert_eq!(
            out,
            json!({"id": "chatcmpl-01", "object": "chat.completion", "created": 0, "model": "claude-up",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "calling", "reasoning_content": "hmm",
                    "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
                "usage": {"prompt_tokens": 16, "completion_tokens": 7, "total_tokens": 23,
                    "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 2, "cache_write_1h_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": 0}}})
        );
        // Writes kept an hour are counted apart, so they are billed at their own price.
        let usage = usage_to_openai(
            &json!({"input_tokens": 5, "cache_creation_input_tokens": 30,
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}, "output_tokens": 1}),
        );
        let tokens = crate::proxy::usage_tokens(&usage);
        assert_eq!(
            tokens.map(|t| (t.prompt, t.cache_write, t.cache_write_1h)),
            Some((35, 10, 20))
        );
    }

    #[test]
    fn anthropic_stream_events_become_pivot_chunks() {
        let mut s = UpstreamStream::default();
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_9", "model": "claude-up", "usage": {"input_tokens": 12, "cache_read_input_tokens": 3, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"a\""}}),
            json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ":1}"}}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
            json!({"type": "message_stop"}),
        ];
        let mut deltas = Vec::new();
        let mut done = false;
        for e in &events {
            for c in s.event(e).expect("no error") {
                match c {
                    Some(c) if c["choices"].as_array().is_some_and(|a| a.is_empty()) => {
                        assert_eq!(
                            c["usage"],
                            json!({"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24,
                            "prompt_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 0}})
                        );
                        assert_eq!(c["id"], "chatcmpl-9");
                    }
                    Some(c) => deltas.push((
                        c["choices"][0]["delta"].clone(),
                        c["choices"][0]["finish_reason"].clone(),
                    )),
                    None => done = true,
                }
            }
        }
        assert!(done, "message_stop ends the pivot stream");
        assert_eq!(
            deltas,
            vec![
                (json!({"role": "assistant", "content": ""}), Value::Null),
                (json!({"reasoning_content": "hmm"}), Value::Null),
                (json!({"content": "Hi"}), Value::Null),
                (
                    json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                    Value::Null
                ),
                (
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}),
                    Value::Null
                ),
                (
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}),
                    Value::Null
                ),
                (json!({}), json!("tool_calls")),
            ]
        );
        let err = s.event(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
        assert_eq!(err.err().as_deref(), Some("Overloaded"));
    }

    #[test]
    fn client_fields_without_a_pivot_place_are_refused_by_name() {
        let base =
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        let mut managed = base.clone();
        managed["context_management"] = json!({"edits": []});
        let err = request_to_openai(&managed).expect_err("context_management");
        assert_eq!(
            (err.code(), err.details().map(|d| d["field"].clone())),
            ("unsupported_field", Some(json!("context_management")))
        );
        let mut off = base.clone();
        off["thinking"] = json!({"type": "disabled"});
        off["metadata"] = json!({"user_id": "u-9"});
        let out = request_to_openai(&off).expect("carried");
        assert_eq!(out["user"], "u-9");
        let mut unknown = base;
        unknown["mcp_servers"] = json!([]);
        assert!(request_to_openai(&unknown).is_err());
    }

    #[test]
    fn thinking_is_carried_as_an_effort_and_back_as_a_budget() {
        let req = json!({"model": "m", "max_tokens": 20000, "thinking": {"type": "enabled", "budget_tokens": 10000},
            "messages": [{"role": "user", "content": "hi"}]});
        let pivot = request_to_openai(&req).expect("carried");
        assert_eq!(pivot["reasoning_effort"], "medium");
        let back = request_from_openai(&pivot).expect("carried back");
        assert_eq!(
            back["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        // The budget must fit inside max_tokens.
        let tight = json!({"model": "m", "max_tokens": 3000, "reasoning_effort": "high", "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(
            request_from_openai(&tight).expect("fits")["thinking"]["budget_tokens"],
            2999
        );
        let tiny = json!({"model": "m", "max_tokens": 500, "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]});
        assert!(request_from_openai(&tiny).is_err());
        let none = json!({"model": "m", "reasoning_effort": "minimal", "messages": [{"role": "user", "content": "hi"}]});
        assert!(
            request_from_openai(&none)
                .expect("no thinking")
                .get("thinking")
                .is_none()
        );
    }
}
