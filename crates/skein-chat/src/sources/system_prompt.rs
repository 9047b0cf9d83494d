//! The conversation's system prompt, sent first.

use async_trait::async_trait;
use skein_core::ApiResult;

use super::{Context, ContextSource, Stage};
use crate::turn::Turn;

/// Puts the turn's system prompt (the conversation's, or what a source configured) in front
/// of everything else.
pub struct SystemPrompt;

#[async_trait]
impl ContextSource for SystemPrompt {
    fn name(&self) -> &str {
        "system_prompt"
    }

    fn stage(&self) -> Stage {
        Stage::Instructions
    }

    async fn contribute(&self, turn: &Turn, context: &mut Context) -> ApiResult<()> {
        if let Some(prompt) = &turn.settings.system_prompt {
            context.add_section(self.name(), prompt.clone());
        }
        Ok(())
    }
}
