//! MCP servers over Streamable HTTP (MCP 2025-03-26 and 2025-06-18): JSON-RPC 2.0 messages
//! POSTed to the server's one endpoint with `Accept: application/json, text/event-stream`;
//! the answer is either one JSON message or an SSE stream carrying it. A session starts with
//! `initialize` (the server may hand out `Mcp-Session-Id`, sent back on every later request,
//! with `MCP-Protocol-Version` set to the version agreed), then `notifications/initialized`;
//! then `tools/list` (following `nextCursor`) or `tools/call`.
//!
//! Written here rather than with the official `rmcp` SDK: the two calls Skein makes need a
//! few dozen lines over the HTTP client already in the tree, where `rmcp` with its HTTP
//! transport adds its own dependency tree to a 2-core build shared by six builds; and every
//! request goes through [`crate::net`], so the SSRF guard, size limit and timeout hold for
//! MCP as for OpenAPI tools. Local servers an operator allowed speak MCP over stdio instead
//! ([`crate::mcp_stdio`]). A call asks for progress (`_meta.progressToken`); the server's
//! `notifications/progress` in the call's event stream are reported as they arrive. Not here
//! yet: the older HTTP+SSE transport, server-initiated requests.

use std::sync::Mutex;

use serde_json::{Value, json};
use skein_core::api::{ToolOutput, ToolProgress};

use crate::net::{self, FetchPolicy, Outgoing};
use crate::openapi::{ToolDef, is_valid_name};

/// The protocol version asked for.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// The most pages of `tools/list` followed.
const MAX_PAGES: usize = 10;

/// A client of one MCP server.
pub struct McpClient {
    url: String,
    headers: Vec<(String, String)>,
    policy: FetchPolicy,
}

/// An open session: its id and agreed version.
struct Session {
    id: Option<String>,
    version: String,
}

impl McpClient {
    /// A client of the server at `url`, sending `headers` (its auth) on every request.
    pub fn new(url: &str, headers: Vec<(String, String)>, policy: FetchPolicy) -> Self {
        McpClient {
            url: url.to_string(),
            headers,
            policy,
        }
    }

    async fn post(&self, session: Option<&Session>, message: Value) -> Result<net::Answer, String> {
        self.post_observed(session, message, None).await
    }

    async fn post_observed(
        &self,
        session: Option<&Session>,
        message: Value,
        observer: Option<net::Observer<'_>>,
    ) -> Result<net::Answer, String> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|_| "the server address is not a URL".to_string())?;
        let mut headers = self.headers.clone();
        headers.push((
            "accept".into(),
            "application/json, text/event-stream".into(),
        ));
        if let Some(session) = session {
            headers.push(("mcp-protocol-version".into(), session.version.clone()));
            if let Some(id) = &session.id {
                headers.push(("mcp-session-id".into(), id.clone()));
            }
        }
        net::send_observed(
            Outgoing {
                method: reqwest::Method::POST,
                url,
                headers,
                body: Some(message),
            },
            self.policy,
            observer,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Sends request `method` and returns its `result` (or the server's error).
    async fn request(
        &self,
        session: Option<&Session>,
        id: u64,
        method: &str,
        params: Value,
    ) -> Result<(Value, net::Answer), String> {
        self.request_observed(session, id, method, params, None)
            .await
    }

    async fn request_observed(
        &self,
        session: Option<&Session>,
        id: u64,
        method: &str,
        params: Value,
        observer: Option<net::Observer<'_>>,
    ) -> Result<(Value, net::Answer), String> {
        let answer = self
            .post_observed(
                session,
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
                observer,
            )
            .await?;
        if answer.status == 404 && session.is_some_and(|s| s.id.is_some()) {
            return Err("the server ended the session".into());
        }
        if !(200..300).contains(&answer.status) {
            return Err(format!("the server answered HTTP {}", answer.status));
        }
        let message = response_message(&answer, id)?;
        if let Some(error) = message.get("error") {
            return Err(format!(
                "the server refused {method}: {}",
                error["message"].as_str().unwrap_or("no reason given")
            ));
        }
        Ok((
            message.get("result").cloned().unwrap_or(Value::Null),
            answer,
        ))
    }

    /// Opens a session.
    async fn initialize(&self) -> Result<Session, String> {
        let (result, answer) = self
            .request(
                None,
                1,
                "initialize",
                json!({"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "skein", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await?;
        let session = Session {
            id: answer
                .headers
                .get("mcp-session-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            version: result["protocolVersion"]
                .as_str()
                .unwrap_or(PROTOCOL_VERSION)
                .to_string(),
        };
        let note = self
            .post(
                Some(&session),
                json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            )
            .await?;
        if !(200..300).contains(&note.status) {
            return Err(format!(
                "the server refused the initialized notification (HTTP {})",
                note.status
            ));
        }
        Ok(session)
    }

    /// The server's tools, as plugin tools (names vendors cannot take are left out).
    pub async fn list_tools(&self) -> Result<Vec<ToolDef>, String> {
        let session = self.initialize().await?;
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let (result, _) = self
                .request(Some(&session), 2 + page as u64, "tools/list", params)
                .await?;
            tools.extend(tools_of(&result));
            cursor = result["nextCursor"].as_str().map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        Ok(tools)
    }

    /// Calls tool `name` with `arguments`, telling `progress` of the server's progress
    /// notifications as they arrive.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: &Value,
        progress: &ToolProgress,
    ) -> Result<ToolOutput, String> {
        let session = self.initialize().await?;
        let events = ProgressReader::new(progress.clone());
        let observer = |chunk: &[u8]| events.push(chunk);
        let (result, _) = self
            .request_observed(
                Some(&session),
                2,
                "tools/call",
                json!({"name": name, "arguments": arguments,
                    "_meta": {"progressToken": "skein-call"}}),
                Some(&observer),
            )
            .await?;
        Ok(output_of(&result))
    }
}

/// The tools of a `tools/list` result, as plugin tools (names vendors cannot take are left
/// out).
pub(crate) fn tools_of(result: &Value) -> Vec<ToolDef> {
    let mut tools = Vec::new();
    for tool in result["tools"].as_array().into_iter().flatten() {
        let Some(name) = tool["name"].as_str().filter(|n| is_valid_name(n)) else {
            tracing::warn!(tool = %tool["name"], "an MCP tool's name is not one models accept; left out");
            continue;
        };
        let mut parameters = tool["inputSchema"].clone();
        if !parameters.is_object() {
            parameters = json!({"type": "object", "properties": {}});
        }
        tools.push(ToolDef {
            name: name.to_string(),
            description: tool["description"].as_str().unwrap_or_default().to_string(),
            parameters,
            method: String::new(),
            path: String::new(),
            params: Vec::new(),
            body: false,
        });
    }
    tools
}

/// What a `tools/call` result says, for the model: its text blocks (others named), else its
/// structured content.
pub(crate) fn output_of(result: &Value) -> ToolOutput {
    let mut parts = Vec::new();
    for block in result["content"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("text") => parts.push(block["text"].as_str().unwrap_or_default().to_string()),
            Some(other) => parts.push(format!("[{other} content]")),
            None => {}
        }
    }
    if parts.is_empty() && !result["structuredContent"].is_null() {
        parts.push(result["structuredContent"].to_string());
    }
    ToolOutput {
        content: parts.join("\n"),
        is_error: result["isError"].as_bool().unwrap_or(false),
        ..ToolOutput::default()
    }
}

/// Reads an event stream as it arrives and reports its `notifications/progress`.
struct ProgressReader {
    progress: ToolProgress,
    /// What arrived after the last complete event.
    pending: Mutex<String>,
}

/// Most bytes of an unfinished event kept (a server that never ends one is not followed).
const MAX_PENDING_EVENT: usize = 64 * 1024;

impl ProgressReader {
    fn new(progress: ToolProgress) -> Self {
        ProgressReader {
            progress,
            pending: Mutex::new(String::new()),
        }
    }

    fn push(&self, chunk: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        pending.push_str(&String::from_utf8_lossy(chunk).replace('\r', ""));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n");
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if message["method"] == "notifications/progress" {
                let params = &message["params"];
                (self.progress)(json!({
                    "stage": "progress",
                    "progress": params["progress"],
                    "total": params["total"],
                    "text": params["message"].as_str().unwrap_or_default(),
                }));
            }
        }
        if pending.len() > MAX_PENDING_EVENT {
            pending.clear();
        }
    }
}

/// The JSON-RPC response with `id` in an answer: the JSON body, or the SSE event carrying it.
fn response_message(answer: &net::Answer, id: u64) -> Result<Value, String> {
    if answer.content_type.starts_with("text/event-stream") {
        let text = String::from_utf8_lossy(&answer.body).replace("\r\n", "\n");
        for event in text.split("\n\n") {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if message["id"].as_u64() == Some(id) {
                return Ok(message);
            }
        }
        return Err("the server's event stream ended without an answer".into());
    }
    let message: Value = serde_json::from_slice(&answer.body)
        .map_err(|_| "the server answered invalid JSON".to_string())?;
    match message {
        Value::Array(batch) => batch
            .into_iter()
            .find(|m| m["id"].as_u64() == Some(id))
            .ok_or_else(|| "the server's answer has no response".to_string()),
        m => Ok(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str, body: &str) -> net::Answer {
        net::Answer {
            status: 200,
            content_type: content_type.into(),
            headers: reqwest::header::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn responses_are_found_in_json_and_in_event_streams() {
        let json_body = answer(
            "application/json",
            r#"{"jsonrpc":"2.0","id":3,"result":{"ok":true}}"#,
        );
        assert_eq!(
            response_message(&json_body, 3).unwrap()["result"]["ok"],
            true
        );
        let sse = answer(
            "text/event-stream",
            "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":3,\"result\":{\"n\":1}}\r\n\r\n",
        );
        assert_eq!(response_message(&sse, 3).unwrap()["result"]["n"], 1);
        assert!(response_message(&answer("text/event-stream", "data: {}\n\n"), 3).is_err());
        assert!(response_message(&answer("application/json", "{nope"), 3).is_err());
    }
}
