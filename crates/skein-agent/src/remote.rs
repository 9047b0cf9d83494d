//! The Agent service as a process that does not run it reaches it: [`RemoteAgents`], an HTTP
//! client of `/internal/agent/*` (served by `http/internal.rs`) implementing [`AgentApi`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_core::ApiResult;
use skein_core::api::{AgentApi, AgentPersona};
use skein_core::internal::InternalClient;

/// The `AgentApi` of an Agent service in another process.
#[derive(Debug, Clone)]
pub struct RemoteAgents(pub InternalClient);

/// Which conversation of which user: the body of both internal routes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConversationBody {
    pub(crate) conversation_id: String,
    pub(crate) user_id: String,
}

impl ConversationBody {
    fn of(conversation_id: &str, user_id: &str) -> Self {
        ConversationBody {
            conversation_id: conversation_id.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

#[async_trait]
impl AgentApi for RemoteAgents {
    async fn persona(
        &self,
        conversation_id: &str,
        user_id: &str,
    ) -> ApiResult<Option<AgentPersona>> {
        self.0
            .call(
                "/internal/agent/persona",
                &ConversationBody::of(conversation_id, user_id),
            )
            .await
    }

    async fn record_message(&self, conversation_id: &str, user_id: &str) -> ApiResult<()> {
        self.0
            .notify(
                "/internal/agent/record-message",
                &ConversationBody::of(conversation_id, user_id),
            )
            .await
    }
}
