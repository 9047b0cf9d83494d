//! MCP sampling through the relay: when an MCP server asks its client for a completion
//! during a tool call (`sampling/createMessage`), Skein answers with the admin's sampling
//! model, as the user whose call it is — routed, limited and billed like any of their
//! calls, recorded with the conversation. Without a sampling model set, Skein does not
//! offer sampling and such requests are refused.

use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use skein_core::api::{ChatEvent, RelayApi, RelayCaller, ToolCaller};

use crate::mcp_client::Sampler;

/// Completions for one tool call's sampling requests; each stops (billed for what was
/// delivered) when the session that asked ends.
pub(crate) struct RelaySampler {
    relay: Arc<dyn RelayApi>,
    caller: RelayCaller,
    model: String,
}

impl RelaySampler {
    /// A sampler for `caller`'s call with `model`, when both the relay and a model are set.
    pub(crate) fn for_call(
        relay: Option<&Arc<dyn RelayApi>>,
        model: Option<&str>,
        caller: &ToolCaller,
    ) -> Option<Arc<dyn Sampler>> {
        let (relay, model) = (relay?, model.filter(|m| !m.trim().is_empty())?);
        Some(Arc::new(RelaySampler {
            relay: relay.clone(),
            caller: RelayCaller {
                user_id: caller.user_id.clone(),
                group: None,
                request_id: caller.request_id.clone(),
                conversation_id: caller.conversation_id.clone(),
                cancel: None,
            },
            model: model.to_string(),
        }))
    }
}

#[async_trait::async_trait]
impl Sampler for RelaySampler {
    async fn complete(
        &self,
        mut request: Value,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(String, String, bool), String> {
        request["model"] = Value::from(self.model.clone());
        let caller = RelayCaller {
            cancel: Some(cancel),
            ..self.caller.clone()
        };
        let mut events = self
            .relay
            .chat(caller, request)
            .await
            .map_err(|e| e.message(skein_core::i18n::Lang::En).to_string())?;
        let (mut text, mut cut) = (String::new(), false);
        while let Some(event) = events.next().await {
            match event {
                ChatEvent::Delta(more) => text.push_str(&more),
                ChatEvent::Finish(reason) => cut = reason == "length",
                ChatEvent::Error(e) => return Err(e.message),
                ChatEvent::Done(_) => break,
                _ => {}
            }
        }
        Ok((self.model.clone(), text, cut))
    }
}
