//! Typed events for in-process callers, read from the pivot's stream chunks (OpenAI
//! `chat.completion.chunk`s): the relay parses each chunk once, and callers never see SSE.

use serde_json::Value;
use skein_core::api::{ChatEvent, TokenUsage, ToolCallDelta};

/// The events one pivot chunk carries, for its first choice: reasoning, text, tool-call
/// pieces, the finish reason, then the usage.
pub(super) fn from_chunk(chunk: &Value) -> Vec<ChatEvent> {
    let mut events = Vec::new();
    let choice = chunk["choices"]
        .as_array()
        .and_then(|choices| {
            choices
                .iter()
                .find(|c| c["index"].as_u64().unwrap_or(0) == 0)
        })
        .unwrap_or(&Value::Null);
    let delta = &choice["delta"];
    // Vendors behind OpenAI-compatible APIs name reasoning either way.
    for field in ["reasoning_content", "reasoning"] {
        if let Some(text) = delta[field].as_str().filter(|s| !s.is_empty()) {
            events.push(ChatEvent::Reasoning(text.to_string()));
        }
    }
    if let Some(text) = delta["content"].as_str().filter(|s| !s.is_empty()) {
        events.push(ChatEvent::Delta(text.to_string()));
    }
    for (position, call) in delta["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let index = call["index"]
            .as_u64()
            .or_else(|| u64::try_from(position).ok())
            .and_then(|i| u32::try_from(i).ok())
            .unwrap_or(0);
        events.push(ChatEvent::ToolCallDelta(ToolCallDelta {
            index,
            id: text(&call["id"]),
            name: text(&call["function"]["name"]),
            arguments: call["function"]["arguments"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }));
    }
    if let Some(reason) = choice["finish_reason"].as_str() {
        events.push(ChatEvent::Finish(reason.to_string()));
    }
    if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
        let int = |v: &Value| v.as_i64().unwrap_or(0);
        events.push(ChatEvent::Usage(TokenUsage {
            prompt_tokens: int(&usage["prompt_tokens"]),
            completion_tokens: int(&usage["completion_tokens"]),
            cached_tokens: int(&usage["prompt_tokens_details"]["cached_tokens"]),
        }));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_chunk_becomes_typed_events_in_order() {
        let chunk = json!({"choices": [{"index": 0, "delta": {
            "reasoning_content": "think", "content": "Hi",
            "tool_calls": [{"index": 1, "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"ci"}}]},
            "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": 2}}});
        assert_eq!(
            from_chunk(&chunk),
            vec![
                ChatEvent::Reasoning("think".into()),
                ChatEvent::Delta("Hi".into()),
                ChatEvent::ToolCallDelta(ToolCallDelta {
                    index: 1,
                    id: Some("call_1".into()),
                    name: Some("get_weather".into()),
                    arguments: "{\"ci".into(),
                }),
                ChatEvent::Finish("tool_calls".into()),
                ChatEvent::Usage(TokenUsage {
                    prompt_tokens: 7,
                    completion_tokens: 3,
                    cached_tokens: 2,
                }),
            ]
        );
    }

    #[test]
    fn later_pieces_of_a_call_carry_only_arguments_and_other_choices_are_left_out() {
        let chunk = json!({"choices": [
            {"index": 1, "delta": {"content": "second answer"}},
            {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\"}"}}]}}]});
        assert_eq!(
            from_chunk(&chunk),
            vec![ChatEvent::ToolCallDelta(ToolCallDelta {
                index: 0,
                id: None,
                name: None,
                arguments: "ty\"}".into(),
            })]
        );
        // A usage-only chunk, and an empty one.
        assert_eq!(
            from_chunk(
                &json!({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
            ),
            vec![ChatEvent::Usage(TokenUsage {
                prompt_tokens: 1,
                completion_tokens: 2,
                cached_tokens: 0
            })]
        );
        assert!(
            from_chunk(&json!({"choices": [{"index": 0, "delta": {"content": ""}}]})).is_empty()
        );
    }
}
