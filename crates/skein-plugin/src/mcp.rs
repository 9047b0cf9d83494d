//! MCP servers over HTTP, in both of the protocol's transports.
//!
//! **Streamable HTTP** (MCP 2025-03-26 to 2025-11-25, the version agreed by `rmcp`): JSON-RPC
//! 2.0 messages POSTed to the server's one endpoint with `Accept: application/json, text/event-stream`; the answer is
//! either one JSON message or an SSE stream carrying it. A session starts with `initialize`
//! (the server may hand out `Mcp-Session-Id`, sent back on every later request, with
//! `MCP-Protocol-Version` set to the version agreed), then `notifications/initialized`; then
//! `tools/list` (following `nextCursor`) or `tools/call`.
//!
//! **HTTP+SSE** (MCP 2024-11-05, the older transport many servers still speak): a GET opens an
//! event stream whose first event, `endpoint`, names where to POST messages; each POST is
//! accepted (202) and its response arrives on the stream as a `message` event. The endpoint
//! must be on the stream's own origin (scheme, host and port), so a server cannot send the
//! plugin's key elsewhere. The stream lives for one listing or call, bounded by the call's
//! deadline and the size limit like any answer.
//!
//! Which one a server speaks is found out when it is registered, as the specification's
//! compatibility section says: `initialize` is POSTed to the address given; a 4xx answer
//! (other than 401 and 403, which are about the key) means an older server, and a GET there
//! must then give an `endpoint` event. An SSE server's address is stored as
//! `sse+http(s)://...` ([`SSE_PREFIX`]).
//!
//! Streamable HTTP goes through the official SDK, `rmcp` ([`crate::mcp_client`]), over
//! Skein's guarded HTTP client, so the SSRF guard, size limit and timeout hold for MCP as
//! for OpenAPI tools. `rmcp` no longer carries the older HTTP+SSE transport, which is
//! written here: the same few messages (`initialize`, `notifications/initialized`,
//! `tools/list`, `tools/call`) over [`crate::net`]. Local servers an operator allowed speak
//! MCP over stdio through `rmcp` too ([`crate::mcp_stdio`]). A call asks for progress
//! (`_meta.progressToken`); the server's `notifications/progress` are reported as they
//! arrive. Requests the server makes during a call are answered on every transport, so it
//! goes on instead of waiting out the deadline: `ping` with an empty result; sampling, on
//! the SDK's transports, with the admin's sampling model when one is set
//! ([`crate::sampling`]); anything else (and sampling over HTTP+SSE) with "method not
//! found".

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use skein_core::api::{ToolOutput, ToolProgress};

use crate::mcp_client::{MAX_PAGES, McpFailure, Sampler, output_of, progress_event, tools_of};
use crate::net::{self, FetchPolicy, Outgoing};
use crate::openapi::ToolDef;

/// The protocol version asked for over the older HTTP+SSE transport, which it belongs to.
pub const SSE_PROTOCOL_VERSION: &str = "2024-11-05";

/// What an MCP plugin's stored address starts with when its server speaks HTTP+SSE.
pub const SSE_PREFIX: &str = "sse+";

/// A client of one MCP server.
pub struct McpClient {
    url: String,
    /// The server speaks the older HTTP+SSE transport.
    sse: bool,
    headers: Vec<(String, String)>,
    policy: FetchPolicy,
}

/// Lists the tools of the server at `url`, finding out which transport it speaks: answers
/// the address to store (with [`SSE_PREFIX`] for an HTTP+SSE server) and its tools.
pub async fn discover(
    url: &str,
    headers: Vec<(String, String)>,
    policy: FetchPolicy,
) -> Result<(String, Vec<ToolDef>), String> {
    let streamable = McpClient::new(url, headers.clone(), policy);
    match streamable.list_tools_inner().await {
        Ok(tools) => Ok((url.to_string(), tools)),
        Err(McpFailure::Status(status, _))
            if (400..500).contains(&status) && status != 401 && status != 403 =>
        {
            let stored = format!("{SSE_PREFIX}{url}");
            let tools = McpClient::new(&stored, headers, policy)
                .list_tools_inner()
                .await
                .map_err(|e| {
                    format!("{e} (as an HTTP+SSE server; as a Streamable HTTP one it answered HTTP {status})")
                })?;
            Ok((stored, tools))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl McpClient {
    /// A client of the server at `url`, sending `headers` (its auth) on every request.
    /// An address with [`SSE_PREFIX`] is an HTTP+SSE server's.
    pub fn new(url: &str, headers: Vec<(String, String)>, policy: FetchPolicy) -> Self {
        let (url, sse) = match url.strip_prefix(SSE_PREFIX) {
            Some(rest) => (rest, true),
            None => (url, false),
        };
        McpClient {
            url: url.to_string(),
            sse,
            headers,
            policy,
        }
    }

    /// The server's tools, as plugin tools (names vendors cannot take are left out).
    pub async fn list_tools(&self) -> Result<Vec<ToolDef>, String> {
        self.list_tools_inner().await.map_err(|e| e.to_string())
    }

    async fn list_tools_inner(&self) -> Result<Vec<ToolDef>, McpFailure> {
        if self.sse {
            return match self.over_sse(SseWork::List, None).await? {
                SseDone::Tools(tools) => Ok(tools),
                SseDone::Output(_) => Err("the server answered a listing with a call".into()),
            };
        }
        crate::mcp_client::over_http(
            &self.url,
            &self.headers,
            self.policy,
            crate::mcp_client::Handler::new(None, None),
            async |session| crate::mcp_client::list_tools(session).await,
        )
        .await
    }

    /// Calls tool `name` with `arguments`, telling `progress` of the server's progress
    /// notifications as they arrive.
    pub(crate) async fn call_tool(
        &self,
        name: &str,
        arguments: &Value,
        progress: &ToolProgress,
        sampler: Option<Arc<dyn Sampler>>,
    ) -> Result<ToolOutput, String> {
        self.call_tool_inner(name, arguments, progress, sampler)
            .await
            .map_err(|e| e.to_string())
    }

    async fn call_tool_inner(
        &self,
        name: &str,
        arguments: &Value,
        progress: &ToolProgress,
        sampler: Option<Arc<dyn Sampler>>,
    ) -> Result<ToolOutput, McpFailure> {
        if self.sse {
            return match self
                .over_sse(SseWork::Call { name, arguments }, Some(progress))
                .await?
            {
                SseDone::Output(output) => Ok(output),
                SseDone::Tools(_) => Err("the server answered a call with a listing".into()),
            };
        }
        crate::mcp_client::over_http(
            &self.url,
            &self.headers,
            self.policy,
            crate::mcp_client::Handler::new(Some(progress.clone()), sampler),
            async |session| crate::mcp_client::call_tool(session, name, arguments).await,
        )
        .await
    }
}

/// What one HTTP+SSE session is for.
enum SseWork<'a> {
    /// `tools/list`, every page.
    List,
    /// `tools/call` of `name`.
    Call { name: &'a str, arguments: &'a Value },
}

/// What an HTTP+SSE session gave.
enum SseDone {
    Tools(Vec<ToolDef>),
    Output(ToolOutput),
}

/// One server-sent event: its name (`message` when unnamed) and data.
type SseEvent = (String, String);

/// Splits an event stream as it arrives into events, sent to the session waiting for them.
struct SseReader {
    sender: Mutex<Option<tokio::sync::mpsc::UnboundedSender<SseEvent>>>,
    /// What arrived after the last complete event.
    pending: Mutex<String>,
}

impl SseReader {
    fn push(&self, chunk: &[u8]) {
        let (Ok(mut pending), Ok(sender)) = (self.pending.lock(), self.sender.lock()) else {
            return;
        };
        pending.push_str(&String::from_utf8_lossy(chunk).replace('\r', ""));
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let mut name = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            if data.is_empty() {
                continue; // a comment or keep-alive
            }
            if let Some(sender) = sender.as_ref() {
                let _ = sender.send((name, data.join("\n")));
            }
        }
        if pending.len() > MAX_PENDING_EVENT {
            pending.clear();
        }
    }

    /// No more events come: the session reads what arrived, then learns the stream ended.
    fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
    }
}

/// Where an HTTP+SSE server says to POST, from its `endpoint` event: resolved against the
/// stream's address, and only on the stream's own origin.
fn endpoint_of(stream: &reqwest::Url, data: &str) -> Result<reqwest::Url, String> {
    let endpoint = stream
        .join(data.trim())
        .map_err(|_| "the server's endpoint is not a URL".to_string())?;
    if endpoint.scheme() != stream.scheme()
        || endpoint.host_str() != stream.host_str()
        || endpoint.port_or_known_default() != stream.port_or_known_default()
    {
        return Err("the server's endpoint is on another origin; refused".into());
    }
    Ok(endpoint)
}

impl McpClient {
    /// Runs `work` over an HTTP+SSE session: the event stream is read while the messages
    /// are POSTed, and closed when the work is done.
    async fn over_sse(
        &self,
        work: SseWork<'_>,
        progress: Option<&ToolProgress>,
    ) -> Result<SseDone, McpFailure> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|_| "the server address is not a URL".to_string())?;
        let (sender, mut events) = tokio::sync::mpsc::unbounded_channel();
        let reader = SseReader {
            sender: Mutex::new(Some(sender)),
            pending: Mutex::new(String::new()),
        };
        let observer = |chunk: &[u8]| reader.push(chunk);
        let mut headers = self.headers.clone();
        headers.push(("accept".into(), "text/event-stream".into()));
        let stream = net::send_observed(
            Outgoing {
                method: reqwest::Method::GET,
                url: url.clone(),
                headers,
                body: None,
            },
            self.policy,
            Some(&observer),
        );
        let session = self.sse_session(&url, &mut events, work, progress);
        tokio::pin!(stream, session);
        let ended = tokio::select! {
            done = &mut session => return done,
            ended = &mut stream => ended,
        };
        // The stream ended first: what it carried is still read, then the end is the error.
        reader.close();
        match ended {
            Ok(answer) if !(200..300).contains(&answer.status) => {
                Err(McpFailure::Status(answer.status, None))
            }
            Ok(_) => session.await,
            Err(e) => Err(e.to_string().into()),
        }
    }

    async fn sse_session(
        &self,
        url: &reqwest::Url,
        events: &mut tokio::sync::mpsc::UnboundedReceiver<SseEvent>,
        work: SseWork<'_>,
        progress: Option<&ToolProgress>,
    ) -> Result<SseDone, McpFailure> {
        let endpoint = loop {
            let Some((name, data)) = events.recv().await else {
                return Err("the server's event stream ended before it named its endpoint".into());
            };
            if name == "endpoint" {
                break endpoint_of(url, &data)?;
            }
        };
        let result = self
            .sse_request(
                &endpoint,
                events,
                1,
                "initialize",
                json!({"protocolVersion": SSE_PROTOCOL_VERSION, "capabilities": {},
                    "clientInfo": {"name": "skein", "version": env!("CARGO_PKG_VERSION")}}),
                None,
            )
            .await?;
        tracing::debug!(version = %result["protocolVersion"], "MCP session over HTTP+SSE");
        self.sse_post(
            &endpoint,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
        match work {
            SseWork::List => {
                let mut tools = Vec::new();
                let mut cursor: Option<String> = None;
                for page in 0..MAX_PAGES as u64 {
                    let params = match &cursor {
                        Some(c) => json!({"cursor": c}),
                        None => json!({}),
                    };
                    let result = self
                        .sse_request(&endpoint, events, 2 + page, "tools/list", params, None)
                        .await?;
                    tools.extend(tools_of(&result));
                    cursor = result["nextCursor"].as_str().map(str::to_string);
                    if cursor.is_none() {
                        break;
                    }
                }
                Ok(SseDone::Tools(tools))
            }
            SseWork::Call { name, arguments } => {
                let result = self
                    .sse_request(
                        &endpoint,
                        events,
                        2,
                        "tools/call",
                        json!({"name": name, "arguments": arguments,
                            "_meta": {"progressToken": "skein-call"}}),
                        progress,
                    )
                    .await?;
                Ok(SseDone::Output(output_of(&result)))
            }
        }
    }

    /// POSTs one message to the session's endpoint; the server accepts it (202, or any 2xx).
    async fn sse_post(&self, endpoint: &reqwest::Url, message: Value) -> Result<(), McpFailure> {
        let mut headers = self.headers.clone();
        headers.push(("accept".into(), "application/json".into()));
        let answer = net::send(
            Outgoing {
                method: reqwest::Method::POST,
                url: endpoint.clone(),
                headers,
                body: Some(message),
            },
            self.policy,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !(200..300).contains(&answer.status) {
            return Err(McpFailure::Status(answer.status, None));
        }
        Ok(())
    }

    /// Sends request `method` and waits for its response on the stream, reporting progress
    /// notifications that come first; answers its `result`.
    async fn sse_request(
        &self,
        endpoint: &reqwest::Url,
        events: &mut tokio::sync::mpsc::UnboundedReceiver<SseEvent>,
        id: u64,
        method: &str,
        params: Value,
        progress: Option<&ToolProgress>,
    ) -> Result<Value, McpFailure> {
        self.sse_post(
            endpoint,
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await?;
        loop {
            let Some((name, data)) = events.recv().await else {
                return Err(
                    format!("the server's event stream ended before it answered {method}").into(),
                );
            };
            if name != "message" {
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if message["method"] == "notifications/progress" {
                if let Some(progress) = progress {
                    progress(progress_event(&message["params"]));
                }
                continue;
            }
            if let Some(reply) = answer_server_request(&message) {
                self.sse_post(endpoint, reply).await?;
                continue;
            }
            if is_response_to(&message, id) {
                refused(method, &message)?;
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
        }
    }
}

/// The answer to a request an HTTP+SSE server sent (a message with a `method` and an `id`),
/// `None` for anything else. Skein declares no client capabilities there, so only `ping` gets a result;
/// any other request (sampling, roots, elicitation) is refused with JSON-RPC's "method not
/// found", so a server that asks anyway goes on at once instead of waiting out the call.
pub(crate) fn answer_server_request(message: &Value) -> Option<Value> {
    let method = message.get("method")?.as_str()?;
    let id = message.get("id").filter(|id| !id.is_null())?;
    Some(if method == "ping" {
        json!({"jsonrpc": "2.0", "id": id, "result": {}})
    } else {
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601,
            "message": format!("Skein's MCP client does not offer {method}")}})
    })
}

/// Whether `message` is the response to this client's request `id`: a request the server
/// sends may carry the same id, and is not one.
pub(crate) fn is_response_to(message: &Value, id: u64) -> bool {
    message.get("method").is_none() && message["id"].as_u64() == Some(id)
}

/// `Err` with the server's reason when `message` is a JSON-RPC error.
fn refused(method: &str, message: &Value) -> Result<(), McpFailure> {
    match message.get("error") {
        Some(error) => Err(format!(
            "the server refused {method}: {}",
            error["message"].as_str().unwrap_or("no reason given")
        )
        .into()),
        None => Ok(()),
    }
}

/// Most bytes of an unfinished event kept (a server that never ends one is not followed).
const MAX_PENDING_EVENT: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sse_endpoint_must_be_on_the_streams_origin() {
        let stream = reqwest::Url::parse("http://127.0.0.1:9000/mcp/sse").unwrap();
        assert_eq!(
            endpoint_of(&stream, " /messages?sessionId=1\n")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/messages?sessionId=1"
        );
        assert_eq!(
            endpoint_of(&stream, "messages?s=2").unwrap().as_str(),
            "http://127.0.0.1:9000/mcp/messages?s=2"
        );
        assert!(endpoint_of(&stream, "http://127.0.0.1:9000/m").is_ok());
        for elsewhere in [
            "http://169.254.169.254/latest",
            "https://127.0.0.1:9000/m",
            "http://127.0.0.1:9001/m",
            "//evil.example/m",
        ] {
            assert!(endpoint_of(&stream, elsewhere).is_err(), "{elsewhere}");
        }
    }

    #[test]
    fn event_streams_are_split_into_events_across_chunks() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let reader = SseReader {
            sender: Mutex::new(Some(sender)),
            pending: Mutex::new(String::new()),
        };
        reader.push(b"event: endpoint\r\ndata: /messages?s=1\r\n\r\n: keep-alive\n\nda");
        reader.push(b"ta: {\"id\":1,\ndata: \"result\":{}}\n\n");
        assert_eq!(
            receiver.try_recv().unwrap(),
            ("endpoint".to_string(), "/messages?s=1".to_string())
        );
        assert_eq!(
            receiver.try_recv().unwrap(),
            (
                "message".to_string(),
                "{\"id\":1,\n\"result\":{}}".to_string()
            )
        );
        assert!(receiver.try_recv().is_err());
        reader.close();
        reader.push(b"data: late\n\n");
        assert!(receiver.try_recv().is_err());
    }
}
