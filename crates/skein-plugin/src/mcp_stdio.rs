//! MCP over stdio, for local servers an operator allowed (`[[plugin.mcp_commands]]`): each
//! listing or call starts the program afresh, speaks newline-delimited JSON-RPC on its
//! standard input and output (`initialize`, `notifications/initialized`, then `tools/list`
//! or `tools/call`), and ends it. The program runs with an empty environment (only `PATH`),
//! in a throwaway working directory, with its standard error discarded, its output capped at
//! [`crate::MAX_TOOL_ANSWER_BYTES`], and is killed at the call's deadline or when the answer
//! came. It is the operator's own program: it is not sandboxed further (no namespaces or
//! rlimits, unlike `run_code`).

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use skein_core::api::{ToolOutput, ToolProgress};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::config::McpCommand;
use crate::mcp::PROTOCOL_VERSION;
use crate::openapi::ToolDef;

/// What a plugin's `base_url` holds for a local server: `stdio:<name>`.
pub const SCHEME: &str = "stdio:";

/// The most pages of `tools/list` followed.
const MAX_PAGES: u64 = 10;

/// A running local server, for one listing or call.
struct Session {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
    /// Bytes read so far.
    read: usize,
}

impl Session {
    async fn start(command: &McpCommand) -> Result<Session, String> {
        let dir = std::env::temp_dir();
        let mut child = tokio::process::Command::new(&command.command)
            .args(&command.args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("the local server {} could not start: {e}", command.name))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the local server's pipes could not be opened".into());
        };
        Ok(Session {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            read: 0,
        })
    }

    async fn send(&mut self, message: &Value) -> Result<(), String> {
        let mut line = message.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|_| "the local server stopped reading".to_string())
    }

    /// Reads messages until the response to `id`; notifications of progress go to
    /// `progress`, the server's own requests are answered, anything else is skipped.
    async fn response(
        &mut self,
        id: u64,
        progress: Option<&ToolProgress>,
    ) -> Result<Value, String> {
        loop {
            let mut line = String::new();
            // Never more than what is left of the answer's budget, even within one line.
            let left = (crate::MAX_TOOL_ANSWER_BYTES + 1).saturating_sub(self.read);
            let n = (&mut self.stdout)
                .take(u64::try_from(left).unwrap_or(u64::MAX))
                .read_line(&mut line)
                .await
                .map_err(|_| "the local server's output is not text".to_string())?;
            if n == 0 {
                return Err("the local server ended without an answer".into());
            }
            self.read += n;
            if self.read > crate::MAX_TOOL_ANSWER_BYTES {
                return Err(format!(
                    "the local server wrote more than {} bytes",
                    crate::MAX_TOOL_ANSWER_BYTES
                ));
            }
            let Ok(message) = serde_json::from_str::<Value>(line.trim()) else {
                continue;
            };
            if let Some(reply) = crate::mcp::answer_server_request(&message) {
                self.send(&reply).await?;
                continue;
            }
            if crate::mcp::is_response_to(&message, id) {
                if let Some(error) = message.get("error") {
                    return Err(format!(
                        "the local server refused: {}",
                        error["message"].as_str().unwrap_or("no reason given")
                    ));
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
            if message["method"] == "notifications/progress"
                && let Some(progress) = progress
            {
                progress(crate::mcp::progress_event(&message["params"]));
            }
        }
    }

    async fn request(
        &mut self,
        id: u64,
        method: &str,
        params: Value,
        progress: Option<&ToolProgress>,
    ) -> Result<Value, String> {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        self.response(id, progress).await
    }

    async fn initialize(&mut self) -> Result<(), String> {
        self.request(
            1,
            "initialize",
            json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                "clientInfo": {"name": "skein", "version": env!("CARGO_PKG_VERSION")}}),
            None,
        )
        .await?;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
    }

    async fn end(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Runs `work` on a fresh session of `command` within `deadline`; the program is ended
/// either way.
async fn with_session<T>(
    command: &McpCommand,
    deadline: Duration,
    work: impl AsyncFnOnce(&mut Session) -> Result<T, String>,
) -> Result<T, String> {
    let mut session = Session::start(command).await?;
    let outcome = match tokio::time::timeout(deadline, work(&mut session)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "the local server did not answer within {} seconds",
            deadline.as_secs()
        )),
    };
    session.end().await;
    outcome
}

/// The local server's tools, as plugin tools (names vendors cannot take are left out).
pub async fn list_tools(command: &McpCommand, deadline: Duration) -> Result<Vec<ToolDef>, String> {
    with_session(command, deadline, async |session: &mut Session| {
        session.initialize().await?;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = session
                .request(2 + page, "tools/list", params, None)
                .await?;
            tools.extend(crate::mcp::tools_of(&result));
            cursor = result["nextCursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    })
    .await
}

/// Calls tool `name` of the local server with `arguments`, reporting its progress.
pub async fn call_tool(
    command: &McpCommand,
    name: &str,
    arguments: &Value,
    deadline: Duration,
    progress: &ToolProgress,
) -> Result<ToolOutput, String> {
    with_session(command, deadline, async |session: &mut Session| {
        session.initialize().await?;
        let result = session
            .request(
                2,
                "tools/call",
                json!({"name": name, "arguments": arguments, "_meta": {"progressToken": "skein-call"}}),
                Some(progress),
            )
            .await?;
        Ok(crate::mcp::output_of(&result))
    })
    .await
}
