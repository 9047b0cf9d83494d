//! Where the context of an answer comes from. A [`ContextSource`] adds to it: system text,
//! messages, and the citations the answer draws on (stored with the answer and shown with
//! it). Today's sources are the conversation's system prompt ([`SystemPrompt`]) and its
//! history, trimmed to the window and summarised ([`History`]); an agent's settings and
//! knowledge-base retrieval plug in the same way, through
//! [`ChatService::add_context_source`](crate::ChatService::add_context_source).
//!
//! Sources run in [`Stage`] order (and in the order they were added within a stage), each
//! seeing what the earlier ones added, so the history, last, keeps the newest turns that fit
//! the room the others left. A source that fails refuses the answer before anything is stored;
//! one that can do without what it could not reach should log and add nothing instead.

mod history;
mod system_prompt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skein_core::ApiResult;

use crate::context::count_tokens;
use crate::store::ConversationRow;
use crate::turn::{PastCall, Settings, Turn};

pub(crate) use history::summarize;
pub use history::{History, SUMMARY_TOKENS, Summarize};
pub use system_prompt::SystemPrompt;

/// Tokens a message costs beyond its text, as the trimmer counts them (see `context.rs`).
const PER_MESSAGE: usize = 4;

/// Contributes to the context of each answer. Implementations are shared by every answer in
/// the process, so they keep no per-answer state.
#[async_trait]
pub trait ContextSource: Send + Sync {
    /// A short, stable name (`history`, `knowledge`), recorded with what the source adds.
    fn name(&self) -> &str;

    /// When the source runs relative to the others.
    fn stage(&self) -> Stage;

    /// Adjusts the settings of the next answer before its model is checked and its window
    /// worked out: an agent fills in its model, parameters and system prompt here. Runs
    /// before the conversation is locked for the answer; the default changes nothing.
    async fn configure(
        &self,
        conversation: &ConversationRow,
        settings: &mut Settings,
    ) -> ApiResult<()> {
        let _ = (conversation, settings);
        Ok(())
    }

    /// Adds to `context` what this source knows for `turn`: system sections, messages,
    /// citations. `context` holds what the earlier stages added ([`Context::tokens`] says how
    /// much room they took).
    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()>;
}

/// When a source runs; sources run in this order, and in the order they were added within a
/// stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Who answers: an agent's persona, its opening message.
    Persona,
    /// The conversation's own instructions: its system prompt.
    Instructions,
    /// What was found for this question: knowledge-base passages, search results.
    Retrieval,
    /// The conversation so far, last: it takes whatever room the others left.
    History,
}

/// The context of one answer as the sources assembled it; [`Turn::request`] turns it into
/// the request sent upstream.
#[derive(Debug, Default)]
pub struct Context {
    /// System text, sent first, one system message per section, in order.
    pub sections: Vec<Section>,
    /// The messages after the system text, oldest first.
    pub messages: Vec<ContextMessage>,
    /// What the answer draws on; stored with the answer and shown as its sources.
    pub citations: Vec<Citation>,
    /// Turns of history left out to fit the window (the context inspector shows it).
    pub trimmed_turns: usize,
    /// Older turns the history asks to fold into the conversation's summary; that call is
    /// made in the answer's task, off the path to the first event.
    pub(crate) summarize: Option<Summarize>,
}

impl Context {
    /// Adds a system section.
    pub fn add_section(&mut self, source: &str, text: impl Into<String>) {
        self.sections.push(Section {
            source: source.to_string(),
            text: text.into(),
        });
    }

    /// Adds a message after those already added.
    pub fn add_message(&mut self, message: ContextMessage) {
        self.messages.push(message);
    }

    /// Adds a citation.
    pub fn cite(&mut self, citation: Citation) {
        self.citations.push(citation);
    }

    /// Tokens of prompt what was added so far takes, counted as the trimmer counts them.
    pub fn tokens(&self) -> usize {
        let sections: usize = self
            .sections
            .iter()
            .map(|s| count_tokens(&s.text) + PER_MESSAGE)
            .sum();
        let messages: usize = self
            .messages
            .iter()
            .map(|m| {
                crate::context::turn_tokens(&crate::context::Turn {
                    role: m.role.as_str(),
                    content: &m.content,
                    images: m.images.len(),
                    tools: past_calls_tokens(&m.tool_calls),
                })
            })
            .sum();
        sections + messages
    }
}

// The request is built here, beside the `Context` it reads, so that `turn` (which sources
// read) does not depend on `sources`.
impl Turn {
    /// The OpenAI chat-completion request for `context`: the system sections, then the
    /// messages, then the parameters that are set.
    pub fn request(&self, context: &Context) -> Value {
        let mut messages = Vec::with_capacity(context.sections.len() + context.messages.len());
        for section in &context.sections {
            messages.push(json!({"role": "system", "content": section.text}));
        }
        // Replayed calls get ids of their own, unique in the request: ids the model gave in
        // different answers (or rounds) may repeat, and some vendors refuse a repeated one.
        let mut replayed = 0;
        for m in &context.messages {
            if !m.tool_calls.is_empty() {
                let ids: Vec<String> = m
                    .tool_calls
                    .iter()
                    .map(|_| {
                        replayed += 1;
                        format!("call_past_{replayed}")
                    })
                    .collect();
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .zip(&ids)
                    .map(|(call, id)| {
                        // Arguments the model wrote that are not a JSON object (the call then
                        // failed) would make the whole request invalid for vendors that parse
                        // them; the result says what went wrong.
                        let arguments = match serde_json::from_str::<Value>(&call.arguments) {
                            Ok(Value::Object(_)) => call.arguments.clone(),
                            _ => "{}".to_string(),
                        };
                        json!({"id": id, "type": "function",
                            "function": {"name": call.name, "arguments": arguments}})
                    })
                    .collect();
                messages.push(json!({"role": "assistant", "content": null, "tool_calls": calls}));
                for (call, id) in m.tool_calls.iter().zip(&ids) {
                    messages
                        .push(json!({"role": "tool", "tool_call_id": id, "content": call.result}));
                }
            }
            let content = if m.images.is_empty() {
                json!(m.content)
            } else {
                let mut parts = vec![json!({"type": "text", "text": m.content})];
                parts.extend(
                    m.images
                        .iter()
                        .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
                );
                Value::Array(parts)
            };
            messages.push(json!({"role": m.role.as_str(), "content": content}));
        }
        let mut request = json!({ "model": self.model, "messages": messages, "stream": true });
        if let Some(t) = self.settings.temperature {
            request["temperature"] = json!(t);
        }
        if let Some(p) = self.settings.top_p {
            request["top_p"] = json!(p);
        }
        if let Some(n) = self.settings.max_tokens {
            request["max_tokens"] = json!(n);
        }
        request
    }
}

/// A part of the system text, with the source that added it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// [`ContextSource::name`] of the source.
    pub source: String,
    /// The text.
    pub text: String,
}

/// Who a message of the context is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The person chatting.
    User,
    /// The model (an earlier answer, an agent's opening message).
    Assistant,
}

impl Role {
    /// The role as OpenAI's chat format names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A message of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextMessage {
    /// Who it is from.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Image URLs that go with it (`data:` or `https:`).
    pub images: Vec<String>,
    /// The tools an earlier answer called before its text, with their results: sent as the
    /// assistant's `tool_calls` and one `tool` message each, before the text.
    pub tool_calls: Vec<PastCall>,
}

impl ContextMessage {
    /// A message of text alone.
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        ContextMessage {
            role,
            content: content.into(),
            images: Vec::new(),
            tool_calls: Vec::new(),
        }
    }
}

/// Tokens `calls` take in the request, as the trimmer counts them.
pub(crate) fn past_calls_tokens(calls: &[PastCall]) -> usize {
    calls
        .iter()
        .map(|c| crate::context::tool_call_tokens(&c.name, &c.arguments, &c.result))
        .sum()
}

/// Something an answer draws on, shown with the answer so a reader can check it: a passage
/// of a knowledge-base document, a search result. Stored as JSON with the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// [`ContextSource::name`] of the source that found it.
    pub source: String,
    /// How the model was told to cite it (`1` for `[1]`).
    pub label: String,
    /// What it is called: a document's name, a page's title.
    pub title: String,
    /// Where to open it, when it has an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The passage given to the model.
    #[serde(default)]
    pub excerpt: String,
    /// The source's own ids (knowledge base, document, chunk), for a link back.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub reference: serde_json::Value,
}

/// Runs every source's [`ContextSource::configure`] in stage order.
pub(crate) async fn configure(
    sources: &[std::sync::Arc<dyn ContextSource>],
    conversation: &ConversationRow,
    settings: &mut Settings,
) -> ApiResult<()> {
    for source in in_order(sources) {
        source.configure(conversation, settings).await?;
    }
    Ok(())
}

/// Assembles the context of `turn` from `sources`, in stage order.
pub async fn assemble(
    sources: &[std::sync::Arc<dyn ContextSource>],
    turn: &Turn,
) -> ApiResult<Context> {
    let mut context = Context::default();
    for source in in_order(sources) {
        source.contribute(turn, &mut context).await?;
    }
    Ok(context)
}

/// `sources` by stage, keeping the order they were added in within a stage.
fn in_order(sources: &[std::sync::Arc<dyn ContextSource>]) -> Vec<&dyn ContextSource> {
    let mut ordered: Vec<&dyn ContextSource> = sources.iter().map(|s| s.as_ref()).collect();
    ordered.sort_by_key(|s| s.stage());
    ordered
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::turn::{Budget, PathMessage};

    /// An empty conversation.
    pub(crate) fn conversation() -> ConversationRow {
        ConversationRow::new("c", "u", "", 0)
    }

    fn message(id: &str, role: &str, content: &str) -> PathMessage {
        PathMessage {
            id: id.into(),
            role: role.into(),
            content: content.into(),
            images: Vec::new(),
            tool_calls: Vec::new(),
        }
    }

    fn turn(settings: Settings, path: Vec<PathMessage>, window: usize) -> Turn {
        Turn {
            user_id: "u".into(),
            request_id: "r".into(),
            conversation: conversation(),
            model: "gpt-test".into(),
            settings,
            path,
            budget: Budget { window, reserve: 0 },
        }
    }

    /// A knowledge base in miniature: one passage for every question, cited as [1].
    struct Passage(String);

    #[async_trait]
    impl ContextSource for Passage {
        fn name(&self) -> &str {
            "passage"
        }
        fn stage(&self) -> Stage {
            Stage::Retrieval
        }
        async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
            let question = turn.question().map(|q| q.content.as_str()).unwrap_or("");
            context.add_section(
                self.name(),
                format!("Sources for \"{question}\":\n[1] {}", self.0),
            );
            context.cite(Citation {
                source: self.name().into(),
                label: "1".into(),
                title: "Handbook".into(),
                url: None,
                excerpt: self.0.clone(),
                reference: json!({"chunk": 7}),
            });
            Ok(())
        }
    }

    /// An agent in miniature: its model unless one was asked for, and its opening message.
    struct Persona;

    #[async_trait]
    impl ContextSource for Persona {
        fn name(&self) -> &str {
            "persona"
        }
        fn stage(&self) -> Stage {
            Stage::Persona
        }
        async fn configure(&self, _c: &ConversationRow, settings: &mut Settings) -> ApiResult<()> {
            settings.model.get_or_insert_with(|| "agent-model".into());
            settings.temperature.get_or_insert(0.1);
            Ok(())
        }
        async fn contribute(&self, _turn: &Turn, context: &mut Context) -> ApiResult<()> {
            context.add_message(ContextMessage::text(Role::Assistant, "How can I help?"));
            Ok(())
        }
    }

    fn builtin() -> Vec<Arc<dyn ContextSource>> {
        vec![Arc::new(SystemPrompt), Arc::new(History::new(None))]
    }

    #[tokio::test]
    async fn sources_run_by_stage_and_their_sections_and_citations_reach_the_request() {
        // Added after the history, run before it: retrieval comes first.
        let mut sources = builtin();
        sources.push(Arc::new(Passage("Refunds take 5 days.".into())));
        sources.push(Arc::new(Persona));
        let settings = Settings {
            system_prompt: Some("be brief".into()),
            ..Settings::default()
        };
        let path = vec![
            message("1", "user", "hi"),
            message("2", "assistant", "hello"),
            message("3", "user", "refunds?"),
        ];
        let turn = turn(settings, path, 100_000);
        let context = assemble(&sources, &turn).await.unwrap();
        let names: Vec<&str> = context.sections.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(names, ["system_prompt", "passage"]);
        assert_eq!(context.citations.len(), 1);
        assert_eq!(context.trimmed_turns, 0);
        assert_eq!(
            turn.request(&context)["messages"],
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "system", "content": "Sources for \"refunds?\":\n[1] Refunds take 5 days."},
                {"role": "assistant", "content": "How can I help?"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "refunds?"},
            ])
        );
        // Stored as JSON with the answer and read back whole.
        let stored = serde_json::to_string(&context.citations).unwrap();
        let back: Vec<Citation> = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, context.citations);
    }

    #[tokio::test]
    async fn an_earlier_answers_tool_calls_are_replayed_before_its_text() {
        let call = |id: &str, arguments: &str, result: &str| PastCall {
            id: id.into(),
            name: "weather".into(),
            arguments: arguments.into(),
            result: result.into(),
        };
        let mut first = message("2", "assistant", "Sunny in Paris.");
        first.tool_calls = vec![
            call("call_1", r#"{"city":"Paris"}"#, "sunny"),
            call("call_2", "{not json", "error: arguments are not JSON"),
        ];
        let mut second = message("4", "assistant", "Rain in Rome.");
        // The model used the same id again in another answer.
        second.tool_calls = vec![call("call_1", r#"{"city":"Rome"}"#, "rain")];
        let path = vec![
            message("1", "user", "weather?"),
            first,
            message("3", "user", "and Rome?"),
            second,
            message("5", "user", "thanks"),
        ];
        let turn = turn(Settings::default(), path.clone(), 100_000);
        let context = assemble(&builtin(), &turn).await.unwrap();
        assert_eq!(
            turn.request(&context)["messages"],
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_past_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_past_2", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_past_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_past_2", "content": "error: arguments are not JSON"},
                {"role": "assistant", "content": "Sunny in Paris."},
                {"role": "user", "content": "and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_past_3", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "call_past_3", "content": "rain"},
                {"role": "assistant", "content": "Rain in Rome."},
                {"role": "user", "content": "thanks"},
            ])
        );

        // A long tool result counts against the window: the turn that carries it is the
        // first to go.
        let mut heavy = path;
        heavy[1].tool_calls[0].result = "rain and sun ".repeat(400);
        let budget = crate::context::count_tokens(&heavy[1].tool_calls[0].result);
        let turn = super::tests::turn(Settings::default(), heavy, budget);
        let context = assemble(&builtin(), &turn).await.unwrap();
        assert_eq!(context.trimmed_turns, 2, "{context:?}");
        assert!(context.tokens() <= budget);
    }

    #[tokio::test]
    async fn the_history_keeps_only_what_fits_beside_the_other_sources() {
        let path: Vec<PathMessage> = (0..10)
            .map(|i| {
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                message(&i.to_string(), role, &"word ".repeat(50))
            })
            .collect();
        let alone = turn(Settings::default(), path.clone(), 300);
        let context = assemble(&builtin(), &alone).await.unwrap();
        let kept_alone = context.messages.len();
        assert!(context.trimmed_turns > 0 && kept_alone > 1);
        assert_eq!(context.trimmed_turns + kept_alone, 10);

        // A long passage takes room: fewer turns fit, and the newest is always kept.
        let mut sources = builtin();
        sources.push(Arc::new(Passage(
            "a long passage of the handbook ".repeat(20),
        )));
        let crowded = turn(Settings::default(), path, 300);
        let mut context = assemble(&sources, &crowded).await.unwrap();
        assert!(context.messages.len() < kept_alone, "{context:?}");
        assert_eq!(context.messages.last().unwrap().content, "word ".repeat(50));
        assert!(context.summarize.take().is_none(), "no summary model");
    }

    #[tokio::test]
    async fn configure_fills_in_settings_the_conversation_left_open() {
        let mut sources = builtin();
        sources.push(Arc::new(Persona));
        let mut c = conversation();
        c.temperature = Some(0.7);
        let mut open = Settings::of(&c, None);
        configure(&sources, &c, &mut open).await.unwrap();
        assert_eq!(open.model.as_deref(), Some("agent-model"));
        assert_eq!(
            open.temperature,
            Some(0.7),
            "the conversation's own setting wins"
        );
        let mut asked = Settings::of(&c, Some("gpt-test"));
        configure(&sources, &c, &mut asked).await.unwrap();
        assert_eq!(asked.model.as_deref(), Some("gpt-test"));
    }
}
