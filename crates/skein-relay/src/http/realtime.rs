//! `GET /v1/realtime?model=...`: OpenAI's Realtime API relayed over WebSockets. The client
//! authenticates with its API key (`Authorization: Bearer`, as OpenAI's SDKs send it, or the
//! `openai-insecure-api-key.<key>` subprotocol browsers use; the gateway reads both); the
//! session is planned and its first hold taken before the upstream is dialled, so refusals
//! are plain HTTP errors in OpenAI's shape and cost nothing. Then every frame is relayed both
//! ways as it is, and [`Session::observe`] bills each `response.done` (see
//! `pipeline/realtime.rs`).
//!
//! Each `response.create` the client sends counts against the key's requests per minute, as
//! an HTTP request would; one over the limit is answered with an `error` event and not sent.
//!
//! Backpressure: each direction awaits its send before it reads the next frame, so a slow side
//! slows the other down instead of filling memory. Pings are each hop's own business.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use skein_core::ApiResult;
use skein_core::auth::ApiKeyCaller;
use skein_core::i18n::Lang;
use skein_core::limit::RequestQuota;
use skein_core::request::RequestId;
use tokio_tungstenite::tungstenite::Message as Upstream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as UpstreamClose;

use crate::RelayService;
use crate::pipeline::Caller;
use crate::pipeline::realtime::{Session, UpstreamSocket};

/// The subprotocol browsers open a Realtime session with (beside the key's).
const PROTOCOL: &str = "realtime";
/// Longest one frame may take to be taken by the other side before the session ends.
const SEND_WAIT: Duration = Duration::from_secs(60);
/// Largest frame relayed (audio appends are base64 chunks well under this).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The query of `GET /v1/realtime`.
#[derive(Debug, Deserialize)]
pub(crate) struct RealtimeQuery {
    /// The Realtime model.
    model: Option<String>,
}

/// Opens a Realtime session for the key, relayed to a channel that offers the model.
pub(crate) async fn realtime(
    State(svc): State<Arc<RelayService>>,
    ApiKeyCaller(key): ApiKeyCaller,
    id: RequestId,
    Query(query): Query<RealtimeQuery>,
    headers: HeaderMap,
    quota: Option<Extension<RequestQuota>>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let quota = quota.map(|Extension(quota)| quota);
    let mut session = Session::open(
        &svc,
        Caller::Key(key),
        query.model.as_deref(),
        id.into_string(),
    )
    .await?;
    let beta = headers.get("openai-beta").and_then(|v| v.to_str().ok());
    let upstream = match session.connect(beta).await {
        Ok(upstream) => upstream,
        Err(error) => {
            session.close().await;
            return Err(error);
        }
    };
    let lang = Lang::from_accept_language(
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    Ok(upgrade
        .protocols([PROTOCOL])
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |client| relay(client, upstream, session, lang, quota)))
}

/// Relays frames both ways until either side ends, then settles what is open.
async fn relay(
    client: WebSocket,
    upstream: UpstreamSocket,
    mut session: Session,
    lang: Lang,
    quota: Option<RequestQuota>,
) {
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let (mut to_client, mut from_client) = client.split();
    loop {
        tokio::select! {
            frame = from_client.next() => {
                let Some(Ok(frame)) = frame else { break };
                if let (Some(quota), ws::Message::Text(text)) = (&quota, &frame)
                    && asks_for_response(text.as_str())
                    && let Err(refusal) = quota.admit().await
                {
                    // Over the key's requests per minute: this response is not asked for, and
                    // the client hears why in Realtime's error shape; the session stays open.
                    let event = error_event("rate_limit_exceeded", &refusal, lang);
                    if !matches!(tokio::time::timeout(SEND_WAIT, to_client.send(event)).await, Ok(Ok(()))) {
                        break;
                    }
                    continue;
                }
                let closing = matches!(frame, ws::Message::Close(_));
                if let Some(frame) = up(frame)
                    && !matches!(tokio::time::timeout(SEND_WAIT, to_upstream.send(frame)).await, Ok(Ok(())))
                {
                    break;
                }
                if closing {
                    break;
                }
            }
            frame = from_upstream.next() => {
                let Some(Ok(frame)) = frame else {
                    // The upstream went away mid-session: the client hears it closed.
                    let _ = tokio::time::timeout(SEND_WAIT, to_client.send(ws::Message::Close(Some(ws::CloseFrame {
                        code: 1011,
                        reason: "upstream closed".into(),
                    })))).await;
                    break;
                };
                let closing = matches!(frame, Upstream::Close(_));
                let refused = match &frame {
                    Upstream::Text(text) => session.observe(text.as_str()).await.err(),
                    _ => None,
                };
                if let Some(frame) = down(frame)
                    && !matches!(tokio::time::timeout(SEND_WAIT, to_client.send(frame)).await, Ok(Ok(())))
                {
                    break;
                }
                if let Some(refusal) = refused {
                    // No hold for the next response: the client hears why, in the event shape
                    // of Realtime's errors, and the session ends.
                    let status = refusal.status();
                    let kind = if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::PAYMENT_REQUIRED { "insufficient_quota" } else { "invalid_request_error" };
                    let _ = tokio::time::timeout(SEND_WAIT, to_client.send(error_event(kind, &refusal, lang))).await;
                    let _ = tokio::time::timeout(SEND_WAIT, to_client.send(ws::Message::Close(Some(ws::CloseFrame {
                        code: 1008,
                        reason: "quota exhausted".into(),
                    })))).await;
                    break;
                }
                if closing {
                    break;
                }
            }
        }
    }
    session.close().await;
    let _ = tokio::time::timeout(SEND_WAIT, to_upstream.close()).await;
    let _ = tokio::time::timeout(SEND_WAIT, to_client.close()).await;
}

/// A refusal as a Realtime `error` event of `kind`, in the client's language.
fn error_event(kind: &str, refusal: &skein_core::ApiError, lang: Lang) -> ws::Message {
    let event = json!({
        "type": "error",
        "error": {"type": kind, "code": refusal.code(), "message": refusal.message(lang)},
    });
    ws::Message::Text(event.to_string().into())
}

/// Whether a client event asks the model for a response (`response.create`): each counts
/// against the key's requests per minute, as one HTTP request would.
fn asks_for_response(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    text.contains("response.create")
        && serde_json::from_str::<Event>(text).is_ok_and(|e| e.kind == Some("response.create"))
}

/// A client frame as the upstream takes it; pings and pongs stay on their own hop.
fn up(frame: ws::Message) -> Option<Upstream> {
    match frame {
        ws::Message::Text(text) => Some(Upstream::Text(text.as_str().into())),
        ws::Message::Binary(bytes) => Some(Upstream::Binary(bytes)),
        ws::Message::Close(close) => Some(Upstream::Close(close.map(|c| UpstreamClose {
            code: c.code.into(),
            reason: c.reason.as_str().into(),
        }))),
        ws::Message::Ping(_) | ws::Message::Pong(_) => None,
    }
}

/// An upstream frame as the client takes it.
fn down(frame: Upstream) -> Option<ws::Message> {
    match frame {
        Upstream::Text(text) => Some(ws::Message::Text(text.as_str().into())),
        Upstream::Binary(bytes) => Some(ws::Message::Binary(bytes)),
        Upstream::Close(close) => Some(ws::Message::Close(close.map(|c| ws::CloseFrame {
            code: c.code.into(),
            reason: c.reason.as_str().into(),
        }))),
        Upstream::Ping(_) | Upstream::Pong(_) | Upstream::Frame(_) => None,
    }
}
