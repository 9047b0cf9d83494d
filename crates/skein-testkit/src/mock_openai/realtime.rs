//! OpenAI's Realtime API as a mock (`GET /v1/realtime?model=`, and Azure's
//! `/openai/realtime?deployment=`): a WebSocket session speaking the documented events:
//! `session.created` first; `session.update` → `session.updated`; `conversation.item.create` →
//! `conversation.item.created`; `input_audio_buffer.append` adds audio input; and
//! `response.create` → `response.created`, `response.output_text.delta` a word at a time,
//! `response.output_text.done` and `response.done` with its `usage`; anything else → `error`.
//!
//! Usage, in words as everywhere in the mocks: a response's input is the whole conversation so
//! far (every user text item and every earlier answer, as Realtime carries context from turn to
//! turn) plus one audio token per 100 base64 characters appended; its output is the words of
//! the answer (`echo: <last user text>`). The script's `cached_tokens` are reported cached.
//! Each response's usage is recorded ([`crate::MockVendor::usages`]).
//!
//! Faults: `Status` and `NoCredit` refuse the handshake; `DieAfter(n)` lets `n` responses
//! finish, then drops the connection in the middle of the next one (no close frame, no
//! `response.done`).

use std::collections::HashMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::OpenAi;
use crate::mock_vendor::{Fault, Script, Shared, WireFormat, words};

/// Opens a session, unless the key is wrong or a fault refuses it.
pub(super) async fn session(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let azure = query.contains_key("deployment");
    let authorized = if azure {
        shared.authorized(&headers, "api-key", "")
    } else {
        shared.authorized(&headers, "authorization", "Bearer ")
    };
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"message": "Incorrect API key provided.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})),
        )
            .into_response();
    }
    let model = query
        .get("model")
        .or_else(|| query.get("deployment"))
        .cloned()
        .unwrap_or_default();
    let admission = shared.admit(&headers, json!({"realtime": model}));
    let die_after = match admission.fault {
        Some(Fault::Status(code)) => return OpenAi::status_error(code),
        Some(Fault::NoCredit) => return OpenAi::no_credit(),
        Some(Fault::DieAfter(n)) => Some(n),
        _ => None,
    };
    let script = admission.script;
    upgrade
        .protocols(["realtime"])
        .on_upgrade(move |socket| async move {
            let mut session = Session {
                socket,
                shared,
                script,
                model,
                die_after,
                events: 0,
                context: 0,
                audio: 0,
                last_text: String::new(),
                responses: 0,
            };
            session.run().await;
        })
}

struct Session {
    socket: WebSocket,
    shared: Shared,
    script: Script,
    model: String,
    die_after: Option<usize>,
    /// Events sent, for their ids.
    events: usize,
    /// Words of the conversation so far (user texts and answers).
    context: i64,
    /// Audio input tokens appended so far.
    audio: i64,
    last_text: String,
    /// Responses finished.
    responses: usize,
}

impl Session {
    async fn send(&mut self, mut event: Value) -> bool {
        self.events += 1;
        event["event_id"] = json!(format!("event_{}", self.events));
        self.socket
            .send(Message::Text(event.to_string().into()))
            .await
            .is_ok()
    }

    async fn run(&mut self) {
        let created = json!({"type": "session.created", "session": {
            "id": "sess_mock", "object": "realtime.session", "model": self.model,
            "output_modalities": ["audio"]}});
        if !self.send(created).await {
            return;
        }
        while let Some(Ok(message)) = self.socket.recv().await {
            let text = match message {
                Message::Text(text) => text,
                Message::Close(_) => return,
                _ => continue,
            };
            let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                self.error("invalid_json", "The event is not JSON.").await;
                continue;
            };
            let sent = match event["type"].as_str().unwrap_or("") {
                "session.update" => {
                    self.send(json!({"type": "session.updated", "session": event["session"]}))
                        .await
                }
                "conversation.item.create" => {
                    let text: Vec<&str> = event["item"]["content"]
                        .as_array()
                        .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect())
                        .unwrap_or_default();
                    let text = text.join(" ");
                    self.context += words(&text);
                    self.last_text = text;
                    self.send(json!({"type": "conversation.item.created", "item": event["item"]}))
                        .await
                }
                "input_audio_buffer.append" => {
                    let chars = event["audio"].as_str().map_or(0, str::len) as i64;
                    self.audio += (chars + 99) / 100;
                    true
                }
                "response.create" => self.respond().await,
                other => {
                    let message = format!("Invalid value: '{other}'.");
                    self.error("invalid_value", &message).await
                }
            };
            if !sent {
                return;
            }
        }
    }

    async fn error(&mut self, code: &str, message: &str) -> bool {
        self.send(
            json!({"type": "error", "error": {"type": "invalid_request_error",
            "code": code, "message": message, "param": null}}),
        )
        .await
    }

    /// One response; `false` when the connection is gone (or was dropped on purpose).
    async fn respond(&mut self) -> bool {
        let id = format!("resp_{}", self.responses);
        let reply = self
            .script
            .reply
            .clone()
            .unwrap_or_else(|| format!("echo: {}", self.last_text));
        let created = json!({"type": "response.created", "response": {
            "id": id, "object": "realtime.response", "status": "in_progress"}});
        if !self.send(created).await {
            return false;
        }
        for (i, word) in reply.split_whitespace().enumerate() {
            let delta = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            let event = json!({"type": "response.output_text.delta", "response_id": id,
                "item_id": "item_answer", "output_index": 0, "content_index": 0, "delta": delta});
            if !self.send(event).await {
                return false;
            }
            if self.die_after == Some(self.responses) {
                // Gone in the middle of the answer: no close frame, no `response.done`.
                return false;
            }
        }
        let done = json!({"type": "response.output_text.done", "response_id": id,
            "item_id": "item_answer", "output_index": 0, "content_index": 0, "text": reply});
        if !self.send(done).await {
            return false;
        }
        let output = words(&reply);
        let input = self.context + self.audio;
        let cached = self.script.cached_tokens.clamp(0, input);
        let usage = json!({
            "total_tokens": input + output, "input_tokens": input, "output_tokens": output,
            "input_token_details": {"text_tokens": self.context, "audio_tokens": self.audio,
                "image_tokens": 0, "cached_tokens": cached,
                "cached_tokens_details": {"text_tokens": cached, "audio_tokens": 0, "image_tokens": 0}},
            "output_token_details": {"text_tokens": output, "audio_tokens": 0}
        });
        self.shared.record_usage(usage.clone());
        let finished = json!({"type": "response.done", "response": {
            "id": id, "object": "realtime.response", "status": "completed",
            "output": [{"id": "item_answer", "type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": reply}]}],
            "usage": usage}});
        self.responses += 1;
        self.context += output;
        self.send(finished).await
    }
}
