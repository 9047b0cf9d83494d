//! Gemini `generateContent` requests ⇄ the pivot: a client's request to an OpenAI
//! chat-completions request, and the pivot request to a Gemini body for the upstream (the
//! model and streaming go in the URL).

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use skein_core::{ApiError, ApiResult};

use crate::errors;
use crate::vendor::pivot;

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
                    _ => return Err(errors::only_native("toolConfig", "Gemini")),
                };
                out.insert("tool_choice".into(), choice);
            }
            _ => return Err(errors::only_native(field, "Gemini")),
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
                return Err(errors::only_native(
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
        return Err(errors::unsupported_content("More than one candidate"));
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
                        return Err(errors::unsupported_content(
                            "A model part other than text or functionCall",
                        ));
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
                            return Err(errors::unsupported_content(&format!(
                                "Inline data of type {mime}"
                            )));
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
                        return Err(errors::unsupported_content(
                            "A part other than text, inlineData or functionResponse",
                        ));
                    }
                }
                if !user_parts.is_empty() {
                    messages.push(json!({"role": "user", "content": user_parts}));
                }
            }
            other => return Err(errors::unsupported_content(&format!("The role {other}"))),
        }
    }
    out.insert("messages".into(), Value::Array(messages));

    let mut tools = Vec::new();
    for tool in req["tools"].as_array().into_iter().flatten() {
        let Some(declarations) = tool["functionDeclarations"]
            .as_array()
            .or_else(|| tool["function_declarations"].as_array())
        else {
            return Err(errors::unsupported_content(
                "A tool other than function declarations",
            ));
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

// ---------------------------------------------------------------------------------------------
// Upstream direction: the pivot (OpenAI chat) request to a Gemini `generateContent` request,
// and Gemini's answers (whole and streamed) back to the pivot.

const UPSTREAM: &str = "gemini";

fn carry(field: &str) -> ApiError {
    errors::cannot_carry(field, UPSTREAM)
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
