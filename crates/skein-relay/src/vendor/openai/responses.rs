//! OpenAI's Responses API as a client format (`POST /v1/responses`): a request's `input` items,
//! `instructions`, function tools and options to the pivot (chat completions), and the pivot's
//! answer back as a `response` object or as the Responses stream's typed events
//! (`response.created` … `response.completed`). Upstreams of every kind serve it through the
//! pivot. Stored state (`store`, `previous_response_id`, `background`) is the relay's own
//! ([`crate::responses`]): the handler puts a stored conversation's items in front of the new
//! input before this conversion reads it. OpenAI's Conversations API and item references are
//! refused by name.

use serde_json::{Map, Value, json};
use skein_core::{ApiError, ApiResult};

use crate::errors;
use crate::vendor::pivot;

/// Top-level request fields this conversion reads; any other is refused by name, so a client
/// learns what was not honoured instead of getting an answer to a different question.
const KNOWN: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "reasoning",
    "text",
    "stream",
    "stream_options",
    "store",
    "previous_response_id",
    "background",
    "conversation",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "include",
    "truncation",
    "service_tier",
];

/// Converts a Responses request to the pivot (an OpenAI chat-completions request).
pub fn request_to_openai(req: &Value) -> ApiResult<Value> {
    let obj = req.as_object().ok_or_else(|| {
        errors::invalid_responses_field(
            "body",
            "the request must be a JSON object.",
            "请求必须是 JSON 对象。",
        )
    })?;
    if let Some(field) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unsupported_field",
            format!("{field} is not supported by this server's Responses API. Leave it out."),
            format!("本服务器的 Responses API 不支持 {field}，请去掉该字段。"),
        )
        .with_details(json!({ "field": field })));
    }
    // `store`, `background` and `previous_response_id` were resolved by the handler (the
    // stored items already lead `input`); they do not reach the upstream.
    if obj.get("conversation").is_some_and(|v| !v.is_null()) {
        return Err(errors::no_conversations());
    }
    let mut out = Map::new();
    if let Some(model) = obj.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            messages.push(json!({"role": "system", "content": text}));
        }
        Some(_) => {
            return Err(errors::invalid_responses_field(
                "instructions",
                "must be a string.",
                "必须是字符串。",
            ));
        }
    }
    match obj.get("input") {
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, i, &mut messages)?;
            }
        }
        _ => {
            return Err(errors::invalid_responses_field(
                "input",
                "must be a string or an array of input items.",
                "必须是字符串或输入项数组。",
            ));
        }
    }
    if messages.is_empty() {
        return Err(errors::invalid_responses_field(
            "input",
            "must not be empty.",
            "不能为空。",
        ));
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = obj.get("tools").filter(|t| !t.is_null()) {
        let tools = tools.as_array().ok_or_else(|| {
            errors::invalid_responses_field("tools", "must be an array.", "必须是数组。")
        })?;
        let converted = tools.iter().map(tool).collect::<ApiResult<Vec<_>>>()?;
        if !converted.is_empty() {
            out.insert("tools".into(), Value::Array(converted));
        }
    }
    if let Some(choice) = obj.get("tool_choice").filter(|t| !t.is_null()) {
        out.insert("tool_choice".into(), tool_choice(choice)?);
    }
    if let Some(parallel) = obj.get("parallel_tool_calls").filter(|t| !t.is_null()) {
        if !parallel.is_boolean() {
            return Err(errors::invalid_responses_field(
                "parallel_tool_calls",
                "must be true or false.",
                "必须是 true 或 false。",
            ));
        }
        out.insert("parallel_tool_calls".into(), parallel.clone());
    }
    if let Some(max) = obj.get("max_output_tokens").filter(|t| !t.is_null()) {
        let n = max.as_i64().filter(|n| *n > 0).ok_or_else(|| {
            errors::invalid_responses_field(
                "max_output_tokens",
                "must be a positive integer.",
                "必须是正整数。",
            )
        })?;
        // The field the model's chat endpoint takes (reasoning models refuse `max_tokens`).
        let name = obj.get("model").and_then(Value::as_str).unwrap_or("");
        let name = name.rsplit('/').next().unwrap_or(name);
        let field = if ["o1", "o3", "o4", "gpt-5"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        out.insert(field.into(), json!(n));
    }
    for field in ["temperature", "top_p"] {
        if let Some(v) = obj.get(field).filter(|t| !t.is_null()) {
            if !v.is_number() {
                return Err(errors::invalid_responses_field(
                    field,
                    "must be a number.",
                    "必须是数字。",
                ));
            }
            out.insert(field.into(), v.clone());
        }
    }
    if let Some(effort) = obj
        .get("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|e| !e.is_null())
    {
        let effort = effort
            .as_str()
            .filter(|e| pivot::budget_for_effort(e).is_some())
            .ok_or_else(|| {
                errors::invalid_responses_field(
                    "reasoning.effort",
                    "must be one of none, minimal, low, medium, high.",
                    "必须是 none、minimal、low、medium、high 之一。",
                )
            })?;
        out.insert("reasoning_effort".into(), json!(effort));
    }
    if let Some(text) = obj.get("text").filter(|t| !t.is_null()) {
        if let Some(format) = text.get("format").filter(|f| !f.is_null())
            && let Some(format) = response_format(format)?
        {
            out.insert("response_format".into(), format);
        }
        if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
            out.insert("verbosity".into(), verbosity.clone());
        }
    }
    // `prompt_cache_key` and `safety_identifier` are OpenAI's hints, which other vendors'
    // conversions refuse: they are read and dropped, so a client that sends them (Codex does)
    // works on every upstream; OpenAI then caches by prefix alone.
    for field in ["user", "service_tier"] {
        if let Some(v) = obj.get(field).filter(|t| !t.is_null()) {
            out.insert(field.into(), v.clone());
        }
    }
    if let Some(stream) = obj.get("stream").filter(|t| !t.is_null()) {
        if !stream.is_boolean() {
            return Err(errors::invalid_responses_field(
                "stream",
                "must be true or false.",
                "必须是 true 或 false。",
            ));
        }
        out.insert("stream".into(), stream.clone());
    }
    Ok(Value::Object(out))
}

/// A request's `input` as the items OpenAI lists for a stored response: a string becomes one
/// user message, a message's string content becomes one text part, and every item without an
/// `id` gets one. Items are checked when the request is converted, not here.
pub fn input_items(req: &Value) -> Vec<Value> {
    match req.get("input") {
        Some(Value::String(text)) => vec![json!({"type": "message", "id": new_id("msg"),
            "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": text}]})],
        Some(Value::Array(items)) => items.iter().map(stored_item).collect(),
        _ => Vec::new(),
    }
}

/// One input item in its stored shape (see [`input_items`]).
fn stored_item(item: &Value) -> Value {
    let mut item = item.clone();
    let Some(obj) = item.as_object_mut() else {
        return item;
    };
    let kind = match obj.get("type").and_then(Value::as_str) {
        Some(kind) => kind.to_string(),
        None if obj.contains_key("role") => {
            obj.insert("type".into(), json!("message"));
            "message".into()
        }
        None => String::new(),
    };
    if kind == "message"
        && let Some(Value::String(text)) = obj.get("content")
    {
        let part = if obj.get("role").and_then(Value::as_str) == Some("assistant") {
            "output_text"
        } else {
            "input_text"
        };
        let content = json!([{"type": part, "text": text}]);
        obj.insert("content".into(), content);
    }
    if !obj.contains_key("id") {
        let prefix = match kind.as_str() {
            "message" => "msg",
            "function_call" => "fc",
            "function_call_output" => "fco",
            "reasoning" => "rs",
            _ => "item",
        };
        obj.insert("id".into(), json!(new_id(prefix)));
    }
    item
}

/// The request to convert when it continues a stored conversation: `history` (each earlier
/// turn's input items and output, oldest first) and then this turn's `items` as its `input`.
/// Earlier instructions are not carried over, as OpenAI documents: only this request's.
pub fn with_history(req: &Value, history: Vec<Value>, items: &[Value]) -> Value {
    let mut out = req.clone();
    if let Some(obj) = out.as_object_mut() {
        let mut input = history;
        input.extend(items.iter().cloned());
        obj.insert("input".into(), Value::Array(input));
    }
    out
}

/// Appends the pivot message(s) for one input item. Consecutive `function_call` items join
/// one assistant message (its `tool_calls`), as chat completions expects.
fn input_item(item: &Value, i: usize, messages: &mut Vec<Value>) -> ApiResult<()> {
    let field = format!("input[{i}]");
    let kind = item["type"]
        .as_str()
        .unwrap_or(if item.get("role").is_some() {
            "message"
        } else {
            ""
        });
    match kind {
        "message" => {
            let role = match item["role"].as_str() {
                Some(r @ ("user" | "assistant" | "system")) => r,
                Some("developer") => "system",
                _ => {
                    return Err(errors::invalid_responses_field(
                        &format!("{field}.role"),
                        "must be user, assistant, system or developer.",
                        "必须是 user、assistant、system 或 developer。",
                    ));
                }
            };
            let content = message_content(&item["content"], role, &field)?;
            messages.push(json!({"role": role, "content": content}));
        }
        "function_call" => {
            let (Some(call_id), Some(name)) = (item["call_id"].as_str(), item["name"].as_str())
            else {
                return Err(errors::invalid_responses_field(
                    &field,
                    "a function_call needs call_id and name.",
                    "function_call 需要 call_id 和 name。",
                ));
            };
            let arguments = item["arguments"].as_str().unwrap_or("{}");
            let call = json!({"id": call_id, "type": "function",
                "function": {"name": name, "arguments": arguments}});
            // Joins the assistant message just before it (its text, or earlier calls).
            if let Some(last) = messages.last_mut()
                && last["role"] == "assistant"
            {
                if let Some(calls) = last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                    calls.push(call);
                } else if let Some(obj) = last.as_object_mut() {
                    obj.insert("tool_calls".into(), json!([call]));
                }
                return Ok(());
            }
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
        }
        "function_call_output" => {
            let Some(call_id) = item["call_id"].as_str() else {
                return Err(errors::invalid_responses_field(
                    &field,
                    "a function_call_output needs call_id.",
                    "function_call_output 需要 call_id。",
                ));
            };
            let output = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .map(|p| match p["type"].as_str() {
                        Some("input_text" | "output_text") => {
                            Ok(p["text"].as_str().unwrap_or("").to_string())
                        }
                        other => Err(errors::unsupported_item(other.unwrap_or("unknown"))),
                    })
                    .collect::<ApiResult<Vec<_>>>()?
                    .join("\n"),
                _ => {
                    return Err(errors::invalid_responses_field(
                        &format!("{field}.output"),
                        "must be a string.",
                        "必须是字符串。",
                    ));
                }
            };
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        // Reasoning a model wrote earlier: chat completions has no place to send it back, and
        // its encrypted form only means something to the model that wrote it.
        "reasoning" => {}
        "item_reference" => return Err(errors::unsupported_item("item_reference")),
        "" => {
            return Err(errors::invalid_responses_field(
                &field,
                "every input item needs a type (or a role for a message).",
                "每个输入项都需要 type（消息需要 role）。",
            ));
        }
        other => return Err(errors::unsupported_item(other)),
    }
    Ok(())
}

/// A message's content as the pivot's: a string, or parts (text, images).
fn message_content(content: &Value, role: &str, field: &str) -> ApiResult<Value> {
    match content {
        Value::String(s) => Ok(json!(s)),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("input_text" | "output_text" | "text") => {
                        out.push(
                            json!({"type": "text", "text": part["text"].as_str().unwrap_or("")}),
                        );
                    }
                    Some("refusal") => {
                        out.push(
                            json!({"type": "text", "text": part["refusal"].as_str().unwrap_or("")}),
                        );
                    }
                    Some("input_image") if role == "user" => {
                        let Some(url) = part["image_url"].as_str() else {
                            // A file id needs the OpenAI Files API behind it.
                            return Err(errors::unsupported_item("input_image with file_id"));
                        };
                        let mut image = json!({"url": url});
                        if let Some(detail) = part["detail"].as_str() {
                            image["detail"] = json!(detail);
                        }
                        out.push(json!({"type": "image_url", "image_url": image}));
                    }
                    Some(other) => return Err(errors::unsupported_item(other)),
                    None => {
                        return Err(errors::invalid_responses_field(
                            &format!("{field}.content"),
                            "every content part needs a type.",
                            "每个内容部分都需要 type。",
                        ));
                    }
                }
            }
            // Assistant history and system prompts travel as plain text, which every upstream
            // takes.
            if role != "user" {
                return Ok(json!(
                    pivot::plain_text(&Value::Array(out)).unwrap_or_default()
                ));
            }
            Ok(Value::Array(out))
        }
        _ => Err(errors::invalid_responses_field(
            &format!("{field}.content"),
            "must be a string or an array of content parts.",
            "必须是字符串或内容部分数组。",
        )),
    }
}

/// A Responses tool as the pivot's (function tools only).
fn tool(tool: &Value) -> ApiResult<Value> {
    match tool["type"].as_str() {
        Some("function") => {
            let name = tool["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    errors::invalid_responses_field(
                        "tools",
                        "a function tool needs a name.",
                        "function 工具需要 name。",
                    )
                })?;
            let mut function = json!({"name": name});
            for field in ["description", "parameters", "strict"] {
                if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
                    function[field] = v.clone();
                }
            }
            Ok(json!({"type": "function", "function": function}))
        }
        Some(other) => Err(errors::unsupported_tool(other)),
        None => Err(errors::invalid_responses_field(
            "tools",
            "every tool needs a type.",
            "每个工具都需要 type。",
        )),
    }
}

/// A Responses `tool_choice` as the pivot's.
fn tool_choice(choice: &Value) -> ApiResult<Value> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "auto" | "none" | "required") => {
            Ok(choice.clone())
        }
        Value::Object(_) if choice["type"] == "function" => {
            let name = choice["name"].as_str().ok_or_else(|| {
                errors::invalid_responses_field(
                    "tool_choice",
                    "a function choice needs a name.",
                    "function 选择需要 name。",
                )
            })?;
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        Value::Object(_) => Err(errors::unsupported_tool(
            choice["type"].as_str().unwrap_or("unknown"),
        )),
        _ => Err(errors::invalid_responses_field(
            "tool_choice",
            "must be auto, none, required or a function.",
            "必须是 auto、none、required 或指定的 function。",
        )),
    }
}

/// `text.format` as the pivot's `response_format` (`None` for plain text).
fn response_format(format: &Value) -> ApiResult<Option<Value>> {
    match format["type"].as_str() {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let name = format["name"].as_str().unwrap_or("response");
            let Some(schema) = format.get("schema").filter(|s| s.is_object()) else {
                return Err(errors::invalid_responses_field(
                    "text.format.schema",
                    "a json_schema format needs a schema object.",
                    "json_schema 格式需要 schema 对象。",
                ));
            };
            let mut inner = json!({"name": name, "schema": schema});
            for field in ["strict", "description"] {
                if let Some(v) = format.get(field).filter(|v| !v.is_null()) {
                    inner[field] = v.clone();
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": inner})))
        }
        _ => Err(errors::invalid_responses_field(
            "text.format.type",
            "must be text, json_object or json_schema.",
            "必须是 text、json_object 或 json_schema。",
        )),
    }
}

/// A new item or response id with OpenAI's prefix (`resp`, `msg`, `fc`, `rs`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", skein_core::ids::new_id().replace('-', ""))
}

/// The `response` object before any output: what the request asked, echoed as OpenAI does.
/// `request` is the client's request as the answer echoes it: the handler has set `id` (the
/// id the response is stored under) and the `store`, `background` and
/// `previous_response_id` it resolved.
pub fn skeleton(request: &Value, model: &str) -> Value {
    let tools = request["tools"].as_array().cloned().unwrap_or_default();
    let id = request["id"]
        .as_str()
        .map_or_else(|| new_id("resp"), str::to_string);
    json!({
        "id": id,
        "object": "response",
        "created_at": pivot::now_secs(),
        "status": "in_progress",
        "background": request["background"].as_bool().unwrap_or(false),
        "error": null,
        "incomplete_details": null,
        "instructions": request.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": request.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "metadata": request.get("metadata").filter(|m| m.is_object()).cloned().unwrap_or_else(|| json!({})),
        "model": model,
        "output": [],
        "parallel_tool_calls": request["parallel_tool_calls"].as_bool().unwrap_or(true),
        "previous_response_id": request.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "reasoning": {"effort": request["reasoning"].get("effort").cloned().unwrap_or(Value::Null), "summary": null},
        "store": request["store"].as_bool().unwrap_or(false),
        "temperature": request.get("temperature").cloned().unwrap_or(Value::Null),
        "text": {"format": request["text"].get("format").cloned().unwrap_or_else(|| json!({"type": "text"}))},
        "tool_choice": request.get("tool_choice").cloned().unwrap_or_else(|| json!("auto")),
        "tools": tools,
        "top_p": request.get("top_p").cloned().unwrap_or(Value::Null),
        "truncation": "disabled",
        "usage": null,
        "user": request.get("user").cloned().unwrap_or(Value::Null),
    })
}

/// The Responses `usage` of a pivot usage object.
pub fn usage(u: &Value) -> Value {
    let input = u["prompt_tokens"].as_i64().unwrap_or(0);
    let output = u["completion_tokens"].as_i64().unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u["prompt_tokens_details"]["cached_tokens"].as_i64().unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u["completion_tokens_details"]["reasoning_tokens"].as_i64().unwrap_or(0)},
        "total_tokens": u["total_tokens"].as_i64().unwrap_or(input + output),
    })
}

/// Sets a response's final status from the pivot's finish reason.
fn finish(response: &mut Value, finish_reason: Option<&str>) {
    let (status, reason) = match finish_reason {
        Some("length") => ("incomplete", Some("max_output_tokens")),
        Some("content_filter") => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    };
    response["status"] = json!(status);
    response["incomplete_details"] = reason.map_or(Value::Null, |r| json!({"reason": r}));
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [],
        "content": [{"type": "reasoning_text", "text": text}]})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
        "arguments": arguments, "status": status})
}

/// A whole pivot chat completion as a `response` object; `request` is the client's Responses
/// request (echoed), `model` the model the client named.
pub fn response_from_openai(chat: &Value, request: &Value, model: &str) -> Value {
    let mut response = skeleton(request, model);
    let choice = &chat["choices"][0];
    let message = &choice["message"];
    let mut output = Vec::new();
    if let Some(reasoning) = message["reasoning_content"]
        .as_str()
        .filter(|t| !t.is_empty())
    {
        output.push(reasoning_item(&new_id("rs"), reasoning));
    }
    let text = pivot::plain_text(&message["content"]).unwrap_or_default();
    if let Some(refusal) = message["refusal"].as_str().filter(|t| !t.is_empty()) {
        output.push(json!({"type": "message", "id": new_id("msg"), "status": "completed", "role": "assistant",
            "content": [{"type": "refusal", "refusal": refusal}]}));
    } else if !text.is_empty() {
        output.push(message_item(&new_id("msg"), &text, "completed"));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        output.push(call_item(
            &new_id("fc"),
            call["id"].as_str().unwrap_or(""),
            call["function"]["name"].as_str().unwrap_or(""),
            call["function"]["arguments"].as_str().unwrap_or(""),
            "completed",
        ));
    }
    response["output"] = Value::Array(output);
    finish(&mut response, choice["finish_reason"].as_str());
    response["usage"] = usage(&chat["usage"]);
    response
}

/// What is being written into the stream's current output item.
enum Open {
    None,
    Reasoning {
        index: usize,
        id: String,
        text: String,
    },
    Text {
        index: usize,
        id: String,
        text: String,
    },
}

/// A function call being streamed.
struct Call {
    /// Its `tool_calls[].index` in the pivot's deltas.
    pivot_index: i64,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
}

/// Turns a stream of pivot chunks into the Responses stream's events: `response.created`,
/// `response.in_progress`, then per output item `response.output_item.added`, its deltas
/// (`response.output_text.delta`, `response.reasoning_text.delta`,
/// `response.function_call_arguments.delta`), its `.done` events and
/// `response.output_item.done`, and at the end `response.completed` (or
/// `response.incomplete`) with the usage.
pub struct StreamConverter {
    response: Value,
    started: bool,
    sequence: u64,
    /// Finished items with their output index (a text after a still-open call closes first).
    output: Vec<(usize, Value)>,
    open: Open,
    calls: Vec<Call>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl StreamConverter {
    /// A converter for the client's Responses `request`, answering as `model`.
    pub fn new(request: &Value, model: &str) -> Self {
        StreamConverter {
            response: skeleton(request, model),
            started: false,
            sequence: 0,
            output: Vec::new(),
            open: Open::None,
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// The response's id.
    pub fn id(&self) -> &str {
        self.response["id"].as_str().unwrap_or("")
    }

    fn event(&mut self, mut data: Value, out: &mut String) {
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        let kind = data["type"].as_str().unwrap_or("").to_string();
        out.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
    }

    fn start(&mut self, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.response.clone();
        self.event(
            json!({"type": "response.created", "response": response}),
            out,
        );
        let response = self.response.clone();
        self.event(
            json!({"type": "response.in_progress", "response": response}),
            out,
        );
    }

    fn next_index(&self) -> usize {
        self.output.len() + self.calls.len() + usize::from(!matches!(self.open, Open::None))
    }

    fn close_open(&mut self, out: &mut String) {
        match std::mem::replace(&mut self.open, Open::None) {
            Open::None => {}
            Open::Reasoning { index, id, text } => {
                self.event(
                    json!({"type": "response.reasoning_text.done", "item_id": id,
                    "output_index": index, "content_index": 0, "text": text}),
                    out,
                );
                let item = reasoning_item(&id, &text);
                self.event(json!({"type": "response.output_item.done", "output_index": index, "item": item}), out);
                self.output.push((index, item));
            }
            Open::Text { index, id, text } => {
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                self.event(
                    json!({"type": "response.output_text.done", "item_id": id,
                    "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                    out,
                );
                self.event(
                    json!({"type": "response.content_part.done", "item_id": id,
                    "output_index": index, "content_index": 0, "part": part}),
                    out,
                );
                let item = message_item(&id, &text, "completed");
                self.event(json!({"type": "response.output_item.done", "output_index": index, "item": item}), out);
                self.output.push((index, item));
            }
        }
    }

    /// The finished items in output order.
    fn take_output(&mut self) -> Value {
        let mut output = std::mem::take(&mut self.output);
        output.sort_by_key(|(index, _)| *index);
        Value::Array(output.into_iter().map(|(_, item)| item).collect())
    }

    fn close_calls(&mut self, out: &mut String) {
        for call in std::mem::take(&mut self.calls) {
            self.event(
                json!({"type": "response.function_call_arguments.done", "item_id": call.id,
                "output_index": call.output_index, "name": call.name, "arguments": call.arguments}),
                out,
            );
            let item = call_item(
                &call.id,
                &call.call_id,
                &call.name,
                &call.arguments,
                "completed",
            );
            self.event(json!({"type": "response.output_item.done", "output_index": call.output_index, "item": item}), out);
            self.output.push((call.output_index, item));
        }
    }

    /// The events for one pivot chunk.
    pub fn chunk(&mut self, chunk: &Value) -> String {
        let mut out = String::new();
        self.start(&mut out);
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage(u));
        }
        // One answer only: the Responses API has no `n`.
        let Some(choice) = chunk["choices"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["index"].as_i64().unwrap_or(0) == 0))
        else {
            return out;
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["reasoning_content"]
            .as_str()
            .filter(|t| !t.is_empty())
        {
            if !matches!(self.open, Open::Reasoning { .. }) {
                self.close_open(&mut out);
                let index = self.next_index();
                let id = new_id("rs");
                self.event(
                    json!({"type": "response.output_item.added", "output_index": index,
                    "item": {"type": "reasoning", "id": id, "summary": [], "content": []}}),
                    &mut out,
                );
                self.open = Open::Reasoning {
                    index,
                    id,
                    text: String::new(),
                };
            }
            if let Open::Reasoning {
                index,
                id,
                text: all,
            } = &mut self.open
            {
                all.push_str(text);
                let event = json!({"type": "response.reasoning_text.delta", "item_id": id,
                    "output_index": index, "content_index": 0, "delta": text});
                self.event(event, &mut out);
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if !matches!(self.open, Open::Text { .. }) {
                self.close_open(&mut out);
                let index = self.next_index();
                let id = new_id("msg");
                self.event(json!({"type": "response.output_item.added", "output_index": index,
                    "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}), &mut out);
                self.event(json!({"type": "response.content_part.added", "item_id": id, "output_index": index,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}), &mut out);
                self.open = Open::Text {
                    index,
                    id,
                    text: String::new(),
                };
            }
            if let Open::Text {
                index,
                id,
                text: all,
            } = &mut self.open
            {
                all.push_str(text);
                let event = json!({"type": "response.output_text.delta", "item_id": id,
                    "output_index": index, "content_index": 0, "delta": text, "logprobs": []});
                self.event(event, &mut out);
            }
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let pivot_index = call["index"].as_i64().unwrap_or(0);
            if !self.calls.iter().any(|c| c.pivot_index == pivot_index) {
                self.close_open(&mut out);
                let output_index = self.next_index();
                let id = new_id("fc");
                let call_id = call["id"]
                    .as_str()
                    .map_or_else(|| new_id("call"), str::to_string);
                let name = call["function"]["name"].as_str().unwrap_or("").to_string();
                self.event(
                    json!({"type": "response.output_item.added", "output_index": output_index,
                    "item": call_item(&id, &call_id, &name, "", "in_progress")}),
                    &mut out,
                );
                self.calls.push(Call {
                    pivot_index,
                    output_index,
                    id,
                    call_id,
                    name,
                    arguments: String::new(),
                });
            }
            if let Some(args) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
                && let Some(open) = self.calls.iter_mut().find(|c| c.pivot_index == pivot_index)
            {
                open.arguments.push_str(args);
                let event = json!({"type": "response.function_call_arguments.delta", "item_id": open.id,
                    "output_index": open.output_index, "delta": args});
                self.event(event, &mut out);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(reason.to_string());
        }
        out
    }

    /// The closing events once the upstream is done: every open item's `.done` events and
    /// `response.completed` (or `response.incomplete`) with the usage.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        self.start(&mut out);
        self.close_open(&mut out);
        self.close_calls(&mut out);
        self.response["output"] = self.take_output();
        finish(&mut self.response, self.finish_reason.as_deref());
        self.response["usage"] = self.usage.clone().unwrap_or(Value::Null);
        let kind = if self.response["status"] == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let response = self.response.clone();
        self.event(json!({"type": kind, "response": response}), &mut out);
        out
    }

    /// The `response` object as it stands: after [`Self::finish`] or [`Self::error`], the
    /// final one (what is stored).
    pub fn response(&self) -> &Value {
        &self.response
    }

    /// The event that ends a stream whose upstream broke off: `response.failed`.
    pub fn error(&mut self, message: &str) -> String {
        let mut out = String::new();
        self.start(&mut out);
        self.close_open(&mut out);
        self.close_calls(&mut out);
        self.response["output"] = self.take_output();
        self.response["status"] = json!("failed");
        self.response["error"] = json!({"code": "server_error", "message": message});
        self.response["usage"] = self.usage.clone().unwrap_or(Value::Null);
        let response = self.response.clone();
        self.event(
            json!({"type": "response.failed", "response": response}),
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_become_chat_messages() {
        let req = json!({"model": "m", "instructions": "be brief",
            "input": [
                {"role": "user", "content": "weather?"},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]}
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "max_output_tokens": 50, "reasoning": {"effort": "low"},
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}}});
        let pivot = request_to_openai(&req).unwrap_or_default();
        let messages = pivot["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(messages.len(), 5);
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": "be brief"})
        );
        assert_eq!(messages[2]["tool_calls"].as_array().map(Vec::len), Some(2));
        assert_eq!(messages[3]["role"], "tool");
        assert_eq!(messages[3]["tool_call_id"], "c1");
        assert_eq!(pivot["tools"][0]["function"]["name"], "w");
        assert_eq!(pivot["tool_choice"]["function"]["name"], "w");
        assert_eq!(pivot["max_tokens"], 50);
        assert_eq!(pivot["reasoning_effort"], "low");
        assert_eq!(pivot["response_format"]["json_schema"]["strict"], true);
    }

    #[test]
    fn kept_input_items_get_ids_and_parts_and_lead_the_next_turn() {
        let items = input_items(&json!({"input": "hi"}));
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["type"], "message");
        assert_eq!(
            items[0]["content"],
            json!([{"type": "input_text", "text": "hi"}])
        );
        assert!(
            items[0]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("msg_"))
        );
        let items = input_items(&json!({"input": [
            {"role": "assistant", "content": "before"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            {"type": "message", "id": "msg_kept", "role": "user", "content": "x"}
        ]}));
        assert_eq!(items[0]["content"][0]["type"], "output_text");
        assert!(
            items[1]["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("fco_"))
        );
        assert_eq!(items[2]["id"], "msg_kept", "an id the client gave is kept");
        // The history goes first, then this turn; only this request's instructions.
        let history = vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "earlier"}]}),
            json!({"type": "message", "role": "assistant", "status": "completed", "id": "msg_a",
                "content": [{"type": "output_text", "text": "answer", "annotations": []}]}),
        ];
        let req = json!({"model": "m", "instructions": "now", "input": "next"});
        let next = with_history(&req, history, &input_items(&req));
        let pivot = request_to_openai(&next).unwrap_or_default();
        let roles: Vec<&str> = pivot["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["role"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert_eq!(pivot["messages"][2]["content"], "answer");
    }

    #[test]
    fn what_cannot_be_carried_is_refused_by_name() {
        for (req, code) in [
            (
                json!({"model": "m", "input": "x", "conversation": "conv_1"}),
                "unsupported_field",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "unsupported_content",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "unsupported_tool",
            ),
            (json!({"model": "m", "input": 3}), "invalid_request"),
            (json!({"model": "m", "input": []}), "invalid_request"),
            (
                json!({"model": "m", "input": "x", "prompt": {"id": "p"}}),
                "unsupported_field",
            ),
            (
                json!({"model": "m", "input": [{"type": "input_file", "file_id": "f"}]}),
                "unsupported_content",
            ),
        ] {
            let error = request_to_openai(&req).err().map(|e| e.code().to_string());
            assert_eq!(error.as_deref(), Some(code), "{req}");
        }
    }

    #[test]
    fn a_stream_gives_the_documented_event_order() {
        let mut c = StreamConverter::new(&json!({"model": "m"}), "m");
        let mut all = String::new();
        all.push_str(&c.chunk(&json!({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})));
        all.push_str(
            &c.chunk(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\""}}]}}]})),
        );
        all.push_str(
            &c.chunk(&json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ":1}"}}]}, "finish_reason": "tool_calls"}]})),
        );
        all.push_str(&c.chunk(&json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})));
        all.push_str(&c.finish());
        let kinds: Vec<&str> = all
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert!(all.contains("\"arguments\":\"{\\\"a\\\":1}\""));
        assert!(all.contains("\"output_tokens\":4"));
    }
}
