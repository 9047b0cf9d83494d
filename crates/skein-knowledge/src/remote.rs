//! The Knowledge service as a process that does not run it reaches it: [`RemoteKnowledge`],
//! an HTTP client of `/internal/knowledge/*` (served by `http/internal.rs`) implementing
//! [`KnowledgeApi`], and the bodies both sides share.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_core::ApiError;
use skein_core::api::{KnowledgeApi, KnowledgeCaller, KnowledgeQuery, KnowledgeResults};
use skein_core::internal::InternalClient;

/// The `KnowledgeApi` of a Knowledge service in another process.
#[derive(Debug, Clone)]
pub struct RemoteKnowledge(pub InternalClient);

/// May this user read this base.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MayReadBody {
    pub(crate) user_id: String,
    pub(crate) base_id: String,
}

/// The answer to [`MayReadBody`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Readable {
    pub(crate) readable: bool,
}

/// A search, and who makes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchBody {
    pub(crate) caller: KnowledgeCaller,
    pub(crate) query: KnowledgeQuery,
}

/// The bases a user attached to a conversation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BasesBody {
    pub(crate) user_id: String,
    pub(crate) conversation_id: String,
}

#[async_trait]
impl KnowledgeApi for RemoteKnowledge {
    async fn may_read(&self, user_id: &str, base_id: &str) -> Result<bool, ApiError> {
        let body = MayReadBody {
            user_id: user_id.to_owned(),
            base_id: base_id.to_owned(),
        };
        let answer: Readable = self.0.call("/internal/knowledge/may-read", &body).await?;
        Ok(answer.readable)
    }

    async fn search(
        &self,
        caller: KnowledgeCaller,
        query: KnowledgeQuery,
    ) -> Result<KnowledgeResults, ApiError> {
        self.0
            .call("/internal/knowledge/search", &SearchBody { caller, query })
            .await
    }

    async fn conversation_bases(
        &self,
        user_id: &str,
        conversation_id: &str,
    ) -> Result<Vec<String>, ApiError> {
        let body = BasesBody {
            user_id: user_id.to_owned(),
            conversation_id: conversation_id.to_owned(),
        };
        self.0
            .call("/internal/knowledge/conversation-bases", &body)
            .await
    }
}
