//! The conversation so far: the newest turns of the path that fit the window, and a summary
//! of the older ones (made by the summary model when `chat.summary_model` is set).

use async_trait::async_trait;
use serde_json::{Value, json};
use skein_core::ApiResult;
use skein_core::api::RelayCaller;

use super::{Context, ContextMessage, ContextSource, Role, Stage};
use crate::context::{self, count_tokens};
use crate::turn::{PathMessage, Turn};
use crate::{ChatService, store};

/// Tokens of window a summary may take (the trimmer keeps this much room for it).
pub const SUMMARY_TOKENS: usize = 800;

/// Most tokens of turns sent to the summary model at once.
const SUMMARY_INPUT_TOKENS: usize = 12_000;

/// How a stored summary is put before the turns it stands for.
const SUMMARY_HEADING: &str = "Summary of the earlier conversation:\n";

/// The path's turns, trimmed to the room left in the window, with the summary of what was
/// left out.
pub struct History {
    /// The model that writes summaries; without one, older turns are only left out.
    summary_model: Option<String>,
}

impl History {
    /// History summarised by `summary_model`, or only trimmed without one.
    pub fn new(summary_model: Option<String>) -> Self {
        History { summary_model }
    }
}

#[async_trait]
impl ContextSource for History {
    fn name(&self) -> &str {
        "history"
    }

    fn stage(&self) -> Stage {
        Stage::History
    }

    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
        // Failed answers that wrote nothing say nothing to the model.
        let turns: Vec<&PathMessage> = turn
            .path
            .iter()
            .filter(|m| m.role == "user" || (m.role == "assistant" && !m.content.is_empty()))
            .collect();
        let counted: Vec<context::Turn<'_>> = turns
            .iter()
            .map(|m| context::Turn {
                role: &m.role,
                content: &m.content,
                images: m.images.len(),
                tools: super::past_calls_tokens(&m.tool_calls),
            })
            .collect();
        let summary_room = if self.summary_model.is_some() {
            SUMMARY_TOKENS
        } else {
            0
        };
        let budget = turn.budget.prompt();
        let limit = turn
            .settings
            .history_limit
            .and_then(|n| usize::try_from(n).ok())
            .map(|n| n + 1);
        let fixed = context.tokens() + summary_room;
        let mut dropped = context::trim(&counted, fixed, budget, limit);
        if dropped > 0
            && let Some(summary_model) = self.summary_model.clone()
        {
            let c = &turn.conversation;
            // Where the stored summary ends on this branch (a summary made on another branch
            // does not count).
            let covered = c
                .summary
                .as_ref()
                .and(c.summary_upto.as_deref())
                .and_then(|id| turns.iter().position(|m| m.id == id));
            match (covered, &c.summary) {
                // It covers at least what must go: leave out everything it covers, and no
                // model call is needed.
                (Some(at), Some(summary)) if at + 1 >= dropped && at + 1 < turns.len() => {
                    dropped = at + 1;
                    context.add_section(self.name(), format!("{SUMMARY_HEADING}{summary}"));
                }
                (covered, previous) => {
                    // Fold in enough turns to get down to three fifths of the budget, so the
                    // next several answers reuse this summary instead of paying for a new one
                    // each.
                    dropped = dropped.max(context::trim(&counted, fixed, budget * 3 / 5, limit));
                    let from = covered
                        .filter(|at| *at < dropped)
                        .map(|at| at + 1)
                        .unwrap_or(0);
                    context.summarize = Some(Summarize {
                        conversation_id: c.id.clone(),
                        previous: if from > 0 { previous.clone() } else { None },
                        turns: turns[from..dropped]
                            .iter()
                            .map(|m| (m.role.clone(), m.content.clone()))
                            .collect(),
                        upto: turns[dropped - 1].id.clone(),
                        model: summary_model,
                    });
                }
            }
        }
        for m in &turns[dropped..] {
            context.add_message(ContextMessage {
                role: if m.role == "user" {
                    Role::User
                } else {
                    Role::Assistant
                },
                content: m.content.clone(),
                images: m.images.clone(),
                tool_calls: if m.role == "assistant" {
                    m.tool_calls.clone()
                } else {
                    Vec::new()
                },
            });
        }
        context.trimmed_turns += dropped;
        Ok(())
    }
}

/// Older turns to fold into a conversation's summary before an answer.
#[derive(Debug)]
pub struct Summarize {
    /// The conversation.
    pub conversation_id: String,
    /// The summary so far.
    pub previous: Option<String>,
    /// The turns to add to it, oldest first (`role`, text).
    pub turns: Vec<(String, String)>,
    /// The last message the new summary covers.
    pub upto: String,
    /// Model that writes it.
    pub model: String,
}

/// Folds older turns into the summary, stores it, and puts it in `request` after the system
/// text. Runs in the answer's task, before the model is called.
pub(crate) async fn summarize(
    svc: &ChatService,
    caller: &RelayCaller,
    job: Summarize,
    request: &mut Value,
) {
    let mut transcript = String::new();
    if let Some(previous) = &job.previous {
        transcript.push_str("Summary so far:\n");
        transcript.push_str(previous);
        transcript.push_str("\n\nLater turns:\n");
    }
    // The summary model sees at most SUMMARY_INPUT_TOKENS of turns: the newest, if there are
    // more (a long history switched to at once would not fit its window).
    let mut budget = SUMMARY_INPUT_TOKENS;
    let mut first = job.turns.len();
    while first > 0 {
        let cost = count_tokens(&job.turns[first - 1].1) + 4;
        if cost > budget {
            break;
        }
        budget -= cost;
        first -= 1;
    }
    for (role, text) in &job.turns[first..] {
        transcript.push_str(role);
        transcript.push_str(": ");
        transcript.push_str(text);
        transcript.push_str("\n\n");
    }
    let ask = json!({
        "model": job.model,
        "max_tokens": 600,
        "messages": [
            {"role": "system", "content": "Summarise this conversation so it can be continued without it: facts, decisions, open questions, the user's preferences. Be concise; write in the conversation's language."},
            {"role": "user", "content": transcript},
        ],
    });
    let Some(summary) = crate::complete(svc, caller, ask)
        .await
        .filter(|s| !s.trim().is_empty())
        .map(|s| clip_tokens(&s, SUMMARY_TOKENS))
    else {
        return;
    };
    if let Err(error) = store::set_summary(&svc.db, &job.conversation_id, &summary, &job.upto).await
    {
        tracing::warn!(%error, "could not store a conversation summary");
    }
    insert_summary(request, &summary);
}

/// `text` cut to at most about `limit` tokens: a summary model that ignores its length limit
/// must not push the newest turns out of the window.
fn clip_tokens(text: &str, limit: usize) -> String {
    let tokens = count_tokens(text);
    if tokens <= limit {
        return text.to_string();
    }
    let keep = text.chars().count() * limit / tokens;
    text.chars().take(keep).collect()
}

/// Puts a summary of earlier turns after the system text (where a stored summary goes too).
fn insert_summary(request: &mut Value, summary: &str) {
    if let Some(messages) = request["messages"].as_array_mut() {
        let at = messages
            .iter()
            .take_while(|m| m["role"] == "system")
            .count();
        messages.insert(
            at,
            json!({"role": "system", "content": format!("{SUMMARY_HEADING}{summary}")}),
        );
    }
}
