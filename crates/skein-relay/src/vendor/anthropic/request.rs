//! Anthropic Messages requests ⇄ the pivot: a client's `/v1/messages` request to an OpenAI
//! chat-completions request, and the pivot request to an Anthropic request for the upstream.

use serde_json::{Map, Value, json};
use skein_core::{ApiError, ApiResult};

use crate::errors;
use crate::vendor::pivot;

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
            _ => return Err(errors::only_native(field, "Anthropic")),
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
        return Err(errors::unsupported_content("top_k"));
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
                    return Err(errors::unsupported_content(&format!("The server tool {}", t["type"])));
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
            _ => return Err(errors::unsupported_content("This tool_choice")),
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
        _ => return Err(errors::unsupported_content("This image source")),
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
            Some(other) => return Err(errors::unsupported_content(&format!("A {other} block"))),
            None => return Err(errors::unsupported_content("A block without a type")),
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
            Some(other) => return Err(errors::unsupported_content(&format!("A {other} block"))),
            None => return Err(errors::unsupported_content("A block without a type")),
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

// ---------------------------------------------------------------------------------------------
// Upstream direction: the pivot (OpenAI chat) request to an Anthropic Messages request, and
// Anthropic's answers (whole and streamed) back to the pivot.

/// Output tokens asked for when the client sets no limit (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: i64 = 4096;

const UPSTREAM: &str = "anthropic";

fn carry(field: &str) -> ApiError {
    errors::cannot_carry(field, UPSTREAM)
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
    // Anthropic refuses `tool_use` blocks in a request that defines no tools. A history of
    // earlier tool calls sent without tools (a chat whose tools were since switched off)
    // declares the tools it used, with a schema that takes anything, and forbids new calls.
    let used = if req["tools"].as_array().is_none_or(Vec::is_empty) {
        tools_used(&messages)
    } else {
        Vec::new()
    };
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
    if !used.is_empty() {
        out.insert("tools".into(), Value::Array(used));
        out.insert("tool_choice".into(), json!({"type": "none"}));
    }
    Ok(Value::Object(out))
}

/// The tools named by the `tool_use` blocks of `messages`, once each, as declarations that
/// accept any input.
fn tools_used(messages: &[Value]) -> Vec<Value> {
    let mut names: Vec<&str> = Vec::new();
    for message in messages {
        for block in message["content"].as_array().into_iter().flatten() {
            if block["type"] == "tool_use"
                && let Some(name) = block["name"].as_str()
                && !names.contains(&name)
            {
                names.push(name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| json!({"name": name, "input_schema": {"type": "object"}}))
        .collect()
}
