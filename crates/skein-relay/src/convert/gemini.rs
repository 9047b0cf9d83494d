//! Gemini `generateContent` ⇄ OpenAI chat completions: requests, whole responses, and stream
//! chunks (each OpenAI chunk becomes one `GenerateContentResponse`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use skein_core::{ApiError, ApiResult};

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
    let config = &req["generationConfig"];
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
            tools.push(json!({"type": "function", "function": {"name": f["name"], "description": f.get("description").cloned().unwrap_or(Value::Null),
                "parameters": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))}}));
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
    let mut meta = json!({"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion});
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
}
