//! The Anthropic conversions, on representative inputs.

use serde_json::{Value, json};

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
    out += &c.chunk(
        &json!({"id": "chatcmpl-1", "choices": [{"delta": {"role": "assistant", "content": ""}}]}),
    );
    out += &c.chunk(&json!({"choices": [{"delta": {"content": "Hel"}}]}));
    out += &c.chunk(&json!({"choices": [{"delta": {"content": "lo"}}]}));
    out += &c.chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": ""}}]}}]}));
    out += &c.chunk(&json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}}]}));
    out += &c.chunk(&json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}));
    out += &c.chunk(&json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}));
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
fn a_history_of_tool_calls_without_tools_declares_them_and_forbids_new_calls() {
    let pivot = json!({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}},
            {"id": "call_3", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
        {"role": "tool", "tool_call_id": "call_3", "content": "none"},
        {"role": "assistant", "content": "Sunny in Paris."},
        {"role": "user", "content": "thanks"}]});
    let out = request_from_openai(&pivot).expect("convert");
    assert_eq!(
        out["tools"],
        json!([{"name": "weather", "input_schema": {"type": "object"}},
            {"name": "web_search", "input_schema": {"type": "object"}}])
    );
    assert_eq!(out["tool_choice"], json!({"type": "none"}));
    // An empty list offers none either.
    let mut empty = pivot.clone();
    empty["tools"] = json!([]);
    assert_eq!(
        request_from_openai(&empty).expect("convert")["tools"],
        out["tools"]
    );

    // Tools the request offers are sent as they are, with its choice.
    let mut offered = pivot.clone();
    offered["tools"] = json!([{"type": "function", "function": {"name": "weather"}}]);
    let out = request_from_openai(&offered).expect("convert");
    assert_eq!(
        out["tools"],
        json!([{"name": "weather", "input_schema": {"type": "object"}}])
    );
    assert!(out.get("tool_choice").is_none(), "{out}");

    // No tool calls, nothing declared.
    let plain = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let out = request_from_openai(&plain).expect("convert");
    assert!(
        out.get("tools").is_none() && out.get("tool_choice").is_none(),
        "{out}"
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
    let err = s.event(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
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
