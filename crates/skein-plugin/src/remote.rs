//! The Plugin service as a process that does not run it reaches it: [`RemotePlugins`], an
//! HTTP client of `/internal/plugin/*` (served by `http/internal.rs`) implementing
//! [`PluginApi`], and the bodies both sides share.
//!
//! A call streams as NDJSON: `{"progress": ...}` lines while the tool runs, then one
//! `{"output": ...}` line. Dropping the stream (the user pressed Stop) closes the connection,
//! and the Plugin service then stops the call exactly as an in-process caller dropping its
//! future would: a paid call's hold is released. A Plugin service that cannot be reached is
//! a failed call the model hears about, never a refused answer, as the trait promises.

use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skein_core::ApiError;
use skein_core::api::{PluginApi, ToolCaller, ToolDescriptor, ToolOutput, ToolProgress};
use skein_core::internal::InternalClient;

/// The `PluginApi` of a Plugin service in another process.
#[derive(Debug, Clone)]
pub struct RemotePlugins(pub InternalClient);

/// Longest line a call's stream may send (one progress report or the output).
const LINE_LIMIT: usize = 8 * 1024 * 1024;

/// How long past its deadline a call's answer may take to arrive (the service ends a call at
/// its deadline; this covers the hop and a slow release of a paid call's hold).
const DEADLINE_GRACE: Duration = Duration::from_secs(30);

/// Which tools may this caller use.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolsBody {
    pub(crate) caller: ToolCaller,
}

/// May this user use this plugin.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MayUseBody {
    pub(crate) user_id: String,
    pub(crate) plugin_id: String,
}

/// The answer to [`MayUseBody`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Usable {
    pub(crate) usable: bool,
}

/// One call of a tool.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteBody {
    pub(crate) caller: ToolCaller,
    pub(crate) name: String,
    pub(crate) arguments: String,
    pub(crate) deadline_ms: u64,
}

/// One line of a call's stream.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CallLine {
    /// How the call goes.
    Progress(Value),
    /// What it answered; the last line.
    Output(ToolOutput),
}

#[async_trait]
impl PluginApi for RemotePlugins {
    async fn tools(&self, caller: &ToolCaller) -> Result<Vec<ToolDescriptor>, ApiError> {
        let body = ToolsBody {
            caller: caller.clone(),
        };
        self.0.call("/internal/plugin/tools", &body).await
    }

    async fn may_use(&self, user_id: &str, plugin_id: &str) -> Result<bool, ApiError> {
        let body = MayUseBody {
            user_id: user_id.to_owned(),
            plugin_id: plugin_id.to_owned(),
        };
        let answer: Usable = self.0.call("/internal/plugin/may-use", &body).await?;
        Ok(answer.usable)
    }

    async fn execute(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
    ) -> ToolOutput {
        self.execute_reporting(
            caller,
            name,
            arguments,
            deadline,
            std::sync::Arc::new(|_: Value| {}),
        )
        .await
    }

    async fn execute_reporting(
        &self,
        caller: &ToolCaller,
        name: &str,
        arguments: &str,
        deadline: Duration,
        progress: ToolProgress,
    ) -> ToolOutput {
        let body = ExecuteBody {
            caller: caller.clone(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
            deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        };
        let call = async {
            let response = match self.0.open("/internal/plugin/execute", &body).await {
                Ok(response) => response,
                Err(error) => {
                    tracing::warn!(error = %error.message(skein_core::i18n::Lang::En), tool = name, "a remote tool call was refused");
                    return unavailable();
                }
            };
            read_call(response, &progress).await
        };
        match tokio::time::timeout(deadline + DEADLINE_GRACE, call).await {
            Ok(output) => output,
            Err(_) => ToolOutput::error(format!("{name} did not answer in time.")),
        }
    }
}

/// What the model hears when the Plugin service cannot be reached.
fn unavailable() -> ToolOutput {
    ToolOutput::error("The tools are unavailable right now.")
}

/// Reads a call's NDJSON stream: progress reported as it comes, the output at the end.
async fn read_call(response: reqwest::Response, progress: &ToolProgress) -> ToolOutput {
    let mut body = response.bytes_stream();
    let mut pending = BytesMut::new();
    loop {
        while let Some(at) = pending.iter().position(|&b| b == b'\n') {
            let line = pending.split_to(at + 1);
            let line = &line[..at];
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<CallLine>(line) {
                Ok(CallLine::Progress(report)) => progress(report),
                Ok(CallLine::Output(output)) => return output,
                Err(error) => {
                    tracing::warn!(%error, "a remote tool call sent a line that is not one");
                    return unavailable();
                }
            }
        }
        if pending.len() > LINE_LIMIT {
            tracing::warn!("a remote tool call sent an over-long line");
            return unavailable();
        }
        match body.next().await {
            Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
            Some(Err(error)) => {
                tracing::warn!(%error, "a remote tool call's stream broke");
                return unavailable();
            }
            None => {
                tracing::warn!("a remote tool call ended without its output");
                return unavailable();
            }
        }
    }
}
