//! Skein's MCP client on the official SDK (`rmcp`): the session's handler (what Skein
//! answers a server), one session runner for every transport `rmcp` carries here
//! (Streamable HTTP and stdio), and the HTTP client `rmcp`'s Streamable HTTP transport sends
//! through — Skein's own, so the SSRF guard, the no-redirect rule and the answer's size
//! limit hold for MCP as for OpenAPI tools (`rmcp`'s built-in client is for another
//! `reqwest` and follows redirects on the same origin).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ClientJsonRpcMessage, Implementation,
    ProgressNotificationParam, ProgressToken, RequestMetaObject, ServerJsonRpcMessage,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransport,
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
};
use serde_json::{Value, json};
use skein_core::api::{ToolOutput, ToolProgress};

use crate::net::{self, FetchPolicy};
use crate::openapi::{ToolDef, is_valid_name};

/// What Skein is to an MCP server: a client that reports the server's progress
/// notifications while a call runs and, when the admin chose a sampling model, answers the
/// server's sampling requests through the relay (billed to the user whose call it is, at
/// most [`MAX_SAMPLES`] per call). `ping` is answered, and roots, elicitation (and sampling
/// without a model) refused with "method not found", by `rmcp`'s defaults: Skein does not
/// declare those capabilities, and a server that asks anyway goes on at once.
#[derive(Clone)]
pub(crate) struct Handler {
    progress: Option<ToolProgress>,
    sampler: Option<Arc<dyn Sampler>>,
    /// Sampling requests this session may still make.
    samples_left: Arc<AtomicUsize>,
}

/// The most sampling requests one tool call may make (each is a billed model call).
pub const MAX_SAMPLES: usize = 5;

/// The most tokens one sampling request may ask for.
pub const MAX_SAMPLE_TOKENS: u64 = 4096;

/// A completion for an MCP server's sampling request: the relay, as the caller.
#[async_trait::async_trait]
pub(crate) trait Sampler: Send + Sync {
    /// Completes `request` (an OpenAI chat body without its model); answers the model that
    /// answered, its text, and whether it stopped at the token limit. Cancelling `cancel`
    /// (the call ended, or the user stopped it) stops the completion and its billing.
    async fn complete(
        &self,
        request: Value,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Result<(String, String, bool), String>;
}

impl Handler {
    /// A handler reporting to `progress`, sampling through `sampler`.
    pub(crate) fn new(progress: Option<ToolProgress>, sampler: Option<Arc<dyn Sampler>>) -> Self {
        Handler {
            progress,
            sampler,
            samples_left: Arc::new(AtomicUsize::new(MAX_SAMPLES)),
        }
    }
}

/// The most bytes of text and images one sampling request may send to the model.
pub const MAX_SAMPLE_PROMPT_BYTES: usize = 64 * 1024;

/// A sampling request's params as an OpenAI chat body (no model): text and images kept,
/// anything else refused; the prompt at most [`MAX_SAMPLE_PROMPT_BYTES`], the answer's
/// tokens at most [`MAX_SAMPLE_TOKENS`].
pub(crate) fn sampling_body(params: &Value) -> Result<Value, String> {
    let mut messages = Vec::new();
    if let Some(system) = params["systemPrompt"].as_str().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in params["messages"].as_array().into_iter().flatten() {
        let role = match message["role"].as_str() {
            Some(role @ ("user" | "assistant")) => role,
            _ => return Err("a sampling message's role is user or assistant".into()),
        };
        let blocks = match &message["content"] {
            Value::Array(blocks) => blocks.clone(),
            block => vec![block.clone()],
        };
        let mut parts = Vec::new();
        for block in blocks {
            match block["type"].as_str() {
                Some("text") => parts.push(json!({"type": "text",
                    "text": block["text"].as_str().unwrap_or_default()})),
                Some("image") if role == "user" => {
                    let (Some(data), Some(mime)) =
                        (block["data"].as_str(), block["mimeType"].as_str())
                    else {
                        return Err("an image in a sampling message needs data and mimeType".into());
                    };
                    parts.push(json!({"type": "image_url",
                        "image_url": {"url": format!("data:{mime};base64,{data}")}}));
                }
                other => {
                    return Err(format!(
                        "Skein samples text and images, not {}",
                        other.unwrap_or("untyped content")
                    ));
                }
            }
        }
        let content = match parts.as_slice() {
            [only] if only["type"] == "text" => only["text"].clone(),
            _ => Value::Array(parts),
        };
        messages.push(json!({"role": role, "content": content}));
    }
    if !messages.iter().any(|m| m["role"] != "system") {
        return Err("a sampling request needs at least one message".into());
    }
    let prompt: usize = messages
        .iter()
        .map(|m| m["content"].to_string().len())
        .sum();
    if prompt > MAX_SAMPLE_PROMPT_BYTES {
        return Err(format!(
            "a sampling request may send at most {MAX_SAMPLE_PROMPT_BYTES} bytes to the model"
        ));
    }
    let asked = params["maxTokens"].as_u64().unwrap_or(MAX_SAMPLE_TOKENS);
    let mut body = json!({
        "messages": messages,
        "max_tokens": asked.clamp(1, MAX_SAMPLE_TOKENS),
    });
    if let Some(t) = params["temperature"].as_f64() {
        body["temperature"] = Value::from(t);
    }
    if let Some(stop) = params["stopSequences"].as_array().filter(|s| !s.is_empty()) {
        body["stop"] = Value::Array(stop.iter().take(4).cloned().collect());
    }
    Ok(body)
}

impl rmcp::ClientHandler for Handler {
    // SEP-2577 deprecates sampling in the protocol's next version; servers of the versions
    // in use today (2025-06-18, 2025-11-25) still ask for it, and it stays functional.
    #[expect(
        deprecated,
        reason = "sampling is deprecated by SEP-2577 but still in use"
    )]
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        use rmcp::ErrorData;
        let Some(sampler) = &self.sampler else {
            return Err(ErrorData::method_not_found::<
                rmcp::model::CreateMessageRequestMethod,
            >());
        };
        if self
            .samples_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(ErrorData::invalid_request(
                format!("Skein answers at most {MAX_SAMPLES} sampling requests per tool call"),
                None,
            ));
        }
        let params = serde_json::to_value(&params).unwrap_or(Value::Null);
        let body = sampling_body(&params).map_err(|e| ErrorData::invalid_params(e, None))?;
        let (model, text, cut) = sampler
            .complete(body, context.ct.child_token())
            .await
            .map_err(|e| ErrorData::internal_error(e, None))?;
        serde_json::from_value(json!({
            "model": model,
            "stopReason": if cut { "maxTokens" } else { "endTurn" },
            "role": "assistant",
            "content": {"type": "text", "text": text},
        }))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(progress) = &self.progress {
            progress(progress_event(&json!({
                "progress": whole(params.progress),
                "total": params.total.map(whole),
                "message": params.message,
            })));
        }
    }

    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if self.sampler.is_some() {
            capabilities.sampling = serde_json::from_value(json!({})).ok();
        }
        ClientConfig::new(
            capabilities,
            Implementation::new("skein", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// A progress number as JSON: a whole number stays an integer (`1`, not `1.0`).
fn whole(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// The token Skein asks progress under (one call per session, so one token).
const PROGRESS_TOKEN: &str = "skein-call";

/// An open session with a server.
pub(crate) type Session = RunningService<RoleClient, Handler>;

/// Opens a session over `transport` and runs `work` on it within `deadline`, then closes it
/// in the background (for Streamable HTTP a `DELETE` of the session: a courtesy that never
/// holds the answer up). `trouble` names the cause when the transport saw one (an HTTP
/// status, an answer past the size limit): `rmcp` then only knows the connection closed.
pub(crate) async fn run<T, E, A, R>(
    transport: T,
    handler: Handler,
    deadline: Duration,
    trouble: &Trouble,
    work: impl AsyncFnOnce(&Session) -> Result<R, rmcp::ServiceError>,
) -> Result<R, McpFailure>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let worked = async {
        let session = handler.serve(transport).await.map_err(|e| {
            trouble.or(McpFailure::Other(format!("the session did not start: {e}")))
        })?;
        let outcome = work(&session).await;
        Ok::<_, McpFailure>((session, outcome))
    };
    let (session, outcome) = match tokio::time::timeout(deadline, worked).await {
        Ok(done) => done?,
        Err(_) => {
            return Err(trouble.or(McpFailure::Deadline(deadline.as_secs())));
        }
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), session.cancel()).await;
    });
    outcome.map_err(|e| trouble.or(refusal(e)))
}

/// An `rmcp` error as a sentence: the server's own reason when it refused.
fn refusal(error: rmcp::ServiceError) -> McpFailure {
    McpFailure::Other(match error {
        rmcp::ServiceError::McpError(error) => format!("the server refused: {}", error.message),
        rmcp::ServiceError::TransportClosed => "the server closed the session".into(),
        other => other.to_string(),
    })
}

/// The most pages of `tools/list` followed (on every transport).
pub(crate) const MAX_PAGES: usize = 10;

/// Every tool of the session's server (at most [`MAX_PAGES`] pages, a repeated cursor ends
/// the listing), as plugin tools (names vendors cannot take are left out). `rmcp`'s own
/// `list_all_tools` follows cursors without end and may serve pages from its cache (a
/// server's `ttlMs`), where no byte budget applies: a server answering its own cursor again
/// would grow the list without bound.
pub(crate) async fn list_tools(session: &Session) -> Result<Vec<ToolDef>, rmcp::ServiceError> {
    let peer = session.peer();
    peer.set_response_cache_config(rmcp::service::ClientCacheConfig::disabled())
        .await;
    let mut tools = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor
            .clone()
            .map(|c| rmcp::model::PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = peer.list_tools(params).await?;
        tools.extend(page.tools);
        match page.next_cursor {
            Some(next) if seen.insert(next.clone()) => cursor = Some(next),
            _ => break,
        }
    }
    let tools = serde_json::to_value(&tools).unwrap_or(Value::Null);
    Ok(tools_of(&json!({ "tools": tools })))
}

/// Calls tool `name` with `arguments`, asking for progress.
pub(crate) async fn call_tool(
    session: &Session,
    name: &str,
    arguments: &Value,
) -> Result<ToolOutput, rmcp::ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_string());
    params.arguments = arguments.as_object().cloned();
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        rmcp::model::NumberOrString::String(PROGRESS_TOKEN.into()),
    )));
    let result = session.call_tool(params).await?;
    let result = serde_json::to_value(&result).unwrap_or(Value::Null);
    Ok(output_of(&result))
}

/// Why a session failed: the HTTP status (which tells an older server) with the server's
/// JSON-RPC reason when it gave one, or anything else.
#[derive(Debug, Clone)]
pub(crate) enum McpFailure {
    Status(u16, Option<String>),
    /// The session did not finish within this many seconds.
    Deadline(u64),
    Other(String),
}

impl std::fmt::Display for McpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            McpFailure::Status(status, None) => write!(f, "the server answered HTTP {status}"),
            McpFailure::Status(status, Some(reason)) => {
                write!(f, "the server answered HTTP {status}: {reason}")
            }
            McpFailure::Deadline(secs) => write!(f, "no answer within {secs} seconds"),
            McpFailure::Other(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for McpFailure {}

impl From<String> for McpFailure {
    fn from(reason: String) -> Self {
        McpFailure::Other(reason)
    }
}

impl From<&str> for McpFailure {
    fn from(reason: &str) -> Self {
        McpFailure::Other(reason.to_string())
    }
}

/// The first thing a transport saw go wrong in a session, for the error the caller reads.
#[derive(Clone, Default)]
pub(crate) struct Trouble(Arc<Mutex<Option<McpFailure>>>);

impl Trouble {
    /// Keeps `failure` unless an earlier one was kept; answers it back for returning.
    pub(crate) fn saw(&self, failure: McpFailure) -> McpFailure {
        if let Ok(mut first) = self.0.lock()
            && first.is_none()
        {
            *first = Some(failure.clone());
        }
        failure
    }

    /// The cause seen first, else `otherwise`.
    pub(crate) fn or(&self, otherwise: McpFailure) -> McpFailure {
        self.0
            .lock()
            .ok()
            .and_then(|first| first.clone())
            .unwrap_or(otherwise)
    }
}

/// Opens a Streamable HTTP session with the server at `url` through [`Guarded`].
pub(crate) async fn over_http<R>(
    url: &str,
    headers: &[(String, String)],
    policy: FetchPolicy,
    handler: Handler,
    work: impl AsyncFnOnce(&Session) -> Result<R, rmcp::ServiceError>,
) -> Result<R, McpFailure> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|_| McpFailure::Other("the server address is not a URL".into()))?;
    let client = net::guarded_client(&parsed, policy)
        .await
        .map_err(|e| McpFailure::Other(e.to_string()))?;
    let trouble = Trouble::default();
    let guarded = Guarded {
        client,
        headers: headers.to_vec().into(),
        left: Arc::new(AtomicUsize::new(policy.max_bytes)),
        max_bytes: policy.max_bytes,
        trouble: trouble.clone(),
    };
    // The byte limits of `rmcp`'s config apply to its own clients; `Guarded` keeps its own.
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    let transport = StreamableHttpClientTransport::with_client(guarded, config);
    run(transport, handler, policy.timeout, &trouble, work).await
}

/// The HTTP client under `rmcp`'s Streamable HTTP transport: Skein's guarded client (its
/// connections go to the address checked when the session began, never redirected), the
/// plugin's auth headers on every request, and one byte budget for everything the server
/// answers in the session.
#[derive(Clone)]
struct Guarded {
    client: reqwest::Client,
    headers: Arc<[(String, String)]>,
    /// Bytes the server may still send in this session.
    left: Arc<AtomicUsize>,
    max_bytes: usize,
    trouble: Trouble,
}

type HttpError = StreamableHttpError<McpFailure>;

impl Guarded {
    fn request(
        &self,
        method: reqwest::Method,
        uri: &str,
        session_id: Option<&str>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .client
            .request(method, uri)
            .header("accept", "application/json, text/event-stream");
        for (name, value) in self.headers.iter() {
            builder = builder.header(name, value);
        }
        for (name, value) in custom_headers {
            builder = builder.header(name.as_str(), value.as_bytes());
        }
        if let Some(id) = session_id {
            builder = builder.header("mcp-session-id", id);
        }
        builder
    }

    async fn send(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, HttpError> {
        builder.send().await.map_err(|e| {
            StreamableHttpError::Client(self.trouble.saw(McpFailure::Other(net::without_url(&e))))
        })
    }

    /// The answer's body as it arrives, counted against the session's budget.
    fn metered(
        &self,
        response: reqwest::Response,
    ) -> BoxStream<'static, Result<Bytes, McpFailure>> {
        let (left, max, trouble) = (self.left.clone(), self.max_bytes, self.trouble.clone());
        response
            .bytes_stream()
            .map(move |chunk| {
                let chunk =
                    chunk.map_err(|e| trouble.saw(McpFailure::Other(net::without_url(&e))))?;
                let spent = left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(chunk.len())
                });
                match spent {
                    Ok(_) => Ok(chunk),
                    Err(_) => Err(trouble.saw(McpFailure::Other(format!(
                        "the server answered more than {max} bytes"
                    )))),
                }
            })
            .boxed()
    }

    /// A whole (JSON) body, within the budget.
    async fn body(&self, response: reqwest::Response) -> Result<Bytes, HttpError> {
        let mut stream = self.metered(response);
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(StreamableHttpError::Client)?);
        }
        Ok(body.freeze())
    }

    /// The reason a failed answer gives, when its body is a JSON-RPC error. At most 64 KiB
    /// of it is read, outside the session's budget, so an oversized error page cannot hide
    /// the status behind a size failure (a 4xx at `initialize` tells an older server).
    async fn error_reason(mut response: reqwest::Response) -> Option<String> {
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() > 64 * 1024 {
                return None;
            }
        }
        let message: Value = serde_json::from_slice(&body).ok()?;
        let reason = message["error"]["message"].as_str()?.trim();
        (!reason.is_empty()).then(|| reason.chars().take(300).collect())
    }
}

impl StreamableHttpClient for Guarded {
    type Error = McpFailure;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let awaits_nothing = !matches!(message, ClientJsonRpcMessage::Request(_));
        let body = serde_json::to_vec(&message)?;
        let builder = self
            .request(
                reqwest::Method::POST,
                &uri,
                session_id.as_deref(),
                custom_headers,
            )
            .header("content-type", "application/json")
            .body(body);
        let response = self.send(builder).await?;
        let status = response.status().as_u16();
        if status == 202 || status == 204 {
            if awaits_nothing {
                return Ok(StreamableHttpPostResponse::Accepted);
            }
            // A request must be answered on its own POST (JSON or an event stream); the
            // standing stream this would point to is never opened, so waiting is pointless.
            return Err(StreamableHttpError::Client(self.trouble.saw(
                McpFailure::Other(format!(
                    "the server accepted a request without answering it (HTTP {status})"
                )),
            )));
        }
        if status == 404 && session_id.is_some() {
            return Err(StreamableHttpError::Client(
                self.trouble
                    .saw(McpFailure::Other("the server ended the session".into())),
            ));
        }
        if !(200..300).contains(&status) {
            let reason = Self::error_reason(response).await;
            return Err(StreamableHttpError::Client(
                self.trouble.saw(McpFailure::Status(status, reason)),
            ));
        }
        let returned_session = response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let events = sse_stream::SseStream::from_bytes_stream(self.metered(response));
            return Ok(StreamableHttpPostResponse::Sse(
                events.boxed(),
                returned_session,
            ));
        }
        if content_type.starts_with("application/json") {
            let body = self.body(response).await?;
            return match serde_json::from_slice::<ServerJsonRpcMessage>(&body) {
                Ok(message) => Ok(StreamableHttpPostResponse::Json(message, returned_session)),
                Err(_) if awaits_nothing => Ok(StreamableHttpPostResponse::Accepted),
                Err(_) => Err(StreamableHttpError::Client(
                    self.trouble
                        .saw(McpFailure::Other("the server answered invalid JSON".into())),
                )),
            };
        }
        if awaits_nothing {
            return Ok(StreamableHttpPostResponse::Accepted);
        }
        Err(StreamableHttpError::UnexpectedContentType(Some(
            content_type,
        )))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> Result<(), HttpError> {
        // Ending the session is a courtesy: a server that does not allow it (405) or is
        // already gone changes nothing for the call that was made.
        let builder = self.request(
            reqwest::Method::DELETE,
            &uri,
            Some(&session_id),
            custom_headers,
        );
        let _ = tokio::time::timeout(Duration::from_secs(2), builder.send()).await;
        Ok(())
    }

    async fn get_stream(
        &self,
        _uri: Arc<str>,
        _session_id: Option<Arc<str>>,
        _last_event_id: Option<String>,
        _auth_header: Option<String>,
        _custom_headers: HashMap<http::HeaderName, http::HeaderValue>,
    ) -> Result<BoxStream<'static, Result<sse_stream::Sse, SseError>>, HttpError> {
        // A session lives for one listing or one call, whose answers come on the POST's own
        // stream: a standing stream for messages outside a request is not opened.
        Err(StreamableHttpError::ServerDoesNotSupportSse)
    }
}

/// A `notifications/progress`'s params as the tool-progress event chat streams.
pub(crate) fn progress_event(params: &Value) -> Value {
    json!({
        "stage": "progress",
        "progress": params["progress"],
        "total": params["total"],
        "text": params["message"].as_str().unwrap_or_default(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sampling_requests_become_chat_bodies_within_limits() {
        let body = sampling_body(&json!({
            "systemPrompt": "Be brief.",
            "messages": [
                {"role": "user", "content": {"type": "text", "text": "hi"}},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
                {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                    {"type": "image", "data": "iVBOR", "mimeType": "image/png"}]}],
            "maxTokens": 100_000, "temperature": 0.2, "stopSequences": ["\n\n"]}))
        .unwrap();
        assert_eq!(
            body["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": "hi"})
        );
        assert_eq!(body["messages"][2]["content"], "hello");
        assert_eq!(
            body["messages"][3]["content"][1]["image_url"]["url"],
            "data:image/png;base64,iVBOR"
        );
        assert_eq!(body["max_tokens"], MAX_SAMPLE_TOKENS);
        assert_eq!(body["stop"], json!(["\n\n"]));
        assert!(
            body.get("model").is_none(),
            "the admin's model is set by the sampler"
        );

        for bad in [
            json!({"messages": [], "maxTokens": 8}),
            json!({"messages": [{"role": "system", "content": {"type": "text", "text": "x"}}]}),
            json!({"messages": [{"role": "user", "content": {"type": "audio", "data": "x"}}]}),
            json!({"messages": [{"role": "user", "content": {"type": "image", "data": "x"}}]}),
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": "x".repeat(MAX_SAMPLE_PROMPT_BYTES)}}]}),
        ] {
            assert!(sampling_body(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn whole_progress_numbers_stay_integers() {
        assert_eq!(whole(1.0), json!(1));
        assert_eq!(whole(0.5), json!(0.5));
    }
}
