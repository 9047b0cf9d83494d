//! The Plugin service's tools as a [`ToolRunner`]: what the caller enabled (for the
//! conversation) is offered, and a call runs through [`PluginApi::execute`] as the caller, so
//! the Plugin service decides again what the caller may run. The binary registers it when
//! Chat and Plugin run in one process.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use skein_core::ApiResult;
use skein_core::api::{PluginApi, ToolCaller};

use crate::sources::Citation;
use crate::tools::{Progress, TOOL_DEADLINE, ToolCall, ToolResult, ToolRunner, ToolSpec};
use crate::turn::Turn;

/// Runs the Plugin service's tools in chat.
pub struct PluginTools(pub Arc<dyn PluginApi>);

fn caller(turn: &Turn, call_key: &str) -> ToolCaller {
    ToolCaller {
        call_key: call_key.to_string(),
        user_id: turn.user_id.clone(),
        conversation_id: Some(turn.conversation.id.clone()),
        request_id: turn.request_id.clone(),
        bound_plugin_ids: turn.settings.plugin_ids.clone(),
    }
}

#[async_trait]
impl ToolRunner for PluginTools {
    fn name(&self) -> &str {
        "plugins"
    }

    async fn tools(&self, turn: &Turn) -> ApiResult<Vec<ToolSpec>> {
        Ok(self
            .0
            .tools(&caller(turn, ""))
            .await?
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name,
                description: t.description,
                parameters: t.parameters,
                requires_approval: t.requires_approval,
            })
            .collect())
    }

    async fn run(&self, turn: &Turn, call: &ToolCall, progress: &Progress) -> ToolResult {
        // A second less than chat's own deadline, so the plugin's clearer message wins.
        let deadline = TOOL_DEADLINE.saturating_sub(std::time::Duration::from_secs(1));
        let output = self
            .0
            .execute_reporting(
                &caller(turn, &call.key),
                &call.name,
                &call.arguments,
                deadline,
                progress.clone(),
            )
            .await;
        let mut citations: Vec<Citation> = output
            .citations
            .iter()
            .enumerate()
            .map(|(i, c)| Citation {
                source: call.name.clone(),
                label: (i + 1).to_string(),
                title: c.title.clone(),
                url: Some(c.url.clone()).filter(|u| !u.is_empty()),
                excerpt: c.snippet.clone(),
                reference: serde_json::Value::Null,
            })
            .collect();
        // Files a tool made (a drawn image) ride along as citations the answer shows.
        citations.extend(output.files.iter().map(|f| Citation {
            source: call.name.clone(),
            label: String::new(),
            title: f.id.clone(),
            url: Some(f.url.clone()),
            excerpt: String::new(),
            reference: json!({"file_id": f.id, "content_type": f.content_type}),
        }));
        ToolResult {
            content: output.content,
            is_error: output.is_error,
            citations,
        }
    }
}
