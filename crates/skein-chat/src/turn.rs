//! A [`Turn`]: everything one answer needs — who asks, the conversation, the model and its
//! parameters, the system prompt, the path of messages being answered (with their images),
//! and the token budget — gathered before its context is assembled by the
//! [`ContextSource`](crate::sources::ContextSource)s and turned into the request sent to the
//! relay ([`Turn::request`]).

use skein_core::api::RelayCaller;

use crate::store::{ConversationRow, MessageRow};

/// What one answer needs.
#[derive(Debug, Clone)]
pub struct Turn {
    /// Who asks, and pays.
    pub user_id: String,
    /// The request that asked, for the ledger.
    pub request_id: String,
    /// The conversation, as read when the answer began.
    pub conversation: ConversationRow,
    /// The model that answers (priced and routed).
    pub model: String,
    /// System prompt and parameters.
    pub settings: Settings,
    /// The messages being answered, root first, ending with the newest (the question, or the
    /// message a regeneration answers again).
    pub path: Vec<PathMessage>,
    /// The room in the model's window.
    pub budget: Budget,
}

impl Turn {
    /// The caller relay calls made for this turn go out as (a knowledge source's embedding,
    /// a tool's own model call): billed to the user, recorded with the conversation.
    pub fn caller(&self) -> RelayCaller {
        RelayCaller {
            user_id: self.user_id.clone(),
            // The user's own group, decided by the relay as for the user's API keys.
            group: None,
            request_id: self.request_id.clone(),
            conversation_id: Some(self.conversation.id.clone()),
            cancel: None,
        }
    }

    /// The newest message of the path when it is the user's: what this answer answers.
    pub fn question(&self) -> Option<&PathMessage> {
        self.path.last().filter(|m| m.role == "user")
    }
}

/// The settings an answer is written with: the conversation's, then whatever the context
/// sources configured (an agent fills in its own).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The model wanted: the one asked for with the message, else the conversation's. When
    /// `None` after the sources ran, `chat.default_model`, else the first one the user may use.
    pub model: Option<String>,
    /// System prompt.
    pub system_prompt: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Longest answer, in tokens.
    pub max_tokens: Option<i64>,
    /// Most earlier messages sent with a new one.
    pub history_limit: Option<i64>,
    /// Knowledge bases a persona (an assistant's version) binds to the answer, besides the
    /// ones the user attached; each is searched only if the user may read it.
    pub knowledge_base_ids: Vec<String>,
    /// Plugins a persona binds to the answer, offered besides the ones the user enabled; each
    /// only if the user may use it, and not when the user switched it off here.
    pub plugin_ids: Vec<String>,
}

impl Settings {
    /// The settings of `conversation`, with the model `asked` for this answer, if any.
    pub fn of(conversation: &ConversationRow, asked: Option<&str>) -> Settings {
        Settings {
            model: asked.map(str::to_string).or(conversation.model.clone()),
            system_prompt: conversation.system_prompt.clone(),
            temperature: conversation.temperature,
            top_p: conversation.top_p,
            max_tokens: conversation.max_tokens,
            history_limit: conversation.history_limit,
            knowledge_base_ids: Vec::new(),
            plugin_ids: Vec::new(),
        }
    }
}

/// A message of the path, as the context sources read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMessage {
    /// Message id.
    pub id: String,
    /// `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
    /// Its images (`data:` or `https:` URLs), decoded from the row once.
    pub images: Vec<String>,
    /// The tools an answer called on the way to its text, with what they answered.
    pub tool_calls: Vec<PastCall>,
}

/// A tool call an earlier answer made and the result the model read, as stored with the
/// answer (the fields of [`crate::tools::ToolRecord`] a later turn needs): replayed before
/// the answer's text, so a later question can build on what the tools said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct PastCall {
    /// The model's id for the call.
    pub id: String,
    /// The tool called.
    pub name: String,
    /// Its arguments as the model wrote them.
    pub arguments: String,
    /// What the tool answered.
    pub result: String,
}

impl From<&MessageRow> for PathMessage {
    fn from(row: &MessageRow) -> Self {
        PathMessage {
            id: row.id.clone(),
            role: row.role.clone(),
            content: row.content.clone(),
            images: row
                .images
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            tool_calls: row
                .tool_calls
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
        }
    }
}

/// The room in a model's window for one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The model's context window, tokens.
    pub window: usize,
    /// Tokens kept free for the answer.
    pub reserve: usize,
}

impl Budget {
    /// Tokens the prompt may take.
    pub fn prompt(&self) -> usize {
        self.window.saturating_sub(self.reserve)
    }
}
