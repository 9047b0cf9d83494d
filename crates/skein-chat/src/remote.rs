//! Chat as the services of a process that does not run it reach it: [`RemoteChat`], an HTTP
//! client of `/internal/chat/*` (served by `http/internal.rs`) implementing
//! [`ConversationOpener`]; and the in-process implementation on [`ChatService`] itself.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use skein_core::ApiResult;
use skein_core::api::ConversationOpener;
use skein_core::internal::InternalClient;

use crate::ChatService;

/// The Chat service of another process, as the Agent service starts conversations there.
#[derive(Debug, Clone)]
pub struct RemoteChat(pub InternalClient);

/// A conversation to start: whose, and its title.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenBody {
    pub(crate) user_id: String,
    pub(crate) title: String,
}

/// The conversation started.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Opened {
    pub(crate) conversation_id: String,
}

#[async_trait]
impl ConversationOpener for RemoteChat {
    async fn open(&self, user_id: &str, title: &str) -> ApiResult<String> {
        let body = OpenBody {
            user_id: user_id.to_owned(),
            title: title.to_owned(),
        };
        let opened: Opened = self.0.call("/internal/chat/open", &body).await?;
        Ok(opened.conversation_id)
    }
}

#[async_trait]
impl ConversationOpener for ChatService {
    async fn open(&self, user_id: &str, title: &str) -> ApiResult<String> {
        self.open_conversation(user_id, title).await
    }
}
