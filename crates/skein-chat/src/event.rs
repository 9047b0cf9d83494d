//! An answer's events: what a generation emits ([`Event`]), how each is written as an SSE
//! frame ([`sse`]), and how it travels between instances ([`Live`]). Below both `generate`,
//! which emits and forwards them, and `live`, which relays them to clients attached
//! elsewhere, so neither depends on the other for them.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Events a stream of one answer carries, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// More answer text.
    Delta(String),
    /// More reasoning text.
    Reasoning(String),
    /// What the answer used and cost.
    Usage(Value),
    /// The saved message, finished.
    Done(Value),
    /// Why the answer failed.
    Error(Value),
    /// The conversation's new title.
    Title(String),
    /// The model called a tool (`id`, `name`, `arguments`); its result follows.
    ToolCall(Value),
    /// What a tool answered (`id`, `name`, `content`, `is_error`).
    ToolResult(Value),
    /// A tool call waits for the user's approval (`id`, `name`, `arguments`, `message_id`,
    /// `timeout_secs`); it runs once approved through `POST /chat/messages/{message_id}/
    /// tool-calls/{id}/approve`.
    ToolApproval(Value),
    /// How a running tool call goes (`id`, `name`, `stage` or `text`).
    ToolProgress(Value),
    /// Nothing more will come.
    End,
}

impl Event {
    /// The event's SSE name and data; `None` for the end marker. The one mapping both the
    /// frames sent to clients and the events forwarded to other instances are written from.
    fn named(&self) -> Option<(&'static str, Value)> {
        Some(match self {
            Event::Delta(text) => ("delta", json!({ "content": text })),
            Event::Reasoning(text) => ("reasoning", json!({ "content": text })),
            Event::Usage(usage) => ("usage", usage.clone()),
            Event::Done(message) => ("done", json!({ "message": message })),
            Event::Error(error) => ("error", error.clone()),
            Event::Title(title) => ("title", json!({ "title": title })),
            Event::ToolCall(call) => ("tool_call", call.clone()),
            Event::ToolResult(result) => ("tool_result", result.clone()),
            Event::ToolApproval(approval) => ("tool_approval", approval.clone()),
            Event::ToolProgress(progress) => ("tool_progress", progress.clone()),
            Event::End => return None,
        })
    }

    /// The event's SSE name and data as owned values, for forwarding; `None` for the end.
    pub(crate) fn named_owned(&self) -> Option<(String, Value)> {
        self.named().map(|(name, data)| (name.to_string(), data))
    }

    /// The event as an SSE frame; `None` for the end marker.
    pub fn frame(&self) -> Option<Bytes> {
        self.named().map(|(name, data)| sse(name, &data))
    }
}

/// One SSE frame.
pub fn sse(event: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// An answer's event as forwarded between instances.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Live {
    /// The text so far; everything forwarded after it is new. `finished`: the answer is done,
    /// read the saved message.
    Snapshot {
        /// Answer text so far.
        content: String,
        /// Reasoning so far.
        reasoning: String,
        /// The answer is finished.
        finished: bool,
        /// The tool steps so far, as SSE event names and data, to send after the text.
        #[serde(default)]
        tools: Vec<(String, Value)>,
    },
    /// Any other event of the answer, as its SSE event name and data; `None` for the end.
    Event {
        /// The SSE event name and data, `None` for the end of the answer.
        frame: Option<(String, Value)>,
    },
}

impl From<&Event> for Live {
    fn from(event: &Event) -> Live {
        Live::Event {
            frame: event.named_owned(),
        }
    }
}
