//! The Plugin service's API: which tools a caller may use (for a conversation), described as
//! JSON Schema, and running one call of them within a deadline. Chat (its tool loop) and
//! Agent reach plugins only through this trait; a tool always runs with the caller's rights.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::error::ApiError;

/// Who calls a tool, and where: the tools offered and run are the ones this user enabled (for
/// this conversation), with this user's settings and secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolCaller {
    /// The user who asks, and whose rights the tool runs with.
    pub user_id: String,
    /// The conversation the call belongs to, when it belongs to one (per-conversation toggles).
    pub conversation_id: Option<String>,
    /// The request that asked, for logs and the ledger of paid tools.
    pub request_id: String,
    /// Plugins the conversation's assistant binds: on unless the caller switched them off for
    /// the conversation, and only those the caller may use (an assistant grants no rights).
    pub bound_plugin_ids: Vec<String>,
    /// This call's own key, unique in the deployment (request, round, the model's call id):
    /// a paid tool is charged at most once per key. Empty when listing tools.
    pub call_key: String,
}

/// A tool as offered to a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ToolDescriptor {
    /// The name the model calls it by (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// What it does and when to use it, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    #[schema(value_type = Object)]
    pub parameters: Value,
    /// The plugin that provides it.
    pub plugin_id: String,
    /// Whether a call waits for the user's approval before it runs.
    #[serde(default)]
    pub requires_approval: bool,
    /// Quota one call costs (0: free).
    #[serde(default)]
    pub price: i64,
}

/// A source a tool's answer draws on (a search result), shown with the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ToolCitation {
    /// What it is called.
    pub title: String,
    /// Where to open it.
    pub url: String,
    /// The passage given to the model.
    pub snippet: String,
}

/// A file a tool made (a generated image), stored for the caller through the File service.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ToolFile {
    /// The file's id.
    pub id: String,
    /// Its type (`image/png`).
    pub content_type: String,
    /// Where the owner downloads it.
    pub url: String,
}

/// What one call answered.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolOutput {
    /// The text the model reads.
    pub content: String,
    /// The call failed; `content` says why (the model hears it, the answer goes on).
    pub is_error: bool,
    /// What the answer draws on.
    pub citations: Vec<ToolCitation>,
    /// Files the call made.
    pub files: Vec<ToolFile>,
}

impl ToolOutput {
    /// A failed call, with what the model should hear.
    pub fn error(content: impl Into<String>) -> Self {
        ToolOutput {
            content: content.into(),
            is_error: true,
            ..ToolOutput::default()
        }
    }
}

/// Plugins: the tools a caller may use, and running them.
#[async_trait]
pub trait PluginApi: Send + Sync {
    /// The tools `caller` enabled (for the conversation, when there is one), in a stable order.
    async fn tools(&self, caller: &ToolCaller) -> Result<Vec<ToolDescriptor>, ApiError>;

    /// Whether `user_id` may use plugin `plugin_id` (published by an admin, or their own):
    /// what an assistant may bind.
    async fn may_use(&self, user_id: &str, plugin_id: &str) -> Result<bool, ApiError>;

    /// Runs tool `name` with `arguments` (JSON text, as the model wrote it) for `caller`,
    /// within `deadline`. A tool the caller may not use, bad arguments, a tool that hangs or
    /// answers too much or nonsense are outputs with `is_error`, never a refused call.
    async fn execute(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
    ) -> ToolOutput;

    /// [`PluginApi::execute`], telling `progress` how the call goes (a stage, a line of
    /// output); the default reports nothing.
    async fn execute_reporting(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
        progress: ToolProgress,
    ) -> ToolOutput {
        let _ = progress;
        self.execute(caller, name, arguments, deadline).await
    }
}

/// Where a running tool reports how it goes: a JSON object (`{"stage": ...}` or
/// `{"text": ...}`), shown to the user while the call runs.
pub type ToolProgress = std::sync::Arc<dyn Fn(Value) + Send + Sync>;
