//! Tools the model may call while it answers (web search, code execution, image generation
//! from the Plugin service; an agent's bound plugins): the types, and where in the generation
//! loop they run. No [`ToolRunner`] is registered by default, and while none is, an answer is
//! one relay call exactly as before: no `tools` are offered and nothing below runs.
//!
//! A runner is added with `ChatService::add_tool_runner` (the Plugin service's seam); it
//! only says what it offers for a turn ([`ToolRunner::tools`]) and runs one call
//! ([`ToolRunner::run`]). Everything else is the generation loop's:
//!
//! 1. `answer.rs`, before the first call: [`Toolbox::for_turn`] asks every registered runner
//!    what it offers for the turn, and [`Toolbox::offer`] adds those tools to the request. An
//!    empty toolbox leaves the request untouched and the loop below never runs.
//! 2. `generate.rs`, while the relay's stream is read: its `ToolCallDelta` events are gathered
//!    into [`ToolCall`]s by index ([`PendingCalls`]: the id and name come first, the
//!    arguments in pieces); text and reasoning deltas still stream to the clients as they
//!    come.
//! 3. When the stream ends with `finish_reason: "tool_calls"` and calls were gathered, the
//!    clients get a `tool_call` event per call, the calls run together by [`Toolbox::run`],
//!    each within [`TOOL_DEADLINE`] and under the answer's cancellation (a stop drops the
//!    running calls), the clients get a `tool_result` event per call, and the request grows by
//!    the assistant message carrying `tool_calls` and one [`ToolResult::message`] per call.
//!    Then the relay is called again: each round is its own billed call, and the message
//!    shows their sum.
//! 4. After [`MAX_TOOL_ROUNDS`] rounds the request goes out without `tools`, so the model must
//!    answer in words. The calls and results are stored with the answer
//!    (`chat_messages.tool_calls`, [`ToolRecord`]), their citations included.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use skein_core::ApiResult;

use crate::sources::Citation;
use crate::turn::Turn;

/// Most rounds of tool calls in one answer before the model must answer without tools.
pub const MAX_TOOL_ROUNDS: usize = 8;

/// Longest one tool call may run; past it the model hears that the tool did not answer.
pub const TOOL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs tools the model may call. Implementations are shared by every answer in the process,
/// so they keep no per-answer state.
#[async_trait]
pub trait ToolRunner: Send + Sync {
    /// A short, stable name (`web_search`, `plugin:weather`), for logs.
    fn name(&self) -> &str;

    /// The tools offered for `turn` (none, for a user or agent that did not enable them).
    async fn tools(&self, turn: &Turn) -> ApiResult<Vec<ToolSpec>>;

    /// Runs one call of a tool this runner offered, telling `progress` how it goes (each
    /// report reaches the clients as a `tool_progress` event). A failure the model should
    /// hear about (bad arguments, a site that did not answer) is a result with `is_error`
    /// set, never a refused answer.
    async fn run(&self, turn: &Turn, call: &ToolCall, progress: &Progress) -> ToolResult;
}

/// Where a running tool call reports how it goes: a JSON object (`stage`, `text`), sent to
/// the clients with the call's id and name.
pub type Progress = Arc<dyn Fn(Value) + Send + Sync>;

/// A progress sink that drops every report (callers that show none).
pub fn no_progress() -> Progress {
    Arc::new(|_| {})
}

/// A tool as offered to the model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls it by (`^[a-zA-Z0-9_-]{1,64}$`, as vendors require).
    pub name: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: Value,
    /// Whether a call waits for the user's approval before it runs.
    pub requires_approval: bool,
}

impl ToolSpec {
    /// The tool in OpenAI's request format.
    pub fn openai(&self) -> Value {
        json!({
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        })
    }
}

/// A call the model made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCall {
    /// The model's id for the call; the result answers to it.
    pub id: String,
    /// The tool called.
    pub name: String,
    /// Its arguments as the model wrote them (JSON text, not yet checked).
    pub arguments: String,
    /// The server's key for this call (answer, round, call id), unique in the deployment;
    /// paid tools are charged once per key. Empty until the generation loop sets it.
    pub key: String,
}

/// What a tool answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolResult {
    /// The text the model reads.
    pub content: String,
    /// The call failed; `content` says why.
    pub is_error: bool,
    /// What the result draws on, shown with the answer.
    pub citations: Vec<Citation>,
}

impl ToolResult {
    /// A failed call, with what the model should hear about it.
    pub fn error(content: impl Into<String>) -> Self {
        ToolResult {
            content: content.into(),
            is_error: true,
            citations: Vec::new(),
        }
    }

    /// The result as the `tool` message that follows the model's call in the request.
    pub fn message(&self, call: &ToolCall) -> Value {
        json!({"role": "tool", "tool_call_id": call.id, "content": self.content})
    }
}

/// The pieces of the tool calls of one streamed answer, gathered by index.
#[derive(Debug, Default)]
pub struct PendingCalls {
    calls: Vec<(u32, ToolCall)>,
}

impl PendingCalls {
    /// Adds a piece: the first of a call carries its id and name, the rest more arguments.
    pub fn push(&mut self, delta: skein_core::api::ToolCallDelta) {
        let position = match self.calls.iter().position(|(i, _)| *i == delta.index) {
            Some(position) => position,
            None => {
                self.calls.push((delta.index, ToolCall::default()));
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[position].1;
        if let Some(id) = delta.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(name) = delta.name.filter(|name| !name.is_empty()) {
            call.name = name;
        }
        call.arguments.push_str(&delta.arguments);
    }

    /// Whether no call was begun.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in index order; one the model gave no id gets one, so its result can
    /// answer to it.
    pub fn finish(mut self) -> Vec<ToolCall> {
        self.calls.sort_by_key(|(index, _)| *index);
        self.calls
            .into_iter()
            .map(|(index, mut call)| {
                if call.id.is_empty() {
                    call.id = format!("call_{index}");
                }
                call
            })
            .collect()
    }
}

/// A call and its result, as stored with the answer and shown on it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolRecord {
    /// The model's id for the call.
    pub id: String,
    /// The tool called.
    pub name: String,
    /// Its arguments as the model wrote them.
    pub arguments: String,
    /// What the tool answered (the text the model read).
    pub result: String,
    /// The call failed; `result` says why.
    pub is_error: bool,
    /// What the result draws on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
}

impl ToolRecord {
    /// The record of `call` answered with `result`.
    pub fn new(call: &ToolCall, result: &ToolResult) -> Self {
        ToolRecord {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            result: result.content.clone(),
            is_error: result.is_error,
            citations: result.citations.clone(),
        }
    }
}

/// The tools offered for one turn, each with the runner that runs it.
#[derive(Default)]
pub struct Toolbox {
    offered: Vec<(ToolSpec, Arc<dyn ToolRunner>)>,
}

impl Toolbox {
    /// Asks every runner what it offers for `turn`. A tool name offered twice goes to the
    /// runner registered first: a model cannot tell two tools of one name apart.
    pub async fn for_turn(runners: &[Arc<dyn ToolRunner>], turn: &Turn) -> ApiResult<Toolbox> {
        let mut toolbox = Toolbox::default();
        for runner in runners {
            for spec in runner.tools(turn).await? {
                if toolbox.offered.iter().any(|(s, _)| s.name == spec.name) {
                    tracing::warn!(tool = %spec.name, runner = runner.name(), "a tool name is offered twice; the first runner keeps it");
                    continue;
                }
                toolbox.offered.push((spec, runner.clone()));
            }
        }
        Ok(toolbox)
    }

    /// Whether no tool is offered.
    pub fn is_empty(&self) -> bool {
        self.offered.is_empty()
    }

    /// Whether calls of tool `name` wait for the user's approval.
    pub fn requires_approval(&self, name: &str) -> bool {
        self.offered
            .iter()
            .any(|(s, _)| s.name == name && s.requires_approval)
    }

    /// Adds the offered tools to an OpenAI request; an empty toolbox changes nothing.
    pub fn offer(&self, request: &mut Value) {
        if self.offered.is_empty() {
            return;
        }
        let tools: Vec<Value> = self.offered.iter().map(|(s, _)| s.openai()).collect();
        request["tools"] = Value::Array(tools);
    }

    /// Runs `call` with the runner that offered its tool, within [`TOOL_DEADLINE`]; a tool
    /// not offered, or one that does not answer in time, is an error the model hears about.
    pub async fn run(&self, turn: &Turn, call: &ToolCall, progress: &Progress) -> ToolResult {
        let Some((_, runner)) = self.offered.iter().find(|(s, _)| s.name == call.name) else {
            return ToolResult::error(format!("There is no tool called {}.", call.name));
        };
        match tokio::time::timeout(TOOL_DEADLINE, runner.run(turn, call, progress)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(tool = %call.name, runner = runner.name(), "a tool call ran past its deadline");
                ToolResult::error(format!(
                    "The tool {} did not answer within {} seconds.",
                    call.name,
                    TOOL_DEADLINE.as_secs()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::{Budget, Settings};

    struct Clock;

    #[async_trait]
    impl ToolRunner for Clock {
        fn name(&self) -> &str {
            "clock"
        }
        async fn tools(&self, _turn: &Turn) -> ApiResult<Vec<ToolSpec>> {
            Ok(vec![ToolSpec {
                name: "now".into(),
                description: "The time.".into(),
                parameters: json!({"type": "object", "properties": {}}),
                requires_approval: false,
            }])
        }
        async fn run(&self, _turn: &Turn, call: &ToolCall, _progress: &Progress) -> ToolResult {
            ToolResult {
                content: format!("noon ({})", call.arguments),
                ..ToolResult::default()
            }
        }
    }

    pub(crate) fn turn() -> Turn {
        Turn {
            user_id: "u".into(),
            request_id: "r".into(),
            conversation: crate::sources::tests::conversation(),
            model: "m".into(),
            settings: Settings::default(),
            path: Vec::new(),
            budget: Budget {
                window: 1000,
                reserve: 100,
            },
        }
    }

    #[test]
    fn pieces_of_calls_are_gathered_by_index() {
        use skein_core::api::ToolCallDelta;
        let mut pending = PendingCalls::default();
        assert!(pending.is_empty());
        let piece = |index, id: Option<&str>, name: Option<&str>, arguments: &str| ToolCallDelta {
            index,
            id: id.map(str::to_string),
            name: name.map(str::to_string),
            arguments: arguments.into(),
        };
        pending.push(piece(1, None, Some("later"), "{}"));
        pending.push(piece(0, Some("call_a"), Some("now"), "{\"a\""));
        pending.push(piece(0, None, None, ": 1}"));
        assert_eq!(
            pending.finish(),
            vec![
                ToolCall {
                    id: "call_a".into(),
                    name: "now".into(),
                    arguments: "{\"a\": 1}".into(),
                    key: String::new(),
                },
                // No id from the model: one is made so the result can answer to it.
                ToolCall {
                    id: "call_1".into(),
                    name: "later".into(),
                    arguments: "{}".into(),
                    key: String::new(),
                },
            ]
        );
    }

    struct Sleeper;

    #[async_trait]
    impl ToolRunner for Sleeper {
        fn name(&self) -> &str {
            "sleeper"
        }
        async fn tools(&self, _turn: &Turn) -> ApiResult<Vec<ToolSpec>> {
            Ok(vec![ToolSpec {
                name: "sleep".into(),
                description: "Never answers.".into(),
                parameters: json!({"type": "object"}),
                requires_approval: false,
            }])
        }
        async fn run(&self, _turn: &Turn, _call: &ToolCall, _progress: &Progress) -> ToolResult {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tool_past_its_deadline_is_an_error_the_model_hears() {
        let turn = turn();
        let runners: Vec<Arc<dyn ToolRunner>> = vec![Arc::new(Sleeper)];
        let toolbox = Toolbox::for_turn(&runners, &turn).await.unwrap();
        let call = ToolCall {
            id: "c".into(),
            name: "sleep".into(),
            arguments: "{}".into(),
            key: String::new(),
        };
        let result = toolbox.run(&turn, &call, &no_progress()).await;
        assert!(result.is_error, "{result:?}");
        assert!(result.content.contains("did not answer"), "{result:?}");
    }

    #[tokio::test]
    async fn without_runners_the_request_is_left_alone() {
        let toolbox = Toolbox::for_turn(&[], &turn()).await.unwrap();
        let mut request = json!({"model": "m", "messages": []});
        let before = request.clone();
        toolbox.offer(&mut request);
        assert!(toolbox.is_empty());
        assert_eq!(request, before);
    }

    #[tokio::test]
    async fn offered_tools_are_run_by_their_runner_and_unknown_ones_refused() {
        let runners: Vec<Arc<dyn ToolRunner>> = vec![Arc::new(Clock), Arc::new(Clock)];
        let turn = turn();
        let toolbox = Toolbox::for_turn(&runners, &turn).await.unwrap();
        let mut request = json!({"model": "m", "messages": []});
        toolbox.offer(&mut request);
        // Offered once, though two runners offer it.
        assert_eq!(request["tools"].as_array().unwrap().len(), 1);
        assert_eq!(request["tools"][0]["function"]["name"], "now");
        let call = ToolCall {
            id: "call_1".into(),
            name: "now".into(),
            arguments: "{}".into(),
            key: String::new(),
        };
        let result = toolbox.run(&turn, &call, &no_progress()).await;
        assert_eq!(
            (result.content.as_str(), result.is_error),
            ("noon ({})", false)
        );
        assert_eq!(
            result.message(&call),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "noon ({})"})
        );
        let unknown = ToolCall {
            name: "rm".into(),
            ..call
        };
        assert!(toolbox.run(&turn, &unknown, &no_progress()).await.is_error);
    }
}
