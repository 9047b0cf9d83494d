//! MCP over stdio, for local servers an operator allowed (`[[plugin.mcp_commands]]`): each
//! listing or call starts the program afresh, speaks MCP on its standard input and output
//! through the official SDK (`rmcp`: newline-delimited JSON-RPC; lines that are not JSON
//! are skipped), and ends it. The program runs with an empty environment (only `PATH`), in
//! a throwaway working directory, with its standard error discarded, its output capped at
//! [`crate::MAX_TOOL_ANSWER_BYTES`], and is killed at the call's deadline or when the answer
//! came. It is the operator's own program: it is not sandboxed further (no namespaces or
//! rlimits, unlike `run_code`).

use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use skein_core::api::{ToolOutput, ToolProgress};
use tokio::io::{AsyncRead, ReadBuf};

use crate::config::McpCommand;
use crate::mcp_client::{Handler, McpFailure, Sampler, Session, Trouble};
use crate::openapi::ToolDef;

/// What a plugin's `base_url` holds for a local server: `stdio:<name>`.
pub const SCHEME: &str = "stdio:";

/// Runs `work` on a fresh session of `command` within `deadline`; the program is ended
/// either way.
async fn with_session<R>(
    command: &McpCommand,
    deadline: Duration,
    handler: Handler,
    work: impl AsyncFnOnce(&Session) -> Result<R, rmcp::ServiceError>,
) -> Result<R, String> {
    let mut child = tokio::process::Command::new(&command.command)
        .args(&command.args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("the local server {} could not start: {e}", command.name))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the local server's pipes could not be opened".into());
    };
    let trouble = Trouble::default();
    let stdout = Capped {
        inner: stdout,
        left: crate::MAX_TOOL_ANSWER_BYTES,
        trouble: trouble.clone(),
    };
    let outcome = crate::mcp_client::run((stdout, stdin), handler, deadline, &trouble, work).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    outcome.map_err(|e| match e {
        McpFailure::Deadline(secs) => {
            format!("the local server did not answer within {secs} seconds")
        }
        other => format!("the local server failed: {other}"),
    })
}

/// The program's standard output, ending in an error past the answer's budget.
struct Capped<R> {
    inner: R,
    left: usize,
    trouble: Trouble,
}

impl<R: AsyncRead + Unpin> AsyncRead for Capped<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled().len() - before;
            match self.left.checked_sub(read) {
                Some(left) => self.left = left,
                None => {
                    let reason = format!(
                        "the local server wrote more than {} bytes",
                        crate::MAX_TOOL_ANSWER_BYTES
                    );
                    self.trouble.saw(McpFailure::Other(reason.clone()));
                    return Poll::Ready(Err(std::io::Error::other(reason)));
                }
            }
        }
        polled
    }
}

/// The local server's tools, as plugin tools (names vendors cannot take are left out).
pub async fn list_tools(command: &McpCommand, deadline: Duration) -> Result<Vec<ToolDef>, String> {
    with_session(
        command,
        deadline,
        Handler::new(None, None),
        async |session| crate::mcp_client::list_tools(session).await,
    )
    .await
}

/// Calls tool `name` of the local server with `arguments`, reporting its progress.
pub(crate) async fn call_tool(
    command: &McpCommand,
    name: &str,
    arguments: &Value,
    deadline: Duration,
    progress: &ToolProgress,
    sampler: Option<std::sync::Arc<dyn Sampler>>,
) -> Result<ToolOutput, String> {
    let handler = Handler::new(Some(progress.clone()), sampler);
    with_session(command, deadline, handler, async |session| {
        crate::mcp_client::call_tool(session, name, arguments).await
    })
    .await
}
