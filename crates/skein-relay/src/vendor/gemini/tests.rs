//! The Gemini conversions and adapter, on representative inputs.

use serde_json::{Value, json};

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
    let blocked = response_to_openai(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), "m");
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

#[test]
fn model_urls() {
    let u = model_url(
        "https://g.example",
        "gemini-2.5-flash",
        "streamGenerateContent",
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        u.as_str(),
        "https://g.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[test]
fn audio_in_gemini_usage_is_counted_where_openai_puts_it() {
    let usage = super::response::usage_to_openai(&json!({
        "promptTokenCount": 300, "candidatesTokenCount": 40, "totalTokenCount": 340,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 50}, {"modality": "AUDIO", "tokenCount": 250}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 40}]
    }));
    assert_eq!(usage["prompt_tokens"], 300);
    assert_eq!(usage["prompt_tokens_details"]["audio_tokens"], 250);
    assert!(
        usage["completion_tokens_details"]
            .get("audio_tokens")
            .is_none()
    );
    let tokens = crate::proxy::usage_tokens(&usage).unwrap_or_default();
    assert_eq!((tokens.audio_prompt, tokens.audio_completion), (250, 0));
}
