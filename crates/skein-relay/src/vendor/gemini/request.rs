//! Gemini `generateContent` ⇄ OpenAI chat completions: requests, whole responses, and stream
//! chunks (each OpenAI chunk becomes one `GenerateContentResponse`).

use std::collections::HashMap;

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

/// A Gemini request for `model` as an OpenAI chat-completions request.
pub fn request_to_openai(req: &Value, model: &str, stream: bool) -> ApiResult<Value> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    // Fields the pivot has no place for are refused by name (a Gemini channel still gets
    // them, passed through).
    for (field, value) in req.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "contents" | "systemInstruction" | "generationConfig" | "tools" => {}
            "toolConfig" => {
                let config = &value["functionCallingConfig"];
                let names = config["allowedFunctionNames"].as_array();
                let choice = match (config["mode"].as_str(), names.map(Vec::as_slice)) {
                    (None | Some("AUTO" | "MODE_UNSPECIFIED"), None) => json!("auto"),
                    (Some("NONE"), None) => json!("none"),
                    (Some("ANY"), None) => json!("required"),
                    (Some("ANY"), Some([name])) => {
                        json!({"type": "function", "function": {"name": name}})
                    }
                    _ => return Err(pivot::only_native("toolConfig", "Gemini")),
                };
                out.insert("tool_choice".into(), choice);
            }
            _ => return Err(pivot::only_native(field, "Gemini")),
        }
    }
    let config = &req["generationConfig"];
    for (field, value) in config.as_object().into_iter().flatten() {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "temperature" | "topP" | "maxOutputTokens" | "stopSequences" | "candidateCount" => {}
            "seed" => {
                out.insert("seed".into(), value.clone());
            }
            "presencePenalty" => {
                out.insert("presence_penalty".into(), value.clone());
            }
            "frequencyPenalty" => {
                out.insert("frequency_penalty".into(), value.clone());
            }
            // Carried as an effort; a Gemini channel gets the exact budget, passed through.
            // (`includeThoughts` only says whether to show them.)
            "thinkingConfig" => {
                if let Some(budget) = value["thinkingBudget"].as_i64().filter(|b| *b >= 0) {
                    out.insert(
                        "reasoning_effort".into(),
                        json!(pivot::effort_for_budget(budget)),
                    );
                }
            }
            "responseMimeType" if value == "text/plain" => {}
            "responseMimeType" if value == "application/json" => {
                if config.get("responseJsonSchema").is_none_or(Value::is_null) {
                    out.insert("response_format".into(), json!({"type": "json_object"}));
                }
            }
            "responseJsonSchema" => {
                out.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {"name": "response", "schema": value}}),
                );
            }
            _ => {
                return Err(pivot::only_native(
                    &format!("generationConfig.{field}"),
                    "Gemini",
                ));
            }
        }
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("maxOutputTokens", "max_tokens"),
        ("stopSequences", "stop"),
    ] {
        if let Some(v) = config.get(from).filter(|v| !v.is_null()) {
            out.insert(to.into(), v.clone());
        }
    }
    if config
        .get("candidateCount")
        .and_then(Value::as_i64)
        .is_some_and(|n| n > 1)
    {
        return Err(unsupported("More than one candidate"));
    }
    if stream {
        out.insert("stream".into(), json!(true));
    }

    let mut messages = Vec::new();
    if let Some(parts) = req["systemInstruction"]["parts"].as_array() {
        let text: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        messages.push(json!({"role": "system", "content": text.join("\n")}));
    }
    let Some(contents) = req["contents"].as_array() else {
        return Err(ApiError::bad_request(
            "missing_contents",
            "contents must be an array.",
            "contents 必须是数组。",
        ));
    };
    // Gemini pairs a function's response with its call by name; OpenAI by id.
    let mut call_ids: HashMap<String, Vec<String>> = HashMap::new();
    let mut next_id = 0;
    for content in contents {
        let role = content["role"].as_str().unwrap_or("user");
        let parts = content["parts"].as_array().cloned().unwrap_or_default();
        match role {
            "model" => {
                let mut text = String::new();
                let mut calls = Vec::new();
                for part in &parts {
                    if let Some(t) = part["text"].as_str() {
                        if part["thought"].as_bool() != Some(true) {
                            text.push_str(t);
                        }
                    } else if let Some(call) = part.get("functionCall") {
                        next_id += 1;
                        let id = format!("call_{next_id}");
                        let name = call["name"].as_str().unwrap_or("").to_string();
                        call_ids.entry(name.clone()).or_default().push(id.clone());
                        calls.push(json!({"id": id, "type": "function",
                            "function": {"name": name, "arguments": call.get("args").cloned().unwrap_or(json!({})).to_string()}}));
                    } else {
                        return Err(unsupported("A model part other than text or functionCall"));
                    }
                }
                let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { Value::String(text) }});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                messages.push(message);
            }
            "user" | "function" | "tool" => {
                let mut user_parts = Vec::new();
                for part in &parts {
                    if let Some(t) = part["text"].as_str() {
                        user_parts.push(json!({"type": "text", "text": t}));
                    } else if let Some(inline) =
                        part.get("inlineData").or_else(|| part.get("inline_data"))
                    {
                        let mime = inline["mimeType"]
                            .as_str()
                            .or_else(|| inline["mime_type"].as_str())
                            .unwrap_or("image/png");
                        if !mime.starts_with("image/") {
                            return Err(unsupported(&format!("Inline data of type {mime}")));
                        }
                        let url = format!(
                            "data:{mime};base64,{}",
                            inline["data"].as_str().unwrap_or("")
                        );
                        user_parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
                    } else if let Some(resp) = part.get("functionResponse") {
                        let name = resp["name"].as_str().unwrap_or("");
                        let id = call_ids
                            .get_mut(name)
                            .and_then(|ids| (!ids.is_empty()).then(|| ids.remove(0)));
                        let id = id.unwrap_or_else(|| format!("call_{name}"));
                        messages.push(json!({"role": "tool", "tool_call_id": id, "content": resp["response"].to_string()}));
                    } else {
                        return Err(unsupported(
                            "A part other than text, inlineData or functionResponse",
                        ));
                    }
                }
                if !user_parts.is_empty() {
                    messages.push(json!({"role": "user", "content": user_parts}));
                }
            }
            other => return Err(unsupported(&format!("The role {other}"))),
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Vec::new();
    for tool in req["tools"].as_array().into_iter().flatten() {
        let Some(declarations) = tool["functionDeclarations"]
            .as_array()
            .or_else(|| tool["function_declarations"].as_array())
        else {
            return Err(unsupported("A tool other than function declarations"));
        };
        for f in declarations {
            // `parametersJsonSchema` is JSON Schema already; `parameters` is Gemini's OpenAPI
            // subset (`"type": "OBJECT"`, `nullable`), which OpenAI and Anthropic refuse.
            let parameters = ["parametersJsonSchema", "parameters_json_schema"]
                .iter()
                .find_map(|k| f.get(*k).filter(|p| !p.is_null()).cloned())
                .or_else(|| {
                    f.get("parameters")
                        .filter(|p| !p.is_null())
                        .map(json_schema_of)
                })
                .unwrap_or(json!({"type": "object"}));
            tools.push(json!({"type": "function", "function": {"name": f["name"], "description": f.get("description").cloned().unwrap_or(Value::Null),
                "parameters": parameters}}));
        }
    }
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    Ok(Value::Object(out))
}

/// OpenAI's `finish_reason` as Gemini's `finishReason`.
pub fn finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

fn usage_metadata(usage: &Value) -> Value {
    let prompt = usage["prompt_tokens"].as_i64().unwrap_or(0);
    let completion = usage["completion_tokens"].as_i64().unwrap_or(0);
    // OpenAI counts reasoning inside completion tokens; Gemini reports thoughts apart.
    let thoughts = usage["completion_tokens_details"]["reasoning_tokens"]
        .as_i64()
        .unwrap_or(0)
        .clamp(0, completion.max(0));
    let mut meta = json!({"promptTokenCount": prompt, "candidatesTokenCount": completion - thoughts, "totalTokenCount": prompt + completion});
    if thoughts > 0 {
        meta["thoughtsTokenCount"] = json!(thoughts);
    }
    if let Some(cached) = usage["prompt_tokens_details"]["cached_tokens"]
        .as_i64()
        .filter(|c| *c > 0)
    {
        meta["cachedContentTokenCount"] = json!(cached);
    }
    meta
}

fn parts_of(message: &Value, text_field: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    // Reasoning becomes a thought part, as Gemini marks its own.
    if let Some(thought) = message["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        parts.push(json!({"text": thought, "thought": true}));
    }
    if let Some(text) = message[text_field].as_str().filter(|t| !t.is_empty()) {
        parts.push(json!({"text": text}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap_or("{}"))
                .unwrap_or(json!({}));
        parts.push(json!({"functionCall": {"name": call["function"]["name"], "args": args}}));
    }
    parts
}

/// A whole OpenAI response as a Gemini `GenerateContentResponse`.
pub fn response_from_openai(resp: &Value, model: &str) -> Value {
    let choice = &resp["choices"][0];
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts_of(&choice["message"], "content")},
            "finishReason": finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")),
            "index": 0,
        }],
        "usageMetadata": usage_metadata(&resp["usage"]),
        "modelVersion": model,
    })
}

/// Gemini's `Schema` (an OpenAPI 3.0 subset) as JSON Schema: type names in lower case
/// (`"OBJECT"` → `"object"`) and `nullable: true` as a `"null"` type, in the schema and the
/// schemas it holds (`properties`, `items`, `anyOf`); everything else as written.
fn json_schema_of(schema: &Value) -> Value {
    let Some(fields) = schema.as_object() else {
        return schema.clone();
    };
    let nullable = fields.get("nullable").and_then(Value::as_bool) == Some(true);
    let mut out = Map::new();
    for (key, value) in fields {
        let value = match key.as_str() {
            "type" => match value.as_str() {
                Some(t) if nullable => json!([t.to_ascii_lowercase(), "null"]),
                Some(t) => json!(t.to_ascii_lowercase()),
                None => value.clone(),
            },
            "nullable" => continue,
            "properties" => match value.as_object() {
                Some(props) => Value::Object(
                    props
                        .iter()
                        .map(|(name, s)| (name.clone(), json_schema_of(s)))
                        .collect(),
                ),
                None => value.clone(),
            },
            "items" => json_schema_of(value),
            "anyOf" => match value.as_array() {
                Some(options) => Value::Array(options.iter().map(json_schema_of).collect()),
                None => value.clone(),
            },
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

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

// ---------------------------------------------------------------------------------------------
// Upstream direction: the pivot (OpenAI chat) request to a Gemini `generateContent` request,
// and Gemini's answers (whole and streamed) back to the pivot.

const UPSTREAM: &str = "gemini";

fn carry(field: &str) -> ApiError {
    pivot::cannot_carry(field, UPSTREAM)
}

/// The Gemini parts of an OpenAI user or system content. Image URLs must already be `data:`
/// URLs: Gemini takes remote images only from Google's own storage, so the adapter fetches
/// others first ([`super::images`]).
fn parts_from_openai(content: &Value, field: &str) -> ApiResult<Vec<Value>> {
    match content {
        Value::String(text) => Ok(vec![json!({"text": text})]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| match part["type"].as_str() {
                Some("text") => Ok(json!({"text": part["text"]})),
                Some("image_url") => {
                    let url = part["image_url"]["url"].as_str().unwrap_or("");
                    let (mime, data) = pivot::parse_data_url(url)
                        .ok_or_else(|| carry(&format!("{field}[{j}].image_url.url")))?;
                    Ok(json!({"inlineData": {"mimeType": mime, "data": data}}))
                }
                _ => Err(carry(&format!("{field}[{j}].type"))),
            })
            .collect(),
        _ => Err(carry(field)),
    }
}

fn push_content(contents: &mut Vec<Value>, role: &str, parts: Vec<Value>) {
    // Consecutive turns of one role (a user message after tool results) become one content.
    if let Some(last) = contents.last_mut()
        && last["role"] == role
        && let Some(existing) = last["parts"].as_array_mut()
    {
        existing.extend(parts);
        return;
    }
    contents.push(json!({"role": role, "parts": parts}));
}

/// An OpenAI chat-completions request (the pivot) as a Gemini `generateContent` body (the model
/// and streaming go in the URL). Fields Gemini cannot express are refused with a 400 naming
/// them.
pub fn request_from_openai(req: &Value) -> ApiResult<Value> {
    let Some(fields) = req.as_object() else {
        return Err(carry("body"));
    };
    let mut config = Map::new();
    for (field, value) in fields {
        if value.is_null() {
            continue;
        }
        match field.as_str() {
            "model" | "messages" | "stream" | "stream_options" | "tools" | "tool_choice" => {}
            "temperature" => {
                config.insert("temperature".into(), value.clone());
            }
            "top_p" => {
                config.insert("topP".into(), value.clone());
            }
            "max_tokens" | "max_completion_tokens" => {
                config.insert("maxOutputTokens".into(), value.clone());
            }
            "seed" => {
                config.insert("seed".into(), value.clone());
            }
            "presence_penalty" => {
                config.insert("presencePenalty".into(), value.clone());
            }
            "frequency_penalty" => {
                config.insert("frequencyPenalty".into(), value.clone());
            }
            "stop" => {
                let stops = match value {
                    Value::String(s) => json!([s]),
                    Value::Array(_) => value.clone(),
                    _ => return Err(carry("stop")),
                };
                config.insert("stopSequences".into(), stops);
            }
            "n" if value.as_i64() == Some(1) => {}
            "reasoning_effort" => {
                let budget = value
                    .as_str()
                    .and_then(pivot::budget_for_effort)
                    .ok_or_else(|| carry("reasoning_effort"))?;
                config.insert(
                    "thinkingConfig".into(),
                    json!({"thinkingBudget": budget, "includeThoughts": budget > 0}),
                );
            }
            // Gemini calls functions in parallel when it sees fit; allowing it is the default.
            "parallel_tool_calls" if value.as_bool() == Some(true) => {}
            "response_format" => match value["type"].as_str() {
                Some("text") => {}
                Some("json_object") => {
                    config.insert("responseMimeType".into(), json!("application/json"));
                }
                Some("json_schema") => {
                    config.insert("responseMimeType".into(), json!("application/json"));
                    config.insert(
                        "responseJsonSchema".into(),
                        value["json_schema"]["schema"].clone(),
                    );
                }
                _ => return Err(carry("response_format.type")),
            },
            _ => return Err(carry(field)),
        }
    }
    let mut out = Map::new();
    let Some(input) = req["messages"].as_array() else {
        return Err(carry("messages"));
    };
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // OpenAI pairs a tool result with its call by id; Gemini by function name.
    let mut names: HashMap<String, String> = HashMap::new();
    for (i, message) in input.iter().enumerate() {
        let field = format!("messages[{i}]");
        if message.get("name").is_some_and(|n| !n.is_null()) {
            return Err(carry(&format!("{field}.name")));
        }
        match message["role"].as_str().unwrap_or("") {
            "system" | "developer" => {
                // A system instruction is text.
                let text = pivot::plain_text(&message["content"])
                    .ok_or_else(|| carry(&format!("{field}.content")))?;
                system.push(json!({"text": text}));
            }
            "user" => {
                let parts = parts_from_openai(&message["content"], &format!("{field}.content"))?;
                push_content(&mut contents, "user", parts);
            }
            "assistant" => {
                let mut parts = Vec::new();
                let text = pivot::plain_text(&message["content"])
                    .ok_or_else(|| carry(&format!("{field}.content")))?;
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for (j, call) in message["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let name = call["function"]["name"].as_str().unwrap_or("").to_string();
                    let args = call["function"]["arguments"].as_str().unwrap_or("{}");
                    let args: Value =
                        serde_json::from_str(if args.is_empty() { "{}" } else { args }).map_err(
                            |_| {
                                carry(&format!(
                                    "{field}.tool_calls[{j}].function.arguments (not JSON)"
                                ))
                            },
                        )?;
                    if let Some(id) = call["id"].as_str() {
                        names.insert(id.to_string(), name.clone());
                    }
                    parts.push(json!({"functionCall": {"name": name, "args": args}}));
                }
                if message.get("function_call").is_some_and(|f| !f.is_null()) {
                    return Err(carry(&format!("{field}.function_call")));
                }
                push_content(&mut contents, "model", parts);
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap_or("");
                let name = names.get(id).ok_or_else(|| {
                    carry(&format!("{field}.tool_call_id (no earlier call has it)"))
                })?;
                let text = pivot::plain_text(&message["content"])
                    .ok_or_else(|| carry(&format!("{field}.content")))?;
                // Gemini wants an object; a tool that answered JSON keeps its structure.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(o)) => Value::Object(o),
                    _ => json!({"result": text}),
                };
                push_content(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                );
            }
            _ => return Err(carry(&format!("{field}.role"))),
        }
    }
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": system}));
    }
    out.insert("contents".into(), Value::Array(contents));
    if let Some(tools) = req["tools"].as_array() {
        let declarations = tools
            .iter()
            .enumerate()
            .map(|(i, tool)| {
                if tool["type"] != "function" {
                    return Err(carry(&format!("tools[{i}].type")));
                }
                let f = &tool["function"];
                let mut d = json!({"name": f["name"]});
                if let Some(desc) = f.get("description").filter(|d| !d.is_null()) {
                    d["description"] = desc.clone();
                }
                // JSON Schema as OpenAI clients write it; `parameters` would take only
                // Gemini's OpenAPI subset.
                if let Some(p) = f.get("parameters").filter(|p| !p.is_null()) {
                    d["parametersJsonSchema"] = p.clone();
                }
                Ok(d)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        out.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    let mode = match &req["tool_choice"] {
        Value::Null => None,
        Value::String(s) if s == "auto" => Some(json!({"mode": "AUTO"})),
        Value::String(s) if s == "none" => Some(json!({"mode": "NONE"})),
        Value::String(s) if s == "required" => Some(json!({"mode": "ANY"})),
        Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => Some(
            json!({"mode": "ANY", "allowedFunctionNames": [req["tool_choice"]["function"]["name"]]}),
        ),
        _ => return Err(carry("tool_choice")),
    };
    if let Some(mode) = mode {
        out.insert("toolConfig".into(), json!({"functionCallingConfig": mode}));
    }
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(out))
}

/// Gemini's `finishReason` as OpenAI's `finish_reason` (`tool_calls` when the answer calls
/// functions: Gemini says `STOP` then).
pub fn finish_to_openai(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's `usageMetadata` as OpenAI's usage: `promptTokenCount` already includes cached
/// tokens; thoughts are counted apart from candidates, and OpenAI counts them as completion.
pub fn usage_to_openai(meta: &Value) -> Value {
    let int = |k: &str| meta[k].as_i64().unwrap_or(0);
    let thoughts = int("thoughtsTokenCount");
    pivot::openai_usage(
        int("promptTokenCount") + int("toolUsePromptTokenCount"),
        int("candidatesTokenCount") + thoughts,
        int("cachedContentTokenCount"),
        thoughts,
    )
}

/// A prefix for the ids of one answer's function calls: Gemini gives calls no ids (or only
/// sometimes), OpenAI and Anthropic clients need ids unique across the conversation.
fn call_prefix() -> String {
    let id = skein_core::ids::new_id().replace('-', "");
    format!("call_{}", &id[id.len().saturating_sub(12)..])
}

/// Splits a candidate's parts into text, thoughts and calls (numbered from `first_call`, ids
/// made from `prefix` when Gemini gave none).
fn split_parts(parts: &Value, first_call: usize, prefix: &str) -> (String, String, Vec<Value>) {
    let mut text = String::new();
    let mut thoughts = String::new();
    let mut calls = Vec::new();
    for part in parts.as_array().into_iter().flatten() {
        if let Some(t) = part["text"].as_str() {
            if part["thought"].as_bool() == Some(true) {
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        } else if let Some(call) = part.get("functionCall") {
            let n = first_call + calls.len();
            let id = call["id"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{prefix}_{n}"));
            calls.push(
                json!({"index": n, "id": id, "type": "function", "function": {"name": call["name"],
                "arguments": call.get("args").cloned().unwrap_or(json!({})).to_string()}}),
            );
        }
    }
    (text, thoughts, calls)
}

/// A whole Gemini `GenerateContentResponse` as an OpenAI chat completion.
pub fn response_to_openai(resp: &Value, model: &str) -> Value {
    let candidate = &resp["candidates"][0];
    let (text, thoughts, mut calls) =
        split_parts(&candidate["content"]["parts"], 0, &call_prefix());
    let finish = match candidate["finishReason"].as_str() {
        Some(r) => finish_to_openai(r, !calls.is_empty()),
        // No candidate at all: the prompt itself was blocked.
        None if resp["promptFeedback"]["blockReason"].is_string() => "content_filter",
        None => finish_to_openai("STOP", !calls.is_empty()),
    };
    for call in &mut calls {
        if let Some(o) = call.as_object_mut() {
            o.remove("index");
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !thoughts.is_empty() {
        message["reasoning_content"] = json!(thoughts);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": format!("chatcmpl-{}", resp["responseId"].as_str().unwrap_or("gemini")),
        "object": "chat.completion",
        "created": pivot::now_secs(),
        "model": resp["modelVersion"].as_str().unwrap_or(model),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage_to_openai(&resp["usageMetadata"]),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_system_config_images_and_function_calls() {
        let req = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "generationConfig": {"temperature": 0.3, "maxOutputTokens": 40, "stopSequences": ["END"]},
            "tools": [{"functionDeclarations": [{"name": "weather", "parameters": {"type": "object"}}]}],
            "contents": [
                {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
                {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"sky": "clear"}}}]}
            ]
        });
        let out = request_to_openai(&req, "gemini-x", true).expect("convert");
        assert_eq!(out["model"], "gemini-x");
        assert_eq!(
            (out["max_tokens"].as_i64(), out["stream"].as_bool()),
            (Some(40), Some(true))
        );
        assert_eq!(out["stop"], json!(["END"]));
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(
            out["messages"][1]["content"][1]["image_url"]["url"],
            "data:image/png;base64,AAAA"
        );
        let call_id = out["messages"][2]["tool_calls"][0]["id"].clone();
        assert_eq!(
            out["messages"][3]["tool_call_id"], call_id,
            "the response is paired with its call"
        );
        assert_eq!(out["tools"][0]["function"]["name"], "weather");
    }

    #[test]
    fn what_cannot_be_carried_is_refused() {
        let pdf = json!({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": "x"}}]}]});
        assert!(request_to_openai(&pdf, "m", false).is_err());
        let many = json!({"generationConfig": {"candidateCount": 2}, "contents": []});
        assert!(request_to_openai(&many, "m", false).is_err());
        assert!(request_to_openai(&json!({}), "m", false).is_err());
    }

    #[test]
    fn responses_and_chunks_become_gemini_shapes() {
        let resp = json!({"choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
        let g = response_from_openai(&resp, "gemini-x");
        assert_eq!(g["candidates"][0]["content"]["parts"][0]["text"], "hi");
        assert_eq!(g["candidates"][0]["finishReason"], "MAX_TOKENS");
        assert_eq!(g["usageMetadata"]["totalTokenCount"], 4);

        let mut pending = Vec::new();
        assert!(
            chunk_from_openai(
                &json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
                "m",
                &mut pending
            )
            .is_none()
        );
        let text = chunk_from_openai(
            &json!({"choices": [{"delta": {"content": "Hel"}}]}),
            "m",
            &mut pending,
        )
        .expect("text");
        assert_eq!(text["candidates"][0]["content"]["parts"][0]["text"], "Hel");
        chunk_from_openai(
            &json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{\"a\""}}]}}]}),
            "m",
            &mut pending,
        );
        chunk_from_openai(
            &json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}),
            "m",
            &mut pending,
        );
        let end = chunk_from_openai(
            &json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
            "m",
            &mut pending,
        )
        .expect("end");
        assert_eq!(
            end["candidates"][0]["content"]["parts"][0]["functionCall"],
            json!({"name": "f", "args": {"a": 1}})
        );
        assert_eq!(end["candidates"][0]["finishReason"], "STOP");
        let usage = chunk_from_openai(
            &json!({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5}}),
            "m",
            &mut pending,
        )
        .expect("usage");
        assert_eq!(usage["usageMetadata"]["candidatesTokenCount"], 5);
    }

    #[test]
    fn pivot_requests_become_gemini_requests() {
        let pivot = json!({
            "model": "gemini-up", "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["END"], "seed": 7,
            "stream": true, "stream_options": {"include_usage": true},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "tools": [{"type": "function", "function": {"name": "weather", "description": "d",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}}],
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"clear\"}"},
                {"role": "tool", "tool_call_id": "call_1", "content": "plain words"},
                {"role": "user", "content": "thanks"}
            ]
        });
        let out = request_from_openai(&pivot).expect("convert");
        assert_eq!(
            out,
            json!({
                "systemInstruction": {"parts": [{"text": "be brief"}]},
                "contents": [
                    {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
                    {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"sky": "clear"}}},
                        {"functionResponse": {"name": "weather", "response": {"result": "plain words"}}},
                        {"text": "thanks"}]}
                ],
                "tools": [{"functionDeclarations": [{"name": "weather", "description": "d",
                    "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
                "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"], "seed": 7,
                    "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"}}
            })
        );
    }

    #[test]
    fn a_gemini_clients_function_schemas_reach_the_pivot_as_json_schema() {
        let req = json!({
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "a", "parameters": {"type": "OBJECT", "properties": {
                    "city": {"type": "STRING", "nullable": true, "description": "A city"},
                    "days": {"type": "ARRAY", "items": {"type": "INTEGER", "enum": ["1", "2"]}}},
                    "required": ["city"]}},
                {"name": "b", "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}},
                    "additionalProperties": false}},
                {"name": "c"}]}]
        });
        let out = request_to_openai(&req, "m", false).expect("convert");
        let parameters: Vec<Value> = out["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["function"]["parameters"].clone())
            .collect();
        assert_eq!(
            parameters,
            vec![
                json!({"type": "object", "properties": {
                    "city": {"type": ["string", "null"], "description": "A city"},
                    "days": {"type": "array", "items": {"type": "integer", "enum": ["1", "2"]}}},
                    "required": ["city"]}),
                json!({"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": false}),
                json!({"type": "object"}),
            ]
        );
    }

    #[test]
    fn pivot_fields_gemini_cannot_carry_are_refused_by_name() {
        let base = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        for field in ["logprobs", "logit_bias", "x_vendor"] {
            let mut req = base.clone();
            req[field] = json!(true);
            let err = request_from_openai(&req).expect_err(field);
            assert_eq!(
                err.details().map(|d| d["field"].clone()),
                Some(json!(field))
            );
        }
        // A remote URL must have been fetched and inlined before conversion.
        let url = json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]});
        assert!(request_from_openai(&url).is_err());
        let orphan = json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
        assert!(
            request_from_openai(&orphan).is_err(),
            "a result without its call cannot be named"
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
    fn gemini_answers_become_pivot_completions() {
        let resp = json!({"responseId": "r1", "modelVersion": "gemini-up-001",
            "candidates": [{"content": {"role": "model", "parts": [{"text": "plan", "thought": true}, {"text": "ok"},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "cachedContentTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 5, "totalTokenCount": 18}});
        let mut out = response_to_openai(&resp, "gemini-up");
        out["created"] = json!(0);
        let id = out["choices"][0]["message"]["tool_calls"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            id.starts_with("call_") && id.ends_with("_0") && id.len() == 19,
            "{id}"
        );
        out["choices"][0]["message"]["tool_calls"][0]["id"] = json!("call_0");
        assert_eq!(
            out,
            json!({"id": "chatcmpl-r1", "object": "chat.completion", "created": 0, "model": "gemini-up-001",
                "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "ok", "reasoning_content": "plan",
                    "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18,
                    "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 5}}})
        );
        let blocked =
            response_to_openai(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), "m");
        assert_eq!(blocked["choices"][0]["finish_reason"], "content_filter");
    }

    #[test]
    fn gemini_stream_items_become_pivot_chunks_with_the_last_usage() {
        let mut s = UpstreamStream::new("gemini-up");
        let mut chunks = Vec::new();
        for item in [
            json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}], "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 1}}),
            json!({"candidates": [{"content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 6}}),
        ] {
            chunks.extend(s.item(&item).expect("no error"));
        }
        let id = chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(id.starts_with("call_") && id.ends_with("_0"), "{id}");
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"] = json!("call_0");
        let deltas: Vec<(Value, Value)> = chunks
            .iter()
            .map(|c| {
                (
                    c["choices"][0]["delta"].clone(),
                    c["choices"][0]["finish_reason"].clone(),
                )
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                (json!({"role": "assistant", "content": ""}), Value::Null),
                (json!({"content": "Hel"}), Value::Null),
                (json!({"content": "lo"}), Value::Null),
                (
                    json!({"tool_calls": [{"index": 0, "id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
                    Value::Null
                ),
                (json!({}), json!("tool_calls")),
            ]
        );
        assert!(
            chunks.iter().all(|c| c.get("usage").is_none()),
            "running totals are not usage chunks"
        );
        let last = s.finish().expect("a usage chunk");
        assert_eq!(
            (
                last["usage"]["prompt_tokens"].as_i64(),
                last["usage"]["completion_tokens"].as_i64()
            ),
            (Some(4), Some(6))
        );
        assert_eq!(last["choices"], json!([]));
        assert!(
            s.item(&json!({"error": {"code": 500, "message": "boom"}}))
                .is_err()
        );
    }

    #[test]
    fn client_fields_without_a_pivot_place_are_refused_or_mapped() {
        let base = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
        for (field, value, named) in [
            ("safetySettings", json!([]), "safetySettings"),
            ("cachedContent", json!("c/1"), "cachedContent"),
            (
                "generationConfig",
                json!({"topK": 3}),
                "generationConfig.topK",
            ),
            (
                "generationConfig",
                json!({"responseModalities": ["AUDIO"]}),
                "generationConfig.responseModalities",
            ),
        ] {
            let mut req = base.clone();
            req[field] = value;
            let err = request_to_openai(&req, "m", false).expect_err(named);
            assert_eq!(
                err.details().map(|d| d["field"].clone()),
                Some(json!(named))
            );
        }
        let mut req = base.clone();
        req["toolConfig"] =
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}});
        req["generationConfig"] = json!({"responseMimeType": "application/json", "seed": 3});
        let out = request_to_openai(&req, "m", false).expect("mapped");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        assert_eq!(out["seed"], 3);
    }

    #[test]
    fn thinking_budgets_are_carried_as_efforts_and_back() {
        let req = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": 2000, "includeThoughts": true}}});
        let pivot = request_to_openai(&req, "m", false).expect("carried");
        assert_eq!(pivot["reasoning_effort"], "low");
        let back = request_from_openai(&pivot).expect("carried back");
        assert_eq!(
            back["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 2048, "includeThoughts": true})
        );
        let bad = json!({"model": "m", "reasoning_effort": "extreme", "messages": [{"role": "user", "content": "hi"}]});
        assert!(request_from_openai(&bad).is_err());
    }
}
