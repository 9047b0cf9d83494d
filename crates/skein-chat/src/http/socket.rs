//! Chat events over one WebSocket per client (`GET /chat/socket`), beside the SSE routes.
//!
//! The client sends requests as JSON text frames, each with an `id` of its choosing; every
//! frame the server sends back carries the `id` of the request it answers, so one socket
//! carries any number of answers at once. A request runs the SSE route's own handler and its
//! SSE frames become socket frames one for one, so both transports send exactly the same
//! events (a re-attach to an answer written on another instance included).
//!
//! Authentication: the access token as a `skein.bearer.<token>` subprotocol beside
//! [`CHAT_SOCKET_PROTOCOL`] (browsers cannot set headers on a WebSocket) or the usual
//! `Authorization` header; never in the URL. The gateway checks it like any other request.
//! No cookie authenticates here, so another site's page cannot open a socket in a user's
//! name (cross-site WebSocket hijacking needs ambient credentials).
//!
//! Bounds: `chat.max_sockets_per_user` sockets per user on an instance, [`MAX_STREAMS`]
//! requests running on one socket, and one bounded outbox per socket: a client that reads
//! slowly holds back its streams, which fall behind their answers and catch up with a
//! `replace` event, so memory never grows with a slow reader; a client that takes no frame
//! for [`SEND_WAIT`] is closed. A ping goes out every [`PING_EVERY`] and a client silent for
//! [`SILENT_LIMIT`] is closed. Once the access token the socket was opened with expires, new
//! requests are refused (401) and the socket closes with [`CLOSE_TOKEN_EXPIRED`] as soon as
//! nothing runs on it (an answer already streaming goes on, as an SSE stream would); the client
//! reconnects with a fresh token. The server stopping closes every socket with 1001. Each
//! request on a socket counts against the user's rate limit as an HTTP request does, so a
//! socket is no way around it: one over the limit is `rejected` with 429 `rate_limited`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, body::Body};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use skein_core::auth::{AuthUser, CHAT_SOCKET_PROTOCOL, TokenExpiry};
use skein_core::error::ErrorEnvelope;
use skein_core::extract::ApiJson;
use skein_core::i18n::Lang;
use skein_core::limit::RequestQuota;
use skein_core::request::RequestId;
use skein_core::{ApiError, ApiResult, ids};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::messages::{
    RegenerateRequest, SendRequest, attach, continue_answer, regenerate, send, stop,
};
use crate::ChatService;
use crate::errors;

/// Most requests running at once on one socket.
pub(super) const MAX_STREAMS: usize = 16;
/// Frames waiting for a slow client, per socket, before its streams are held back.
const OUTBOX: usize = 64;
/// Longest a client may take to accept one frame before the socket is closed.
const SEND_WAIT: Duration = Duration::from_secs(30);
/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a client may stay silent (no frame, no pong) before it counts as gone.
const SILENT_LIMIT: Duration = Duration::from_secs(50);
/// Longest request frame, bytes (a message with four inline images, as `POST .../messages`).
const MAX_FRAME: usize = super::messages::SEND_LIMIT;
/// Longest request id a client may choose.
const MAX_ID: usize = 64;
/// The close code sent when the access token the socket was opened with expires.
pub const CLOSE_TOKEN_EXPIRED: u16 = 4401;

/// Sockets open on this instance, by user; a claim is given back when its socket ends.
#[derive(Default)]
pub(crate) struct Sockets {
    open: Arc<Mutex<HashMap<String, usize>>>,
    /// Cancelled when the service has drained: every socket closes with 1001.
    closing: CancellationToken,
}

impl Sockets {
    /// One more socket for `user_id`, unless the user already has `max` here.
    fn claim(&self, user_id: &str, max: usize) -> Option<Claim> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(user_id.to_string()).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Claim {
            open: self.open.clone(),
            user_id: user_id.to_string(),
        })
    }

    /// Closes every socket (the service stops).
    pub(crate) fn close_all(&self) {
        self.closing.cancel();
    }
}

/// One user's place among the open sockets.
struct Claim {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user_id: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock()
            && let Some(count) = open.get_mut(&self.user_id)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

/// Open the chat socket: requests `send`, `regenerate`, `continue`, `attach`, `stop` and `cancel` as
/// JSON text frames; the answers' events come back tagged with each request's `id` (see
/// docs/CHAT-API.md). Offer the subprotocols `skein.chat.v1` and `skein.bearer.<access
/// token>`; the server answers `skein.chat.v1`.
#[utoipa::path(get, path = "/chat/socket", tag = "chat", security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol `skein.chat.v1`"),
        (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
pub async fn socket(
    State(svc): State<Arc<ChatService>>,
    user: AuthUser,
    expiry: Option<Extension<TokenExpiry>>,
    quota: Option<Extension<RequestQuota>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let max = svc.config.max_sockets_per_user;
    let claim = svc
        .sockets
        .claim(&user.user_id, max)
        .ok_or_else(|| errors::too_many_sockets(max))?;
    let lang = Lang::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let expires_at = expiry.map(|Extension(TokenExpiry(at))| at);
    Ok(upgrade
        .protocols([CHAT_SOCKET_PROTOCOL])
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |ws| async move {
            let connection = Connection {
                svc,
                user,
                lang,
                outbox: mpsc::channel(OUTBOX),
                streams: HashMap::new(),
                expired: false,
                quota: quota.map(|Extension(quota)| quota),
            };
            connection.run(ws, expires_at).await;
            drop(claim);
        }))
}

/// One open socket.
struct Connection {
    svc: Arc<ChatService>,
    user: AuthUser,
    lang: Lang,
    /// Frames of the running requests on their way to the client.
    outbox: (mpsc::Sender<Message>, mpsc::Receiver<Message>),
    /// Requests running, by the client's id.
    streams: HashMap<String, tokio::task::AbortHandle>,
    /// The access token expired: no new requests.
    expired: bool,
    /// The user's rate limit, which each request on the socket counts against as an HTTP
    /// request would (none when no gateway stands in front, as in unit tests).
    quota: Option<RequestQuota>,
}

/// Why a socket ends.
enum End {
    /// The client closed it or went away; nothing more to say.
    Gone,
    /// The server closes it with this code and reason.
    Close(u16, &'static str),
}

impl Connection {
    async fn run(mut self, ws: WebSocket, expires_at: Option<i64>) {
        let (mut sink, mut incoming) = ws.split();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        let expiry = async move {
            match expires_at {
                Some(at) => {
                    let left = (at * 1000 - ids::now_ms()).max(0) as u64;
                    tokio::time::sleep(Duration::from_millis(left)).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(expiry);
        let closing = self.svc.sockets.closing.clone();
        let end = loop {
            tokio::select! {
                frame = incoming.next() => {
                    heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(reply) = self.request(text.as_str()) && !deliver(&mut sink, reply).await {
                                break End::Gone;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => {
                            let reply = self.rejected("", &errors::invalid_request(
                                "Send requests as JSON text frames.",
                                "请以 JSON 文本帧发送请求。",
                            ));
                            if !deliver(&mut sink, reply).await {
                                break End::Gone;
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break End::Gone,
                    }
                }
                Some(frame) = self.outbox.1.recv() => {
                    if !deliver(&mut sink, frame).await {
                        break End::Gone;
                    }
                    if self.idle_after_expiry() {
                        break End::Close(CLOSE_TOKEN_EXPIRED, "token expired");
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT_LIMIT {
                        break End::Gone;
                    }
                    if self.idle_after_expiry() {
                        break End::Close(CLOSE_TOKEN_EXPIRED, "token expired");
                    }
                    if !deliver(&mut sink, Message::Ping(Bytes::new())).await {
                        break End::Gone;
                    }
                }
                () = &mut expiry, if !self.expired => {
                    self.expired = true;
                    if self.idle_after_expiry() {
                        break End::Close(CLOSE_TOKEN_EXPIRED, "token expired");
                    }
                }
                () = closing.cancelled() => break End::Close(1001, "server stopping"),
            }
        };
        for (_, stream) in self.streams.drain() {
            stream.abort();
        }
        if let End::Close(code, reason) = end {
            let close = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(SEND_WAIT, sink.send(close)).await;
        }
        let _ = tokio::time::timeout(SEND_WAIT, sink.close()).await;
    }

    /// Whether the token expired and nothing runs any more (then the socket closes).
    fn idle_after_expiry(&mut self) -> bool {
        self.streams.retain(|_, stream| !stream.is_finished());
        self.expired && self.streams.is_empty()
    }

    /// Starts the request in a text frame; answers at once only when it is refused.
    fn request(&mut self, text: &str) -> Option<Message> {
        let mut body = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(body)) => body,
            _ => {
                return Some(self.rejected(
                    "",
                    &errors::invalid_request(
                        "A request is a JSON object with `type` and `id`.",
                        "请求须为带有 `type` 和 `id` 的 JSON 对象。",
                    ),
                ));
            }
        };
        let id = match body.remove("id") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID => id,
            _ => {
                return Some(self.rejected(
                    "",
                    &errors::invalid_request(
                        format!("`id` is a string of 1 to {MAX_ID} characters."),
                        format!("`id` 须为 1 到 {MAX_ID} 个字符的字符串。"),
                    ),
                ));
            }
        };
        let kind = match body.remove("type") {
            Some(Value::String(kind)) => kind,
            _ => String::new(),
        };
        self.streams.retain(|_, stream| !stream.is_finished());
        if kind == "cancel" {
            // Stops listening; the answer itself goes on (stop it with `stop`).
            if let Some(stream) = self.streams.remove(&id) {
                stream.abort();
            }
            return Some(frame(&id, "end", None));
        }
        if self.expired {
            return Some(self.rejected(&id, &ApiError::invalid_token()));
        }
        if self.streams.contains_key(&id) {
            return Some(self.rejected(
                &id,
                &ApiError::conflict(
                    "duplicate_id",
                    "A request with this id is still running on this socket.",
                    "该连接上同一 id 的请求仍在进行。",
                ),
            ));
        }
        if self.streams.len() >= MAX_STREAMS {
            return Some(self.rejected(&id, &errors::too_many_streams(MAX_STREAMS)));
        }
        if !matches!(
            kind.as_str(),
            "send" | "regenerate" | "continue" | "attach" | "stop"
        ) {
            return Some(self.rejected(
                &id,
                &errors::invalid_request(
                    "`type` is send, regenerate, continue, attach, stop or cancel.",
                    "`type` 须为 send、regenerate、continue、attach、stop 或 cancel。",
                ),
            ));
        }
        let svc = self.svc.clone();
        let user = self.user.clone();
        let lang = self.lang;
        let outbox = self.outbox.0.clone();
        let task_id = id.clone();
        let quota = self.quota.clone();
        let task = tokio::spawn(async move {
            let request_id = ids::new_id();
            let admitted = match &quota {
                Some(quota) => quota.admit().await,
                None => Ok(()),
            };
            let checked = match admitted {
                Ok(()) => session_stands(&svc, &user).await,
                Err(error) => Err(error),
            };
            let response = match checked {
                Ok(()) => dispatch(svc, user, &request_id, &kind, body).await,
                Err(error) => Err(error),
            };
            match response {
                Ok(response) => {
                    if pump(&task_id, response, &outbox).await {
                        let _ = outbox.send(frame(&task_id, "end", None)).await;
                    }
                }
                // A refused request ends with its `rejected` frame.
                Err(error) => {
                    let _ = outbox
                        .send(rejection(&task_id, &error, lang, &request_id))
                        .await;
                }
            }
        });
        self.streams.insert(id, task.abort_handle());
        None
    }

    fn rejected(&self, id: &str, error: &ApiError) -> Message {
        rejection(id, error, self.lang, &ids::new_id())
    }
}

/// Whether the session the socket was opened in still stands (signed out, or ended by a
/// password change: 401, as the gateway answers an HTTP request).
async fn session_stands(svc: &ChatService, user: &AuthUser) -> ApiResult<()> {
    let Some(sessions) = svc.sessions.get() else {
        return Ok(());
    };
    match sessions.session(&user.session_id).await? {
        Some(session) if session.active && session.user_id == user.user_id => Ok(()),
        _ => Err(ApiError::invalid_token()),
    }
}

/// Runs a request through the SSE route's own handler.
async fn dispatch(
    svc: Arc<ChatService>,
    user: AuthUser,
    request_id: &str,
    kind: &str,
    mut body: Map<String, Value>,
) -> ApiResult<Response> {
    let request_id = RequestId(request_id.to_string());
    match kind {
        "send" => {
            let conversation = take_id(&mut body, "conversation_id")?;
            let request: SendRequest = parse(body)?;
            send(
                State(svc),
                user,
                request_id,
                Path(conversation),
                ApiJson(request),
            )
            .await
        }
        "regenerate" | "continue" => {
            let message = take_id(&mut body, "message_id")?;
            let request: RegenerateRequest = parse(body)?;
            let body = Bytes::from(
                serde_json::to_vec(&json!({ "model": request.model }))
                    .map_err(ApiError::internal)?,
            );
            let (state, path) = (State(svc), Path(message));
            if kind == "continue" {
                continue_answer(state, user, request_id, path, body).await
            } else {
                regenerate(state, user, request_id, path, body).await
            }
        }
        "attach" => {
            let message = take_id(&mut body, "message_id")?;
            no_more(&body)?;
            attach(State(svc), user, Path(message)).await
        }
        _ => {
            let message = take_id(&mut body, "message_id")?;
            no_more(&body)?;
            stop(State(svc), user, Path(message))
                .await
                .map(|answer| answer.into_response())
        }
    }
}

/// Forwards a handler's answer: each SSE frame as one socket frame, or a JSON answer as one
/// `result` frame. Answers whether the client is still there.
async fn pump(id: &str, response: Response, outbox: &mpsc::Sender<Message>) -> bool {
    let sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let body: Body = response.into_body();
    if !sse {
        let Ok(bytes) = axum::body::to_bytes(body, 1024 * 1024).await else {
            return true;
        };
        let data = String::from_utf8_lossy(&bytes);
        return outbox
            .send(frame(id, "result", Some(data.trim())))
            .await
            .is_ok();
    }
    let mut chunks = body.into_data_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = chunks.next().await {
        pending.extend_from_slice(&chunk);
        while let Some(end) = find(&pending, b"\n\n") {
            let block: Vec<u8> = pending.drain(..end + 2).collect();
            let Some((event, data)) = sse_block(&block) else {
                continue;
            };
            // Backpressure: a slow client blocks this send, so this stream stops reading
            // its answer (which then skips ahead with `replace`); nothing piles up here.
            if outbox.send(frame(id, event, Some(data))).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// The event name and data of one SSE block; `None` for a comment (keep-alive).
fn sse_block(block: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(block).ok()?;
    let mut event = None;
    let mut data = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event: ") {
            event = Some(name);
        } else if let Some(value) = line.strip_prefix("data: ") {
            data = Some(value);
        }
    }
    Some((event?, data?))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One frame to the client: `{"id","event","data"}`; `data` is JSON text already.
fn frame(id: &str, event: &str, data: Option<&str>) -> Message {
    let id = Value::String(id.to_string());
    let event = Value::String(event.to_string());
    let text = match data {
        Some(data) => format!(r#"{{"id":{id},"event":{event},"data":{data}}}"#),
        None => format!(r#"{{"id":{id},"event":{event}}}"#),
    };
    Message::Text(text.into())
}

/// A refused request: the HTTP status and the error envelope the SSE route would answer with.
fn rejection(id: &str, error: &ApiError, lang: Lang, request_id: &str) -> Message {
    let text = json!({
        "id": id,
        "event": "rejected",
        "status": error.status().as_u16(),
        "data": error.envelope(lang, request_id),
    });
    Message::Text(text.to_string().into())
}

/// Sends one frame, unless the client takes longer than [`SEND_WAIT`]; answers whether the
/// client is still there.
async fn deliver(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    message: Message,
) -> bool {
    matches!(
        tokio::time::timeout(SEND_WAIT, sink.send(message)).await,
        Ok(Ok(()))
    )
}

fn take_id(body: &mut Map<String, Value>, field: &'static str) -> ApiResult<String> {
    match body.remove(field) {
        Some(Value::String(id)) if !id.is_empty() => Ok(id),
        _ => Err(ApiError::invalid_field(
            field,
            format!("`{field}` is required."),
            format!("缺少 `{field}`。"),
        )),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> ApiResult<T> {
    serde_json::from_value(Value::Object(body)).map_err(errors::request_does_not_fit)
}

fn no_more(body: &Map<String, Value>) -> ApiResult<()> {
    match body.keys().next() {
        None => Ok(()),
        Some(field) => Err(errors::unknown_field(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_become_frames() {
        assert_eq!(
            sse_block(b"event: delta\ndata: {\"content\":\"hi\"}\n\n"),
            Some(("delta", "{\"content\":\"hi\"}"))
        );
        assert_eq!(sse_block(b": keep-alive\n\n"), None);
        let Message::Text(text) = frame("c1", "delta", Some("{\"content\":\"hi\"}")) else {
            unreachable!("a text frame")
        };
        let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        assert_eq!(
            value,
            json!({"id": "c1", "event": "delta", "data": {"content": "hi"}})
        );
    }

    #[test]
    fn claims_are_bounded_and_given_back() {
        let sockets = Sockets::default();
        let first = sockets.claim("u1", 2);
        let second = sockets.claim("u1", 2);
        assert!(first.is_some() && second.is_some());
        assert!(sockets.claim("u1", 2).is_none(), "a third socket");
        assert!(sockets.claim("u2", 2).is_some(), "another user is apart");
        drop(first);
        assert!(
            sockets.claim("u1", 2).is_some(),
            "a closed socket frees its place"
        );
    }
}
