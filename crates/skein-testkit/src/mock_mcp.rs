//! A small MCP server over Streamable HTTP (MCP 2025-06-18), for the Plugin service's tests:
//! one endpoint (`POST /mcp`) that answers `initialize` with an `Mcp-Session-Id`, accepts
//! `notifications/initialized` (202), lists its tools (`echo`, `slow` and one whose name no
//! vendor accepts) over two pages, and answers `tools/call` as an SSE stream with a progress
//! notification before the response (`echo` without text answers a result with `isError`).
//! Every request after `initialize` must carry the session id and `MCP-Protocol-Version`, or
//! it is refused (400), as the spec allows. A bearer token, when set, is required on every
//! request (401).
//!
//! Over Streamable HTTP, `echo` with `?huge` answers an event stream of 50 MB, with
//! `?vanish` a progress notification and then the end of the stream, with no answer, with
//! `?accept` a bare 202, and with `?reject` a 400 carrying a JSON-RPC error.
//!
//! On every transport here, `echo` with the text `?ask` first asks the client two things, as
//! a server may during a call: a `ping` (id `srv-ping`), then `sampling/createMessage` under
//! the call's own id (a client must not take it for the call's response); it waits for each
//! answer (5 s at most) and echoes what came back: `echo: ping {result}; sampling {error
//! code}`. The client's answers are recorded among the methods as `response <id>`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What the server received: `(method, headers)` of every message.
pub type Received = Arc<Mutex<Vec<(String, HeaderMap)>>>;

#[derive(Clone)]
struct Shared {
    token: Option<String>,
    received: Received,
    replies: Replies,
    looping: Arc<std::sync::atomic::AtomicBool>,
    capabilities: Arc<Mutex<Value>>,
}

/// The client's answers to the server's requests, by request id, and a bell rung on each.
#[derive(Clone, Default)]
struct Replies {
    answers: Arc<Mutex<std::collections::HashMap<String, Value>>>,
    bell: Arc<tokio::sync::Notify>,
}

impl Replies {
    /// Keeps `message` when it is a response (no method, an id); whether it was.
    fn take(&self, message: &Value) -> bool {
        if message.get("method").is_some() || message.get("id").is_none() {
            return false;
        }
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id_text(&message["id"]), message.clone());
        self.bell.notify_waiters();
        true
    }

    /// The answer to request `id`, waiting up to 5 s for it.
    async fn wait(&self, id: &str) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let rung = self.bell.notified();
            if let Some(answer) = self
                .answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id)
            {
                return Some(answer);
            }
            if tokio::time::timeout_at(deadline, rung).await.is_err() {
                return None;
            }
        }
    }
}

/// A JSON-RPC id as text (a string as it is, a number in digits).
fn id_text(id: &Value) -> String {
    id.as_str().map_or_else(|| id.to_string(), str::to_string)
}

/// `echo ?ask`: asks the client for a `ping` and for sampling (under the call's id `call`),
/// with `send` putting a message on the call's stream; what the echo says.
async fn ask_client(replies: &Replies, call: &Value, send: impl Fn(Value)) -> String {
    send(json!({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"}));
    let ping = match replies.wait("srv-ping").await {
        Some(answer) => format!("ping {}", answer["result"]),
        None => "ping unanswered".to_string(),
    };
    send(
        json!({"jsonrpc": "2.0", "id": call, "method": "sampling/createMessage",
        "params": {"messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}], "maxTokens": 8}}),
    );
    let sampling = match replies.wait(&id_text(call)).await {
        Some(answer) if answer.get("error").is_some() => {
            format!("sampling {}", answer["error"]["code"])
        }
        Some(answer) => format!("sampling answered {}", answer["result"]),
        None => "sampling unanswered".to_string(),
    };
    format!("echo: {ping}; {sampling}")
}

const SESSION: &str = "mcp-session-7f3a";

/// A running mock MCP server.
pub struct MockMcp {
    /// Its endpoint (`http://127.0.0.1:PORT/mcp`).
    pub url: String,
    /// What it received.
    pub received: Received,
    /// Set, the second page of `tools/list` names itself as the next page again, to be kept
    /// for a day (`ttlMs`): a listing that a client following cursors never finishes.
    pub looping: Arc<std::sync::atomic::AtomicBool>,
    /// The client capabilities the last `initialize` declared.
    pub capabilities: Arc<Mutex<Value>>,
}

impl MockMcp {
    /// Starts a server; with `token`, every request must carry `Authorization: Bearer token`.
    pub async fn start(token: Option<&str>) -> MockMcp {
        let received: Received = Arc::default();
        let looping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let capabilities = Arc::new(Mutex::new(Value::Null));
        let shared = Shared {
            token: token.map(str::to_string),
            received: received.clone(),
            replies: Replies::default(),
            looping: looping.clone(),
            capabilities: capabilities.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock MCP server");
        let address: SocketAddr = listener.local_addr().expect("its address");
        let router = Router::new().route("/mcp", post(handle)).with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockMcp {
            url: format!("http://{address}/mcp"),
            received,
            looping,
            capabilities,
        }
    }

    /// The methods received, in order.
    pub fn methods(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(m, _)| m.clone())
            .collect()
    }
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let method = message["method"].as_str().map_or_else(
        || format!("response {}", id_text(&message["id"])),
        str::to_string,
    );
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((method.clone(), headers.clone()));
    if let Some(token) = &shared.token {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(&format!("Bearer {token}")) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "accept both application/json and text/event-stream",
        )
            .into_response();
    }
    let id = message["id"].clone();
    if method == "initialize" {
        *shared
            .capabilities
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = message["params"]["capabilities"].clone();
        let answer = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": "skein-mock-mcp", "version": "1.0.0"}}});
        return ([("mcp-session-id", SESSION)], axum::Json(answer)).into_response();
    }
    let session = headers.get("mcp-session-id").and_then(|v| v.to_str().ok());
    let version = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok());
    if session != Some(SESSION) || version != Some("2025-06-18") {
        return (
            StatusCode::BAD_REQUEST,
            "missing session or protocol version",
        )
            .into_response();
    }
    if shared.replies.take(&message) {
        return StatusCode::ACCEPTED.into_response();
    }
    match method.as_str() {
        "notifications/initialized" => StatusCode::ACCEPTED.into_response(),
        "tools/list" => {
            let result = if message["params"]["cursor"] == "page-2" {
                let mut page = json!({"tools": [{"name": "slow", "description": "Takes its time.",
                    "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}}]});
                if shared.looping.load(std::sync::atomic::Ordering::Relaxed) {
                    page["nextCursor"] = json!("page-2");
                    page["ttlMs"] = json!(86_400_000);
                }
                page
            } else {
                json!({"tools": [
                    {"name": "echo", "description": "Says the text back.",
                        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
                    {"name": "no spaces allowed", "description": "A name vendors refuse.",
                        "inputSchema": {"type": "object"}}],
                    "nextCursor": "page-2"})
            };
            axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
        }
        "tools/call" => {
            let name = message["params"]["name"].as_str().unwrap_or_default();
            let arguments = &message["params"]["arguments"];
            let token = message["params"]["_meta"]["progressToken"].clone();
            let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": token, "progress": 1, "total": 2, "message": "started"}});
            if name == "echo" && arguments["text"] == "?huge" {
                // 50 MB of one event that never ends: a client must stop at its limit.
                let chunk = format!(
                    "event: message\ndata: {{\"pad\": \"{}",
                    "x".repeat(64 * 1024)
                );
                let stream = futures::stream::iter((0..800).map(move |i| {
                    Ok::<_, std::convert::Infallible>(if i == 0 {
                        chunk.clone()
                    } else {
                        "x".repeat(64 * 1024)
                    })
                }));
                return (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(stream),
                )
                    .into_response();
            }
            if name == "echo" && arguments["text"] == "?accept" {
                // Accepted without an answer, as only notifications and responses may be.
                return StatusCode::ACCEPTED.into_response();
            }
            if name == "echo" && arguments["text"] == "?reject" {
                let error = json!({"jsonrpc": "2.0", "id": id,
                    "error": {"code": -32602, "message": "text must not start with ?"}});
                return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
            }
            if name == "echo" && arguments["text"] == "?vanish" {
                // A progress notification, then the stream ends with no answer (the server
                // went away mid-call).
                let body = format!("event: message\ndata: {progress}\n\n");
                return ([("content-type", "text/event-stream")], body).into_response();
            }
            if name == "echo" && arguments["text"] == "?ask" {
                // Streamed: the questions go out on the call's stream, the answer after them.
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
                let (id, replies) = (id.clone(), shared.replies.clone());
                tokio::spawn(async move {
                    let send = |message: Value| {
                        let _ = sender.send(format!("event: message\ndata: {message}\n\n"));
                    };
                    let text = ask_client(&replies, &id, send).await;
                    let response = json!({"jsonrpc": "2.0", "id": id,
                        "result": {"content": [{"type": "text", "text": text}]}});
                    let _ = sender.send(format!("event: message\ndata: {response}\n\n"));
                });
                return event_stream(receiver);
            }
            let result = match name {
                // Nothing to echo: the tool ran and reports its failure in its result.
                "echo" if arguments["text"].as_str().is_none_or(str::is_empty) => {
                    json!({"content": [{"type": "text", "text": "nothing to echo"}], "isError": true})
                }
                "echo" => {
                    json!({"content": [{"type": "text", "text": format!("echo: {}", arguments["text"].as_str().unwrap_or_default())}], "isError": false})
                }
                "slow" => {
                    // Streamed: the progress notification goes out at once, the answer after
                    // the wait, as a real server that reports progress would.
                    let seconds = arguments["seconds"].as_f64().unwrap_or(0.0);
                    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
                    let id = id.clone();
                    tokio::spawn(async move {
                        let _ = sender.send(format!("event: message\ndata: {progress}\n\n"));
                        tokio::time::sleep(std::time::Duration::from_secs_f64(
                            seconds.clamp(0.0, 120.0),
                        ))
                        .await;
                        let response = json!({"jsonrpc": "2.0", "id": id,
                            "result": {"content": [{"type": "text", "text": "done"}]}});
                        let _ = sender.send(format!("event: message\ndata: {response}\n\n"));
                    });
                    return event_stream(receiver);
                }
                _ => return rpc_error(&id, -32602, &format!("Unknown tool: {name}")),
            };
            let response = json!({"jsonrpc": "2.0", "id": id, "result": result});
            let body =
                format!("event: message\ndata: {progress}\n\nevent: message\ndata: {response}\n\n");
            ([("content-type", "text/event-stream")], body).into_response()
        }
        _ => rpc_error(&id, -32601, "Method not found"),
    }
}

/// A response whose body is an event stream of what `receiver` is sent, until its senders go.
fn event_stream(receiver: tokio::sync::mpsc::UnboundedReceiver<String>) -> Response {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|text| (Ok::<_, std::convert::Infallible>(text), receiver))
    });
    (
        [("content-type", "text/event-stream")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// A small MCP server over stdio, in Python (the machine's `python3`): newline-delimited
/// JSON-RPC; `initialize`, `tools/list` (one page: `echo`, `slow`), `tools/call` (`echo`
/// answers `echo: <text>` after a progress notification; `slow` sleeps `seconds`).
pub const STDIO_SERVER_PY: &str = r#"
import json, sys, time

def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    method, mid = message.get("method"), message.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "stdio-echo", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
            {"name": "echo", "description": "Echoes its text.", "inputSchema": {"type": "object",
             "properties": {"text": {"type": "string"}}, "required": ["text"]}},
            {"name": "slow", "description": "Takes its time.", "inputSchema": {"type": "object"}}]}})
    elif method == "tools/call":
        params = message.get("params", {})
        token = params.get("_meta", {}).get("progressToken")
        args = params.get("arguments", {})
        print("not json, skipped", flush=True)
        send({"jsonrpc": "2.0", "method": "notifications/progress",
              "params": {"progressToken": token, "progress": 1, "total": 1, "message": "echoing"}})
        if params.get("name") == "echo" and args.get("text") == "?ask":
            answers = {}
            def ask(question):
                send(question)
                for reply in sys.stdin:
                    try:
                        reply = json.loads(reply)
                    except ValueError:
                        continue
                    if "method" not in reply and reply.get("id") == question["id"]:
                        return reply
                return None
            ping = ask({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"})
            sampling = ask({"jsonrpc": "2.0", "id": mid, "method": "sampling/createMessage",
                            "params": {"messages": [], "maxTokens": 8}})
            text = "echo: ping " + (json.dumps(ping["result"]) if ping and "result" in ping else "unanswered")
            text += "; sampling " + (str(sampling["error"]["code"]) if sampling and "error" in sampling else "unanswered")
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": text}]}})
        elif params.get("name") == "slow":
            time.sleep(float(args.get("seconds", 0)))
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [{"type": "text", "text": "done"}]}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": [
                {"type": "text", "text": "echo: " + str(args.get("text", ""))}], "isError": False}})
    elif mid is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "Method not found"}})
"#;

/// Writes [`STDIO_SERVER_PY`] into `dir`; answers its path.
pub fn stdio_server(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mcp_stdio_server.py");
    std::fs::write(&path, STDIO_SERVER_PY)
        .unwrap_or_else(|e| panic!("cannot write the stdio MCP server: {e}"));
    path
}

/// A small MCP server over the older HTTP+SSE transport (MCP 2024-11-05), for the Plugin
/// service's tests: `GET /sse` opens a session's event stream, whose first event,
/// `endpoint`, names `/messages?sessionId=...`; messages POSTed there are accepted (202) and
/// answered on the stream as `message` events. It serves the same tools as [`MockMcp`]
/// (`echo`, `slow`, and one no vendor accepts, over two pages; `tools/call` sends a progress
/// notification first). `POST /sse` is not allowed (405), as on such servers, so a client
/// that tries Streamable HTTP first learns to fall back. A bearer token, when set, is required
/// on the stream and on every message (401).
pub struct MockMcpSse {
    /// Its event stream's address (`http://127.0.0.1:PORT/sse`).
    pub url: String,
    /// What it received: `("GET /sse", headers)` for each stream opened, then
    /// `(method, headers)` for each message.
    pub received: Received,
}

/// The open sessions: id → the sender of its stream's events.
type Sessions =
    Arc<Mutex<std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<String>>>>;

#[derive(Clone)]
struct SseShared {
    token: Option<String>,
    received: Received,
    sessions: Sessions,
    replies: Replies,
}

impl MockMcpSse {
    /// Starts a server; with `token`, every request must carry `Authorization: Bearer token`.
    pub async fn start(token: Option<&str>) -> MockMcpSse {
        let received: Received = Arc::default();
        let shared = SseShared {
            token: token.map(str::to_string),
            received: received.clone(),
            sessions: Arc::default(),
            replies: Replies::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the mock MCP SSE server");
        let address: SocketAddr = listener.local_addr().expect("its address");
        let router = Router::new()
            .route("/sse", axum::routing::get(sse_stream))
            .route("/messages", post(sse_message))
            .with_state(shared);
        tokio::spawn(async move { axum::serve(listener, router).await });
        MockMcpSse {
            url: format!("http://{address}/sse"),
            received,
        }
    }

    /// The methods received, in order (`GET /sse` for each stream opened).
    pub fn methods(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(m, _)| m.clone())
            .collect()
    }
}

fn sse_authorised(shared: &SseShared, headers: &HeaderMap) -> bool {
    match &shared.token {
        Some(token) => {
            headers.get("authorization").and_then(|v| v.to_str().ok())
                == Some(&format!("Bearer {token}"))
        }
        None => true,
    }
}

async fn sse_stream(State(shared): State<SseShared>, headers: HeaderMap) -> Response {
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(("GET /sse".into(), headers.clone()));
    if !sse_authorised(&shared, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let session = format!(
        "s{}",
        shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
            + 1
    );
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let _ = sender.send(format!(
        "event: endpoint\ndata: /messages?sessionId={session}\n\n"
    ));
    shared
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(session, sender);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|text| (Ok::<_, std::convert::Infallible>(text), receiver))
    });
    (
        [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn sse_message(
    State(shared): State<SseShared>,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let method = message["method"].as_str().map_or_else(
        || format!("response {}", id_text(&message["id"])),
        str::to_string,
    );
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((method.clone(), headers.clone()));
    if !sse_authorised(&shared, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if shared.replies.take(&message) {
        return StatusCode::ACCEPTED.into_response();
    }
    let Some(sender) = query.get("sessionId").and_then(|id| {
        shared
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }) else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let send = move |message: Value| {
        let _ = sender.send(format!("event: message\ndata: {message}\n\n"));
    };
    let id = message["id"].clone();
    let result = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result});
    match method.as_str() {
        "initialize" => send(result(json!({"protocolVersion": "2024-11-05",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "skein-mock-mcp-sse", "version": "1.0.0"}}))),
        "notifications/initialized" => {}
        "tools/list" => send(result(if message["params"]["cursor"] == "page-2" {
            json!({"tools": [{"name": "slow", "description": "Takes its time.",
                "inputSchema": {"type": "object", "properties": {"seconds": {"type": "number"}}}}]})
        } else {
            json!({"tools": [
                {"name": "echo", "description": "Says the text back.",
                    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
                {"name": "no spaces allowed", "description": "A name vendors refuse.",
                    "inputSchema": {"type": "object"}}],
                "nextCursor": "page-2"})
        })),
        "tools/call" => {
            let name = message["params"]["name"].as_str().unwrap_or_default();
            let arguments = &message["params"]["arguments"];
            let token = message["params"]["_meta"]["progressToken"].clone();
            send(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                "params": {"progressToken": token, "progress": 1, "total": 2, "message": "started"}}));
            match name {
                "echo" if arguments["text"] == "?ask" => {
                    let (id, replies) = (message["id"].clone(), shared.replies.clone());
                    tokio::spawn(async move {
                        let text = ask_client(&replies, &id, &send).await;
                        send(json!({"jsonrpc": "2.0", "id": id,
                            "result": {"content": [{"type": "text", "text": text}]}}));
                    });
                }
                "echo" => {
                    let text = arguments["text"].as_str().unwrap_or_default();
                    send(result(if text.is_empty() {
                        json!({"content": [{"type": "text", "text": "nothing to echo"}], "isError": true})
                    } else {
                        json!({"content": [{"type": "text", "text": format!("echo: {text}")}], "isError": false})
                    }));
                }
                "slow" => {
                    let seconds = arguments["seconds"]
                        .as_f64()
                        .unwrap_or(0.0)
                        .clamp(0.0, 120.0);
                    let response = result(json!({"content": [{"type": "text", "text": "done"}]}));
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
                        send(response);
                    });
                }
                _ => send(json!({"jsonrpc": "2.0", "id": message["id"],
                    "error": {"code": -32602, "message": format!("Unknown tool: {name}")}})),
            }
        }
        _ => send(json!({"jsonrpc": "2.0", "id": message["id"],
            "error": {"code": -32601, "message": "Method not found"}})),
    }
    StatusCode::ACCEPTED.into_response()
}
