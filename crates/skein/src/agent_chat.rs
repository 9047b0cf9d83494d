//! Where Chat meets the Agent service: a context source that applies the version a
//! conversation is pinned to (prompt, model, parameters, opening message), through
//! `AgentApi` (the service in this process, or its client when it runs in another). Neither
//! crate knows the other; they meet here.

use std::sync::Arc;

use async_trait::async_trait;
use skein_chat::sources::{Context, ContextMessage, ContextSource, Role, Stage};
use skein_chat::store::ConversationRow;
use skein_chat::turn::{Settings, Turn};
use skein_core::ApiResult;
use skein_core::api::AgentApi;

/// Applies a conversation's assistant version to each of its answers.
pub struct AgentPersona(pub Arc<dyn AgentApi>);

#[async_trait]
impl ContextSource for AgentPersona {
    fn name(&self) -> &str {
        "agent"
    }

    fn stage(&self) -> Stage {
        Stage::Persona
    }

    /// The version's prompt comes first (the conversation's own, if it has one, after it);
    /// its model replaces the one asked for unless the assistant allows another; its
    /// parameters fill in what the conversation left open; its knowledge bases and plugins
    /// join the answer's.
    async fn configure(
        &self,
        conversation: &ConversationRow,
        settings: &mut Settings,
    ) -> ApiResult<()> {
        let Some(persona) = self
            .0
            .persona(&conversation.id, &conversation.user_id)
            .await?
        else {
            return Ok(());
        };
        settings.system_prompt = match settings.system_prompt.take() {
            Some(own) if !own.trim().is_empty() && !persona.system_prompt.is_empty() => {
                Some(format!("{}\n\n{own}", persona.system_prompt))
            }
            Some(own) if !own.trim().is_empty() => Some(own),
            _ => Some(persona.system_prompt).filter(|p| !p.is_empty()),
        };
        if persona.model.is_some() && !(persona.allow_model_override && settings.model.is_some()) {
            settings.model = persona.model;
        }
        settings.temperature = settings.temperature.or(persona.temperature);
        settings.top_p = settings.top_p.or(persona.top_p);
        settings.max_tokens = settings.max_tokens.or(persona.max_tokens);
        // Bindings grant nothing: Knowledge and Plugin check each against the chatting user.
        settings.knowledge_base_ids = persona.knowledge_base_ids;
        settings.plugin_ids = persona.plugin_ids;
        Ok(())
    }

    /// The opening message, as the assistant's first words; and the message is counted.
    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
        let conversation = &turn.conversation;
        let Some(persona) = self
            .0
            .persona(&conversation.id, &conversation.user_id)
            .await?
        else {
            return Ok(());
        };
        if let Some(opening) = persona.opening_message {
            context.add_message(ContextMessage::text(Role::Assistant, opening));
        }
        // Statistics are not worth refusing an answer for.
        if let Err(error) = self
            .0
            .record_message(&conversation.id, &conversation.user_id)
            .await
        {
            tracing::warn!(%error, "counting an assistant's message failed");
        }
        Ok(())
    }
}
