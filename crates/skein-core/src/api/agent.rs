//! The Agent service as Chat reaches it: the persona a conversation was started with (the
//! assistant's version it is pinned to), and usage counted per answer. And the one thing the
//! Agent service needs from Chat: a new conversation to pin.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ApiResult;

/// What an assistant's version sets for the conversations pinned to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentPersona {
    /// The assistant.
    pub agent_id: String,
    /// Its name in that version.
    pub agent_name: String,
    /// The version the conversation is pinned to.
    pub version: i64,
    /// The system prompt.
    pub system_prompt: String,
    /// The model, when the assistant names one.
    pub model: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Longest answer, in tokens.
    pub max_tokens: Option<i64>,
    /// Whether the user may pick another model.
    pub allow_model_override: bool,
    /// The message the assistant opens with, if any.
    pub opening_message: Option<String>,
    /// Knowledge bases bound to the version (checked by the Knowledge service when it runs).
    pub knowledge_base_ids: Vec<String>,
    /// Plugins bound to the version (checked by the Plugin service when it runs).
    pub plugin_ids: Vec<String>,
}

/// The Agent service, for Chat's context source.
#[async_trait]
pub trait AgentApi: Send + Sync {
    /// The persona conversation `conversation_id` of `user_id` is pinned to; `None` when it was
    /// not started from an assistant.
    async fn persona(
        &self,
        conversation_id: &str,
        user_id: &str,
    ) -> ApiResult<Option<AgentPersona>>;

    /// Counts a message sent in `conversation_id` (usage statistics); a conversation not
    /// started from an assistant counts nothing.
    async fn record_message(&self, conversation_id: &str, user_id: &str) -> ApiResult<()>;
}

/// Chat, as the Agent service reaches it to start a conversation with an assistant.
#[async_trait]
pub trait ConversationOpener: Send + Sync {
    /// Creates an empty conversation of `user_id` titled `title`; its id.
    async fn open(&self, user_id: &str, title: &str) -> ApiResult<String>;
}
